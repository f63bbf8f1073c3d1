"""The machine-readable public outputs (no language): Statuspage-compatible JSON, feeds, the
maintenance calendar and badges, as ``statuspage.publish.Output`` values."""


def build(*, services, now):
    return []

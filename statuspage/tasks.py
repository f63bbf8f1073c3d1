"""Thin Celery entry points of the public side."""

from itsm.tasking import itsm_task
from statuspage import publish as publishing
from statuspage import rollup


@itsm_task("statuspage.publish", time_limit=600)
def publish(requested_at=None, full=False, rest_only=False):
    """Re-publish the public side, unless a publish that started later already covered
    ``requested_at`` (a UNIX time); ``rest_only``: the second step alone."""
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(requested_at, UTC) if requested_at is not None else None
    return publishing.publish(requested_at=when, full=full, rest_only=rest_only)


@itsm_task("statuspage.roll_up_uptime")
def roll_up_uptime(days=2):
    return rollup.roll_up_recent(days=days)

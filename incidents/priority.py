"""The ITIL priority matrix: impact (1 high … 3 low) × urgency (1 … 3) → P1 … P5."""

# The common default, as DESIGN.md gives it; seeded into PriorityMatrixEntry by a migration.
DEFAULT_PRIORITY_MATRIX = {
    (1, 1): 1,
    (1, 2): 2,
    (2, 1): 2,
    (1, 3): 3,
    (2, 2): 3,
    (3, 1): 3,
    (2, 3): 4,
    (3, 2): 4,
    (3, 3): 5,
}


def priority_from_matrix(matrix, impact, urgency):
    """The priority for ``impact`` × ``urgency`` in ``matrix`` (a dict as above); cells the
    matrix lacks fall back to the default so a half-edited matrix never blocks the desk."""
    if impact not in (1, 2, 3) or urgency not in (1, 2, 3):
        raise ValueError(f"impact and urgency must be 1, 2 or 3 (got {impact}, {urgency})")
    return matrix.get((impact, urgency), DEFAULT_PRIORITY_MATRIX[(impact, urgency)])

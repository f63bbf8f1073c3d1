"""A service's status history computed from its impacts: pure functions, no database.

Used where the history is rebuilt rather than written as it happens: the migration that fills
it from what existed, and the demo (whose incidents overlap in time but are played one after
another, so the intervals written on the way are not in time order).
"""

from dataclasses import dataclass
from datetime import datetime

from services.models import STATUS_SEVERITY, ServiceStatus


@dataclass(frozen=True)
class Impact:
    status: str
    cause_kind: str
    cause_id: int
    valid_from: datetime
    valid_to: datetime | None  # None: still open


@dataclass(frozen=True)
class Interval:
    status: str
    cause_kind: str  # "" when nothing hurts the service
    cause_id: int | None
    valid_from: datetime
    valid_to: datetime | None  # None: the current status


def worst_impact(impacts):
    """The impact that decides the status: the worst status, the earliest started on a tie (it
    was there first). None when there is none."""
    return min(
        impacts,
        key=lambda i: (-STATUS_SEVERITY[i.status], i.valid_from, i.cause_kind, i.cause_id),
        default=None,
    )


def status_intervals(impacts, since):
    """The status history from ``since`` on: at each instant the worst open impact (else
    operational), with consecutive stretches of the same status and cause merged. The last
    interval is open."""
    impacts = [i for i in impacts if i.valid_to is None or i.valid_to > i.valid_from]
    edges = sorted(
        {since}
        | {i.valid_from for i in impacts if i.valid_from > since}
        | {i.valid_to for i in impacts if i.valid_to is not None and i.valid_to > since}
    )
    found = []
    for n, start in enumerate(edges):
        end = edges[n + 1] if n + 1 < len(edges) else None
        active = [
            i
            for i in impacts
            if i.valid_from <= start and (i.valid_to is None or i.valid_to > start)
        ]
        worst = worst_impact(active)
        status, kind, cause_id = (
            (worst.status, worst.cause_kind, worst.cause_id)
            if worst
            else (ServiceStatus.OPERATIONAL, "", None)
        )
        if found and (found[-1].status, found[-1].cause_kind, found[-1].cause_id) == (
            status,
            kind,
            cause_id,
        ):
            last = found.pop()
            start = last.valid_from
        found.append(Interval(status, kind, cause_id, start, end))
    return found

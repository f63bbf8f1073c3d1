"""Uptime from the service status history: pure functions, and the roll-up that stores a day.

How a day counts (README, "Uptime"): a day is a calendar day in the status page's time zone
(23 or 25 hours across a DST change). Major outage counts fully as downtime, partial outage
counts 30 % (as Atlassian Statuspage weighs it), degraded performance counts none (the service
works, slowly; it still colours the day). Time under maintenance is left out of both the
downtime and the time observed: announced maintenance is not an outage. Time before the
service's history starts (before it existed) is not observed either.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.models import STATUS_SEVERITY, ServiceStatus

DOWNTIME_WEIGHT = {
    ServiceStatus.MAJOR_OUTAGE: 1.0,
    ServiceStatus.PARTIAL_OUTAGE: 0.3,
    ServiceStatus.DEGRADED_PERFORMANCE: 0.0,
}
SECONDS_FIELD = {
    ServiceStatus.DEGRADED_PERFORMANCE: "degraded_seconds",
    ServiceStatus.PARTIAL_OUTAGE: "partial_seconds",
    ServiceStatus.MAJOR_OUTAGE: "major_seconds",
    ServiceStatus.UNDER_MAINTENANCE: "maintenance_seconds",
}


@dataclass
class DayFigures:
    day: date
    worst_status: str = ServiceStatus.OPERATIONAL
    observed_seconds: int = 0
    seconds: dict = field(default_factory=dict)  # hurt status -> seconds
    incident_ids: list = field(default_factory=list)

    def seconds_in(self, status):
        return self.seconds.get(status, 0)


def day_bounds(day, tz):
    """The UTC instants [start, end) of calendar ``day`` in time zone ``tz``."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def day_figures(day, intervals, *, start, end, now):
    """What ``intervals`` (objects with status, valid_from, valid_to; open = until now) say
    about [start, end), counted up to ``now``."""
    figures = DayFigures(day=day)
    end = min(end, now)
    for interval in intervals:
        lo = max(interval.valid_from, start)
        hi = min(interval.valid_to or now, end)
        if hi <= lo:
            continue
        seconds = int(round((hi - lo).total_seconds()))
        figures.observed_seconds += seconds
        if interval.status != ServiceStatus.OPERATIONAL:
            figures.seconds[interval.status] = figures.seconds.get(interval.status, 0) + seconds
            if STATUS_SEVERITY[interval.status] > STATUS_SEVERITY[figures.worst_status]:
                figures.worst_status = interval.status
    return figures


def downtime_seconds(seconds_by_status):
    """Weighted downtime: major counts fully, partial 30 %, degraded and maintenance none."""
    return sum(DOWNTIME_WEIGHT.get(status, 0.0) * s for status, s in seconds_by_status.items())


def uptime_percentage(days):
    """Uptime over ``days`` (objects with ``observed_seconds`` and the per-status seconds
    fields of ``UptimeDay``), as a percentage; None when nothing was observed."""
    observed = 0
    down = 0.0
    for d in days:
        observed += d.observed_seconds - d.maintenance_seconds
        down += downtime_seconds(
            {status: getattr(d, name) for status, name in SECONDS_FIELD.items()}
        )
    if observed <= 0:
        return None
    return max(0.0, 100.0 * (1 - down / observed))


def outage_minutes(day):
    """Minutes of partial or major outage on ``day`` (an ``UptimeDay``), as shown on a bar."""
    return round((day.partial_seconds + day.major_seconds) / 60)

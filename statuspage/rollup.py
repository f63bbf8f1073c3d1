"""The daily uptime roll-up: reads the status history and the impacts of a range of days once,
and stores one ``UptimeDay`` per public service and day (``statuspage.roll_up_uptime`` runs it
from beat; each publish rolls up today)."""

from collections import defaultdict
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from services.models import CauseKind, Service, ServiceImpact, ServiceStatusInterval
from statuspage.models import UptimeDay
from statuspage.uptime import SECONDS_FIELD, day_bounds, day_figures

UPTIME_DAYS = 90  # the bar on the page
HISTORY_DAYS = 366  # the uptime page: a year by month


def page_time_zone():
    return ZoneInfo(getattr(settings, "STATUS_PAGE_TIME_ZONE", "") or settings.TIME_ZONE)


def today(now=None):
    return timezone.localtime(now or timezone.now(), page_time_zone()).date()


def roll_up(first_day, last_day, *, now=None, service_ids=None):
    """Store the figures of each day in [first_day, last_day] for the public services (or
    ``service_ids``). Three queries whatever the number of services and days."""
    now = now or timezone.now()
    tz = page_time_zone()
    start = day_bounds(first_day, tz)[0]
    end = day_bounds(last_day, tz)[1]
    services = Service.objects.filter(is_public=True)
    if service_ids is not None:
        services = services.filter(pk__in=service_ids)
    ids = list(services.values_list("pk", flat=True))
    intervals = defaultdict(list)
    for interval in (
        ServiceStatusInterval.objects.filter(service_id__in=ids)
        .overlapping(start, end)
        .only("service_id", "status", "valid_from", "valid_to")
    ):
        intervals[interval.service_id].append(interval)
    impacts = defaultdict(list)
    for impact in (
        ServiceImpact.objects.filter(service_id__in=ids, cause_kind=CauseKind.INCIDENT)
        .overlapping(start, end)
        .only("service_id", "cause_id", "valid_from", "valid_to")
    ):
        impacts[impact.service_id].append(impact)

    rows = []
    day = first_day
    while day <= last_day:
        lo, hi = day_bounds(day, tz)
        if lo >= now:
            break
        for service_id in ids:
            figures = day_figures(day, intervals[service_id], start=lo, end=hi, now=now)
            incident_ids = sorted(
                {
                    i.cause_id
                    for i in impacts[service_id]
                    if i.valid_from < min(hi, now) and (i.valid_to is None or i.valid_to > lo)
                }
            )
            rows.append(
                UptimeDay(
                    service_id=service_id,
                    day=day,
                    worst_status=figures.worst_status,
                    observed_seconds=figures.observed_seconds,
                    incident_ids=incident_ids,
                    **{name: figures.seconds_in(status) for status, name in SECONDS_FIELD.items()},
                )
            )
        day += timedelta(days=1)
    UptimeDay.objects.bulk_create(
        rows,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["service", "day"],
        update_fields=[
            "worst_status",
            "observed_seconds",
            "incident_ids",
            *SECONDS_FIELD.values(),
        ],
    )
    return len(rows)


def roll_up_recent(*, days=2, now=None):
    """Yesterday and today (beat), or the last ``days`` days."""
    last = today(now)
    return roll_up(last - timedelta(days=days - 1), last, now=now)


def ensure_rolled_up(*, now=None):
    """Roll up the whole bar range once when no day is stored yet (a new install, the demo)."""
    if not UptimeDay.objects.exists():
        roll_up_recent(days=HISTORY_DAYS, now=now)

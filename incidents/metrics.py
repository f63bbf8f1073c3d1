"""How the desk does: MTTA, time to respond, MTTR, SLA compliance, breaches, incident counts,
downtime and its cost, by month, priority, group and service, over a chosen range.

Everything is computed in the database: three statements, whatever the number of incidents.

- The incidents counted are those *opened* in [start, end) that the reader may see (the
  queryset passed in, narrowed with ``visible_to``). One scan of them answers the total and
  the groupings by month, priority and assignment group (``GROUPING SETS``); a second, joined
  to the affected services, answers by service.
- MTTA: mean time from opening to the first acknowledgement (incidents acknowledged only).
  Time to respond: to ``responded_at`` (the acknowledgement, or the resolution when nobody
  acknowledged: SLA.md). MTTR: to the resolution (``resolved_at``; after a reopen, the last
  one), resolved incidents only. Wall-clock time, holds included: what the customer waited.
- SLA compliance: of the incidents whose outcome is known (a target breached, or resolved with
  targets), the share that breached neither the response nor the resolution target.
- Downtime and cost: the incidents' impact intervals (``ServiceImpact``, as in
  ``incidents.cost``) of the visible incidents, clipped to the range and split by calendar
  month, priced with the service's rates or the reporting organisation's contract. Unlike an
  incident's own page, the aggregate counts the directly affected services only (no dependants)
  and does not subtract maintenance windows: see the README.

Months are calendar months in ``settings.METRICS_TIME_ZONE``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents.models import Incident, IncidentService
from services.models import CauseKind, Contract, Service, ServiceImpact, ServiceStatus

MAJOR, PARTIAL, DEGRADED = (
    ServiceStatus.MAJOR_OUTAGE,
    ServiceStatus.PARTIAL_OUTAGE,
    ServiceStatus.DEGRADED_PERFORMANCE,
)


@dataclass
class Figures:
    """The figures of one group (a month, a priority, a group, a service, or everything)."""

    key: object = None
    label: str = ""
    incidents: int = 0
    major_incidents: int = 0
    mtta_seconds: float | None = None
    respond_seconds: float | None = None
    mttr_seconds: float | None = None
    decided: int = 0  # incidents whose SLA outcome is known
    met: int = 0  # of those, breached neither target
    response_breaches: int = 0
    resolution_breaches: int = 0
    downtime_seconds: int = 0
    cost: Decimal = Decimal(0)

    @property
    def compliance(self):
        """The share (0 to 1) that met both targets; None when no outcome is known."""
        return self.met / self.decided if self.decided else None

    @property
    def breaches(self):
        return self.response_breaches + self.resolution_breaches

    @property
    def downtime_minutes(self):
        return round(self.downtime_seconds / 60)


@dataclass
class Report:
    start: dt.datetime
    end: dt.datetime
    total: Figures = field(default_factory=Figures)
    by_month: list = field(default_factory=list)
    by_priority: list = field(default_factory=list)
    by_group: list = field(default_factory=list)
    by_service: list = field(default_factory=list)
    currency: str = field(default_factory=lambda: settings.DOWNTIME_COST_CURRENCY)


# The aggregates, over rows "t" of incidents; {n} numbers nothing, it keeps the text readable.
_AGGREGATES = """
    count(*),
    count(*) FILTER (WHERE t.is_major),
    avg(extract(epoch FROM t.acknowledged_at - t.opened_at))
        FILTER (WHERE t.acknowledged_at IS NOT NULL),
    avg(extract(epoch FROM t.responded_at - t.opened_at))
        FILTER (WHERE t.responded_at IS NOT NULL),
    avg(extract(epoch FROM t.resolved_at - t.opened_at)) FILTER (WHERE t.resolved_at IS NOT NULL),
    count(*) FILTER (WHERE t.response_breached_at IS NOT NULL
        OR t.resolve_breached_at IS NOT NULL
        OR (t.resolved_at IS NOT NULL
            AND (t.response_target IS NOT NULL OR t.resolution_target IS NOT NULL))),
    count(*) FILTER (WHERE t.response_breached_at IS NULL AND t.resolve_breached_at IS NULL
        AND t.resolved_at IS NOT NULL
        AND (t.response_target IS NOT NULL OR t.resolution_target IS NOT NULL)),
    count(*) FILTER (WHERE t.response_breached_at IS NOT NULL),
    count(*) FILTER (WHERE t.resolve_breached_at IS NOT NULL)
"""
_COLUMNS = [
    "opened_at", "is_major", "acknowledged_at", "responded_at", "resolved_at",
    "response_target", "resolution_target", "response_breached_at", "resolve_breached_at",
    "priority", "assignment_group_id",
]  # fmt: skip


def _incident_sql(queryset, start, end):
    inner = queryset.filter(opened_at__gte=start, opened_at__lt=end).order_by()
    return inner.values("id", *_COLUMNS).query.sql_with_params()


def _figures(row, key=None, label=""):
    (count, major, mtta, respond, mttr, decided, met, response_b, resolve_b) = row
    return Figures(
        key=key,
        label=label,
        incidents=count,
        major_incidents=major,
        mtta_seconds=float(mtta) if mtta is not None else None,
        respond_seconds=float(respond) if respond is not None else None,
        mttr_seconds=float(mttr) if mttr is not None else None,
        decided=decided,
        met=met,
        response_breaches=response_b,
        resolution_breaches=resolve_b,
    )


def _months(start, end, zone):
    """The first instants of the calendar months (in ``zone``) that [start, end) touches."""
    local = start.astimezone(zone)
    month = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    while month < end:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
        month = month.replace(tzinfo=zone)
    return months


def report(queryset=None, *, start, end, now=None):
    """The figures of the incidents of ``queryset`` (default: all; pass one narrowed with
    ``visible_to``) opened in [start, end), and the downtime their impacts caused in it."""
    queryset = Incident.objects.all() if queryset is None else queryset
    now = now or timezone.now()
    zone = _zone()
    found = Report(start=start, end=end)
    inner, params = _incident_sql(queryset, start, end)
    group_table = Group._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT GROUPING(date_trunc('month', t.opened_at AT TIME ZONE %s)),
                   GROUPING(t.priority), GROUPING(t.assignment_group_id),
                   date_trunc('month', t.opened_at AT TIME ZONE %s), t.priority,
                   t.assignment_group_id, max(g.name), {_AGGREGATES}
            FROM ({inner}) t LEFT JOIN {group_table} g ON g.id = t.assignment_group_id
            GROUP BY GROUPING SETS (
                (date_trunc('month', t.opened_at AT TIME ZONE %s)), (t.priority),
                (t.assignment_group_id), ()
            )
            """,  # noqa: S608 (table names from the models, values as parameters)
            [zone.key, zone.key, *params, zone.key],
        )
        rows = cursor.fetchall()
        by_month = {}
        for g_month, g_priority, g_group, month, priority, group_id, group_name, *agg in rows:
            # GROUPING() is 1 for what a row is *not* grouped by: all three, the grand total.
            if g_month and g_priority and g_group:
                found.total = _figures(agg, label="all")
            elif not g_month:
                key = month.date()
                by_month[key] = _figures(agg, key=key, label=key.strftime("%Y-%m"))
            elif not g_priority:
                found.by_priority.append(_figures(agg, key=priority, label=f"P{priority}"))
            else:
                found.by_group.append(_figures(agg, key=group_id, label=group_name or "—"))
        _fill_services(found, cursor, queryset, start, end)
        _fill_downtime(found, by_month, cursor, queryset, start, end, now, zone)
    found.by_month = [
        by_month.get(m.date()) or Figures(key=m.date(), label=m.strftime("%Y-%m"))
        for m in _months(start, end, zone)
    ]
    found.by_priority.sort(key=lambda f: f.key)
    found.by_group.sort(key=lambda f: (f.key is None, f.label))
    found.by_service.sort(key=lambda f: (-f.incidents, f.label))
    return found


def _zone():
    return zoneinfo.ZoneInfo(settings.METRICS_TIME_ZONE)


def _fill_services(found, cursor, queryset, start, end):
    inner, params = _incident_sql(queryset, start, end)
    link, service = IncidentService._meta.db_table, Service._meta.db_table
    cursor.execute(
        f"""
        SELECT l.service_id, max(s.name), {_AGGREGATES}
        FROM ({inner}) t
        JOIN {link} l ON l.incident_id = t.id
        JOIN {service} s ON s.id = l.service_id
        GROUP BY l.service_id
        """,  # noqa: S608
        params,
    )
    found.by_service = [_figures(agg, key=pk, label=name) for pk, name, *agg in cursor.fetchall()]


def _fill_downtime(found, by_month, cursor, queryset, start, end, now, zone):
    """Downtime seconds and cost per service and per month, from the impact intervals of the
    incidents of ``queryset`` (opened any time) that overlap [start, end)."""
    ids_sql, ids_params = (
        queryset.order_by().values("id", "organization_id").query.sql_with_params()
    )
    impact, service, contract = (
        ServiceImpact._meta.db_table,
        Service._meta.db_table,
        Contract._meta.db_table,
    )
    months = _months(start, end, zone)
    bounds = [(max(m, start), min(n, end)) for m, n in zip(months, [*months[1:], end], strict=True)]
    values = ", ".join(["(%s::timestamptz, %s::timestamptz)"] * len(bounds))
    cursor.execute(
        f"""
        WITH m(month_start, month_end) AS (VALUES {values}),
        pieces AS (
            SELECT i.service_id, m.month_start, i.status,
                extract(epoch FROM least(coalesce(i.valid_to, %s), m.month_end)
                    - greatest(i.valid_from, m.month_start)) AS seconds,
                CASE i.status
                    WHEN %s THEN coalesce(c.cost_major_per_hour, s.cost_major_per_hour)
                    WHEN %s THEN coalesce(c.cost_partial_per_hour, s.cost_partial_per_hour)
                    ELSE coalesce(c.cost_degraded_per_hour, s.cost_degraded_per_hour)
                END AS rate
            FROM {impact} i
            JOIN ({ids_sql}) t ON i.cause_id = t.id
            JOIN {service} s ON s.id = i.service_id
            LEFT JOIN {contract} c
                ON c.organization_id = t.organization_id AND c.service_id = i.service_id
            JOIN m ON i.valid_from < m.month_end AND coalesce(i.valid_to, %s) > m.month_start
            WHERE i.cause_kind = %s AND i.status IN (%s, %s, %s)
                AND i.valid_from < %s AND (i.valid_to IS NULL OR i.valid_to > %s)
        )
        SELECT GROUPING(service_id), service_id, month_start, max(s.name),
            sum(seconds), sum(seconds * rate / 3600)
        FROM pieces JOIN {service} s ON s.id = pieces.service_id
        WHERE seconds > 0
        GROUP BY GROUPING SETS ((service_id), (month_start))
        """,  # noqa: S608
        [
            *[v for pair in bounds for v in pair],
            now,
            MAJOR,
            PARTIAL,
            *ids_params,
            now,
            CauseKind.INCIDENT,
            MAJOR,
            PARTIAL,
            DEGRADED,
            min(end, now),
            start,
        ],
    )
    services = {f.key: f for f in found.by_service}
    for g_service, service_id, month_start, name, seconds, cost in cursor.fetchall():
        cost = Decimal(cost or 0).quantize(Decimal("0.01"))
        if not g_service:
            line = services.get(service_id)
            if line is None:  # hurt by an incident opened before the range
                line = services[service_id] = Figures(key=service_id, label=name)
                found.by_service.append(line)
            line.downtime_seconds, line.cost = int(seconds), cost
            found.total.downtime_seconds += int(seconds)
            found.total.cost += cost
        else:
            key = month_start.astimezone(zone).date()
            line = by_month.setdefault(key, Figures(key=key, label=key.strftime("%Y-%m")))
            line.downtime_seconds, line.cost = int(seconds), cost


MAX_RANGE_DAYS = 3 * 366


def day_range(first, last):
    """[start, end) from the start of day ``first`` to the end of day ``last`` (dates, in
    ``METRICS_TIME_ZONE``)."""
    zone = _zone()
    start = dt.datetime(first.year, first.month, first.day, tzinfo=zone)
    after = last + dt.timedelta(days=1)
    return start, dt.datetime(after.year, after.month, after.day, tzinfo=zone)


def default_days(today=None):
    """The dashboard's default range: the twelve months up to today."""
    today = today or timezone.now().astimezone(_zone()).date()
    first = (today.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
    return first, today


def range_problems(first, last):
    """{field: message} for a range the metrics refuse (empty when it is fine)."""
    if first is not None and last is not None:
        if last < first:
            return {"end": _("The end cannot be before the start.")}
        if (last - first).days > MAX_RANGE_DAYS:
            return {"end": _("Choose at most %(days)d days.") % {"days": MAX_RANGE_DAYS}}
    return {}


ROWS_HEADER = [
    "grouping", "key", "incidents", "major_incidents", "mtta_seconds", "respond_seconds",
    "mttr_seconds", "sla_decided", "sla_met", "sla_compliance", "response_breaches",
    "resolution_breaches", "downtime_minutes", "cost",
]  # fmt: skip


def rows(found):
    """The report as flat rows (CSV): one per group, ``ROWS_HEADER`` order."""

    def row(grouping, figures):
        def number(value):
            return "" if value is None else round(value, 1)

        return [
            grouping,
            figures.label,
            figures.incidents,
            figures.major_incidents,
            number(figures.mtta_seconds),
            number(figures.respond_seconds),
            number(figures.mttr_seconds),
            figures.decided,
            figures.met,
            "" if figures.compliance is None else round(figures.compliance, 4),
            figures.response_breaches,
            figures.resolution_breaches,
            figures.downtime_minutes,
            f"{figures.cost:.2f}",
        ]

    yield row("total", found.total)
    for grouping, lines in (
        ("month", found.by_month),
        ("priority", found.by_priority),
        ("group", found.by_group),
        ("service", found.by_service),
    ):
        for figures in lines:
            yield row(grouping, figures)

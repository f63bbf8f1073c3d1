"""What each public HTML page shows, computed from ``statuspage.public`` and the uptime days.

Functions here build template contexts for the publisher; nothing here runs in a request. A
context holds plain values (names, statuses, times, texts), never a model an template could
follow to internal data.
"""

from collections import defaultdict, namedtuple
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Min, Sum
from django.template.loader import render_to_string
from django.utils import formats, timezone, translation
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from services.models import STATUS_SEVERITY, ServiceDependency, ServiceStatus
from statuspage import public
from statuspage.models import UptimeDay
from statuspage.rollup import UPTIME_DAYS, page_time_zone, today
from statuspage.uptime import outage_minutes, uptime_percentage

BANNER = {
    ServiceStatus.OPERATIONAL: "operational",
    ServiceStatus.DEGRADED_PERFORMANCE: "degraded",
    ServiceStatus.PARTIAL_OUTAGE: "partial",
    ServiceStatus.MAJOR_OUTAGE: "major",
    ServiceStatus.UNDER_MAINTENANCE: "maintenance",
}


def banner_text(status):
    return {
        ServiceStatus.OPERATIONAL: _("All systems operational"),
        ServiceStatus.DEGRADED_PERFORMANCE: _("Some systems have degraded performance"),
        ServiceStatus.PARTIAL_OUTAGE: _("Partial outage"),
        ServiceStatus.MAJOR_OUTAGE: _("Major outage"),
        ServiceStatus.UNDER_MAINTENANCE: _("Maintenance in progress"),
    }[status]


@dataclass
class BarDay:
    day: object
    status: str  # a service status, or "" when there is no data for the day
    text: str
    days: int = 1  # a run of quiet days is one segment this many days wide

    @property
    def quiet(self):
        """Nothing to tell: no downtime, or no data. Quiet days are merged into runs (a page of
        200 services stays small) and are not keyboard stops (a keyboard user tabs through the
        days that have something to say)."""
        return self.status in ("", ServiceStatus.OPERATIONAL)


@dataclass
class ServiceRow:
    pk: int
    name: str
    slug: str
    description: str
    status: str
    status_label: str
    note: str = ""
    uptime: float | None = None
    bar: list = field(default_factory=list)

    @property
    def bar_html(self):
        return bar_html(self.bar, key=self.pk)

    @property
    def html(self):
        return service_row_html(self)


# (language, row) -> the row's HTML. The publisher's process renders again only the rows that
# changed since its last publish: a public update re-renders the page, rarely its services.
_ROW_CACHE = {}
_ROW_CACHE_MAX = 5000


def service_row_html(row):
    language = translation.get_language()
    key = (
        language,
        row.pk,
        row.name,
        row.slug,
        row.status,
        row.status_label,
        row.note,
        None if row.uptime is None else round(row.uptime, 2),
        tuple((d.status, d.days, d.text) for d in row.bar),
    )
    html = _ROW_CACHE.get(key)
    if html is None:
        if len(_ROW_CACHE) >= _ROW_CACHE_MAX:
            _ROW_CACHE.clear()
        html = render_to_string(
            "statuspage/_service.html",
            {"row": row, "prefix": "/ro" if language == "ro" else "", "uptime_days": UPTIME_DAYS},
        )
        _ROW_CACHE[key] = html
    return mark_safe(html)  # rendered by the template engine, which escaped it


def bar_html(segments, key=""):
    """The segments of an uptime bar as HTML list items. Built here rather than by a template
    loop: a page of 200 services has thousands, and the template engine took most of a
    publish. A quiet run is one wide item with a hover title; a day worth telling is a keyboard
    stop whose text shows on hover and focus, and which is named by that text
    (aria-labelledby reads it while it is hidden)."""
    items = []
    for n, d in enumerate(segments):
        if d.quiet:
            items.append(
                f'<li class="day st-{d.status or "none"}" style="flex-grow:{d.days}" '
                f'title="{escape(d.text)}"></li>'
            )
        else:
            tip = f"t{key}-{n}"
            items.append(
                f'<li class="day st-{d.status}" tabindex="0" aria-labelledby="{tip}">'
                f'<span class="tip" id="{tip}">{escape(d.text)}</span></li>'
            )
    return mark_safe("".join(items))  # noqa: S308 (every text above is escaped)


def status_label(status):
    return str(ServiceStatus(status).label)


def dependency_notes(services):
    """{service id: (shown status, note)} for public services hurt through what they depend on
    (transitively) and not pinned by staff. A private dependency is not named."""
    by_id = {s.pk: s for s in services}
    needs = defaultdict(set)
    for service_id, depends_on_id in ServiceDependency.objects.values_list(
        "service_id", "depends_on_id"
    ):
        needs[service_id].add(depends_on_id)
    hurt = dict(
        public.service_statuses_for_dependencies(
            {d for ds in needs.values() for d in ds} - set(by_id)
        )
    )
    hurt.update({s.pk: (s.status, s.name) for s in services})
    notes = {}
    for service in services:
        if service.status_pinned:
            continue
        seen, stack, worst = set(), list(needs[service.pk]), None
        while stack:
            pk = stack.pop()
            if pk in seen or pk == service.pk:
                continue
            seen.add(pk)
            stack.extend(needs[pk])
            status, name = hurt.get(pk, (ServiceStatus.OPERATIONAL, None))
            if status == ServiceStatus.OPERATIONAL:
                continue
            if worst is None or STATUS_SEVERITY[status] > STATUS_SEVERITY[worst[0]]:
                worst = (status, name)
        # Said only where the dependency is worse than what the service reports itself.
        if worst is None or STATUS_SEVERITY[worst[0]] <= STATUS_SEVERITY[service.status]:
            continue
        shown = service.status
        if STATUS_SEVERITY[shown] < STATUS_SEVERITY[ServiceStatus.DEGRADED_PERFORMANCE]:
            shown = ServiceStatus.DEGRADED_PERFORMANCE
        note = (
            _("depends on %(service)s") % {"service": worst[1]}
            if worst[1]
            else _("depends on a service that is impaired")
        )
        notes[service.pk] = (shown, note)
    return notes


def _day_text(label, bar_status, minutes, titles):
    parts = [label]
    if minutes:
        parts.append(
            ngettext("%(n)d minute of outage", "%(n)d minutes of outage", minutes) % {"n": minutes}
        )
    else:
        parts.append(status_label(bar_status))
    parts.extend(titles)
    return " · ".join(parts)


DayRow = namedtuple(
    "DayRow",
    [
        "service_id",
        "day",
        "worst_status",
        "observed_seconds",
        "incident_ids",
        "degraded_seconds",
        "partial_seconds",
        "major_seconds",
        "maintenance_seconds",
    ],
)


def uptime_bars(service_ids, *, now=None):
    """{service id: (uptime %, [BarDay] oldest first)} over the last UPTIME_DAYS days: a day
    with something to tell is a segment of its own, consecutive quiet days (no downtime, or no
    data) one wider segment. One query for the days, one for the incidents' titles."""
    last = today(now)
    first = last - timedelta(days=UPTIME_DAYS - 1)
    dates = [first + timedelta(days=n) for n in range(UPTIME_DAYS)]
    labels = {}  # date → its label, formatted once per publish (not once per service)

    def label(day):
        if day not in labels:
            labels[day] = formats.date_format(day, "DATE_FORMAT")
        return labels[day]

    # Most days are quiet: read the days that had something (few) and, per service, the sums
    # (for the percentage) and the first day observed (before it: no data). Two small queries
    # whatever the number of services, instead of 90 rows per service.
    window = UptimeDay.objects.filter(
        service_id__in=service_ids, day__gte=first, day__lte=last, observed_seconds__gt=0
    )
    days = defaultdict(dict)
    incident_ids = set()
    for values in window.exclude(worst_status=ServiceStatus.OPERATIONAL).values_list(
        *DayRow._fields
    ):
        row = DayRow(*values)
        days[row.service_id][row.day] = row
        incident_ids.update(row.incident_ids)
    totals = {}
    for pk, since, *sums in (
        window.order_by()
        .values("service_id")
        .annotate(
            since=Min("day"),
            o=Sum("observed_seconds"),
            d=Sum("degraded_seconds"),
            p=Sum("partial_seconds"),
            m=Sum("major_seconds"),
            mt=Sum("maintenance_seconds"),
        )
        .values_list("service_id", "since", "o", "d", "p", "m", "mt")
    ):
        totals[pk] = (since, DayRow(pk, None, "", sums[0], (), *sums[1:]))
    titles = public.public_incident_titles(incident_ids)
    quiet_text = {ServiceStatus.OPERATIONAL: _("no downtime"), "": _("no data")}
    bars = {}
    for pk in service_ids:
        mine = days.get(pk, {})
        since, total = totals.get(pk, (None, None))
        bar = []
        run = None  # the quiet run being extended: [status, first day, days]
        for day in dates:
            row = mine.get(day)
            if row is not None:
                status = row.worst_status
            elif since is not None and day >= since:
                status = ServiceStatus.OPERATIONAL
            else:
                status = ""
            if status in quiet_text:
                if run and run[0] == status:
                    run[2] += 1
                    continue
                run = [status, day, 1]
                bar.append(run)
                continue
            run = None
            shown = [titles[i] for i in row.incident_ids if i in titles]
            text = _day_text(label(day), status, outage_minutes(row), shown)
            bar.append(BarDay(day, status, text))
        segments = []
        for part in bar:
            if isinstance(part, BarDay):
                segments.append(part)
                continue
            status, start, count = part
            end = start + timedelta(days=count - 1)
            span = label(start) if count == 1 else f"{label(start)} – {label(end)}"
            segments.append(BarDay(start, status, f"{span}: {quiet_text[status]}", days=count))
        bars[pk] = (uptime_percentage([total] if total else []), segments)
    return bars


def service_rows(services, *, now=None, with_bars=True):
    notes = dependency_notes(services)
    bars = uptime_bars([s.pk for s in services], now=now) if with_bars else {}
    rows = []
    for s in services:
        shown, note = notes.get(s.pk, (s.status, ""))
        uptime, bar = bars.get(s.pk, (None, []))
        rows.append(
            ServiceRow(
                pk=s.pk,
                name=s.name,
                slug=s.slug,
                description=s.description,
                status=shown,
                status_label=status_label(shown),
                note=note,
                uptime=uptime,
                bar=bar,
            )
        )
    return rows


def grouped(services, rows):
    """[(group name or "", [rows])] in page order."""
    groups = []
    for service, row in zip(services, rows, strict=True):
        name = service.group.name if service.group_id else ""
        if not groups or groups[-1][0] != name:
            groups.append((name, []))
        groups[-1][1].append(row)
    return groups


def incident_view(incident, *, now=None):
    """The public face of an incident: plain values only."""
    now = now or timezone.now()
    end = incident.resolved_at or now
    return {
        "pk": incident.pk,
        "title": incident.title,
        "status": incident.public_status,
        "status_label": incident.get_public_status_display() if incident.public_status else "",
        "started_at": incident.published_at,
        "resolved_at": incident.resolved_at,
        "duration_text": duration_text(end - (incident.opened_at or incident.published_at)),
        "services": [s.name for s in incident.public_services],
        "updates": [
            {
                "at": u.created_at,
                "status": u.public_status,
                "status_label": u.get_public_status_display(),
                "body": u.text_in(translation.get_language()),
            }
            for u in sorted(
                incident.public_updates, key=lambda u: (u.created_at, u.pk), reverse=True
            )
        ],
    }


def duration_text(delta):
    """ "2 h 5 min", "3 days 4 h", "12 min": whole minutes, the two largest units."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = []
    if days:
        parts.append(ngettext("%(n)d day", "%(n)d days", days) % {"n": days})
    if hours:
        parts.append(_("%(n)d h") % {"n": hours})
    if minutes and not days:
        parts.append(_("%(n)d min") % {"n": minutes})
    return " ".join(parts) or _("%(n)d min") % {"n": 0}


def maintenance_view(window):
    return {
        "pk": window.pk,
        "title": window.title,
        "status": window.status,
        "status_label": window.get_status_display(),
        "start": window.scheduled_start,
        "end": window.scheduled_end,
        "description": window.public_description,
        "services": [s.name for s in window.public_services],
    }


def index_context(*, now=None):
    now = now or timezone.now()
    services = list(public.public_services())
    rows = service_rows(services, now=now)
    active_maintenance = [maintenance_view(w) for w in public.active_maintenance()]
    shown = [r.status for r in rows]
    overall = public.overall_status(shown)
    if overall == ServiceStatus.OPERATIONAL and active_maintenance:
        overall = ServiceStatus.UNDER_MAINTENANCE
    return {
        "banner": BANNER[overall],
        "banner_text": banner_text(overall),
        "groups": grouped(services, rows),
        "incidents": [incident_view(i, now=now) for i in public.active_incidents()],
        "active_maintenance": active_maintenance,
        "upcoming_maintenance": [maintenance_view(w) for w in public.upcoming_maintenance(now)],
        "uptime_days": UPTIME_DAYS,
        "time_zone": str(page_time_zone()),
    }


def uptime_years(services, *, now=None):
    """[(service view, [month rows newest first])] over the last 12 months, a month row being
    {"month": first day, "uptime": % or None, "outage_minutes", "worst"}. One query."""
    if not services:
        return []
    last = today(now)
    first = (last.replace(day=1) - timedelta(days=335)).replace(day=1)
    by_service = defaultdict(lambda: defaultdict(list))
    for row in UptimeDay.objects.filter(
        service_id__in=[s.pk for s in services], day__gte=first, day__lte=last
    ):
        by_service[row.service_id][row.day.replace(day=1)].append(row)
    result = []
    for service in services:
        months = []
        month = last.replace(day=1)
        while month >= first:
            rows = by_service[service.pk].get(month, [])
            worst = max(
                (r.worst_status for r in rows if r.observed_seconds),
                key=lambda s: STATUS_SEVERITY[s],
                default="",
            )
            months.append(
                {
                    "month": month,
                    "uptime": uptime_percentage(rows),
                    "outage_minutes": sum(outage_minutes(r) for r in rows),
                    "worst": worst,
                }
            )
            month = (month - timedelta(days=1)).replace(day=1)
        view = {
            "name": service.name,
            "slug": service.slug,
            "description": service.description,
            "status": service.status,
            "status_label": status_label(service.status),
        }
        result.append((view, months))
    return result

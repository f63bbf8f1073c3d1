"""What the public side may show: the one place that decides it.

Every public output (pages, Statuspage-compatible JSON, feeds, badges, calendars) reads through
these functions, so "nothing internal reaches the public side" is decided here and tested
here: only public services; only published incidents that are not confidential, with only their
public updates and their public services; maintenance that is not cancelled. Internal fields
(work notes, assignees, organisations, priorities, resolution notes) are never selected for the
public side, so a template cannot show them by mistake.
"""

import datetime as dt

from django.db.models import Exists, F, OuterRef, Prefetch, Q
from django.utils import timezone

from incidents.models import OPEN_STATES, Incident, IncidentUpdate
from services.models import (
    STATUS_SEVERITY,
    CauseKind,
    MaintenanceStatus,
    MaintenanceWindow,
    Service,
    ServiceImpact,
    ServiceStatus,
)

# The incident fields a public output may use (and nothing else is loaded).
INCIDENT_FIELDS = (
    "id",
    "title",
    "state",
    "public_status",
    "opened_at",
    "published_at",
    "resolved_at",
    "updated_at",
)
SERVICE_FIELDS = (
    "id",
    "name",
    "slug",
    "description",
    "group",
    "display_order",
    "status",
    "status_pinned",
    "created_at",
    "updated_at",
)


def public_services():
    """Public services in status-page order (by group, then their own order), with the group."""
    return (
        Service.objects.filter(is_public=True)
        .select_related("group")
        .only(*SERVICE_FIELDS, "group__name", "group__display_order")
        # Grouped services first, on SQLite too (it sorts NULL first, PostgreSQL last).
        .order_by(
            F("group__display_order").asc(nulls_last=True),
            F("group__name").asc(nulls_last=True),
            "display_order",
            "name",
            "id",
        )
    )


def public_service(slug):
    """The public service ``slug``, or None: a private service looks the same as a missing one."""
    return public_services().filter(slug=slug).first()


def _public_updates():
    return IncidentUpdate.objects.filter(is_public=True).only(
        "id", "incident_id", "created_at", "public_status", "body", "body_ro"
    )


def public_incidents():
    """Published, non-confidential incidents, newest first, each with its public updates
    (``public_updates``, newest first) and its public services (``public_services``)."""
    return (
        Incident.objects.filter(published_at__isnull=False, is_confidential=False)
        .only(*INCIDENT_FIELDS)
        .prefetch_related(
            Prefetch("updates", queryset=_public_updates(), to_attr="public_updates"),
            Prefetch(
                "services",
                queryset=Service.objects.filter(is_public=True).only(*SERVICE_FIELDS),
                to_attr="public_services",
            ),
        )
        .order_by("-published_at", "-id")
    )


def incidents_touching(service):
    """Public incidents that affected ``service``, newest first; none when it is not public."""
    return public_incidents().filter(services=service, services__is_public=True)


def active_incidents():
    """Public incidents still open (not resolved or closed)."""
    return public_incidents().filter(state__in=OPEN_STATES)


def public_incident(pk):
    """The public incident ``pk``, or None when there is none to show: missing, unpublished and
    confidential look the same from outside."""
    return public_incidents().filter(pk=pk).first()


def _announced_maintenance():
    """Windows not cancelled that touch a public service or no service at all: a window on
    private services only is internal work, its title included."""
    links = MaintenanceWindow.services.through.objects.filter(maintenancewindow=OuterRef("pk"))
    return MaintenanceWindow.objects.exclude(status=MaintenanceStatus.CANCELLED).filter(
        Exists(links.filter(service__is_public=True)) | ~Exists(links)
    )


def public_maintenance():
    """Maintenance that is or was announced (not cancelled, see ``_announced_maintenance``),
    newest first, with its public services (``public_services``)."""
    return (
        _announced_maintenance()
        .prefetch_related(
            Prefetch(
                "services",
                queryset=Service.objects.filter(is_public=True).only(*SERVICE_FIELDS),
                to_attr="public_services",
            )
        )
        .order_by("-scheduled_start", "-id")
    )


def maintenance_touching(service):
    """Announced maintenance of ``service``, newest first; none when it is not public."""
    return public_maintenance().filter(services=service, services__is_public=True)


def calendar_maintenance(now=None, *, completed_within=dt.timedelta(days=30)):
    """Maintenance for a calendar, in start order: scheduled and in progress, and what ended
    within ``completed_within`` (so a subscriber's calendar keeps the recent past)."""
    now = now or timezone.now()
    return (
        public_maintenance()
        .filter(
            Q(status=MaintenanceStatus.IN_PROGRESS)
            | Q(status=MaintenanceStatus.SCHEDULED, scheduled_end__gt=now - completed_within)
            | Q(status=MaintenanceStatus.COMPLETED, scheduled_end__gt=now - completed_within)
        )
        .order_by("scheduled_start", "id")
    )


def active_maintenance():
    return public_maintenance().filter(status=MaintenanceStatus.IN_PROGRESS)


def upcoming_maintenance(now=None):
    now = now or timezone.now()
    return (
        public_maintenance()
        .filter(Q(status=MaintenanceStatus.SCHEDULED) & Q(scheduled_end__gt=now))
        .order_by("scheduled_start", "id")
    )


def overall_status(statuses):
    """The worst of ``statuses`` (service status values), operational when there are none."""
    return max(statuses, key=lambda s: STATUS_SEVERITY[s], default=ServiceStatus.OPERATIONAL)


def public_incident_titles(ids):
    """{id: title} of the public incidents among ``ids`` (the others are left out)."""
    if not ids:
        return {}
    return dict(
        Incident.objects.filter(
            pk__in=ids, published_at__isnull=False, is_confidential=False
        ).values_list("pk", "title")
    )


def service_statuses_for_dependencies(ids):
    """(id, (status, name)) of services a public service depends on: the name only when the
    service is public (a private one is hurt without being named)."""
    if not ids:
        return []
    return [
        (pk, (status, name if is_public else None))
        for pk, status, name, is_public in Service.objects.filter(pk__in=ids).values_list(
            "pk", "status", "name", "is_public"
        )
    ]


def history_incidents():
    """Every public incident as plain values (pk, title, public_status, published_at,
    resolved_at), newest first: the history pages list them."""
    return (
        Incident.objects.filter(published_at__isnull=False, is_confidential=False)
        .order_by("-published_at", "-id")
        .values("pk", "title", "public_status", "published_at", "resolved_at")
    )


def history_maintenance():
    """Every announced maintenance window as plain values, newest first."""
    return (
        _announced_maintenance()
        .order_by("-scheduled_start", "-id")
        .values("pk", "title", "status", "scheduled_start", "scheduled_end")
    )


def incident_impacts(incident_ids):
    """{incident id: the statuses it caused on public services}, past and present impacts
    alike (a resolved incident keeps the impact it had). One query."""
    caused = {}
    rows = ServiceImpact.objects.filter(
        cause_kind=CauseKind.INCIDENT, cause_id__in=list(incident_ids), service__is_public=True
    ).values_list("cause_id", "status")
    for cause_id, status in rows:
        caused.setdefault(cause_id, []).append(status)
    return caused


def maintenance_times(window_ids):
    """{window id: (first start, last end or None while one is open)} of the windows' impacts
    on public services: when maintenance really began and ended. One query."""
    times = {}
    rows = ServiceImpact.objects.filter(
        cause_kind=CauseKind.MAINTENANCE, cause_id__in=list(window_ids), service__is_public=True
    ).values_list("cause_id", "valid_from", "valid_to")
    for cause_id, start, end in rows:
        if cause_id not in times:
            times[cause_id] = (start, end)
            continue
        first, last = times[cause_id]
        still_open = last is None or end is None
        times[cause_id] = (min(first, start), None if still_open else max(last, end))
    return times

"""Writes to the catalog that carry a rule: service status and maintenance transitions."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from services.models import (
    MaintenanceStatus,
    MaintenanceWindow,
    Service,
    ServiceStatus,
    worst_status,
)


class CatalogError(Exception):
    """A change the catalog refuses; the message is for a person."""


def derived_statuses(service_ids):
    """{service id: status} from open incidents and maintenance in progress, for the given
    services. Two queries whatever the number of services."""
    from incidents.models import OPEN_STATES, IncidentService

    found = {pk: [] for pk in service_ids}
    links = IncidentService.objects.filter(
        service_id__in=found, incident__state__in=OPEN_STATES
    ).values_list("service_id", "status")
    for service_id, status in links:
        found[service_id].append(status)
    in_maintenance = MaintenanceWindow.services.through.objects.filter(
        service_id__in=found, maintenancewindow__status=MaintenanceStatus.IN_PROGRESS
    ).values_list("service_id", flat=True)
    for service_id in in_maintenance:
        found[service_id].append(ServiceStatus.UNDER_MAINTENANCE)
    return {pk: worst_status(statuses) for pk, statuses in found.items()}


def refresh_service_status(service_ids):
    """Set each unpinned service's status to the worst among its open incidents and
    maintenance (``operational`` when none). Returns the ids whose status changed."""
    service_ids = set(service_ids)
    if not service_ids:
        return set()
    wanted = derived_statuses(service_ids)
    moves = {}
    current = Service.objects.filter(pk__in=service_ids, status_pinned=False).values_list(
        "pk", "status"
    )
    for pk, status in current:
        if wanted[pk] != status:
            moves.setdefault(wanted[pk], []).append(pk)
    # One UPDATE per new status (five at most), not one per service: resolving an incident
    # that hurt twenty services costs what resolving one that hurt one service does.
    now = timezone.now()
    for status, pks in moves.items():
        Service.objects.filter(pk__in=pks).update(status=status, updated_at=now)
    return {pk for pks in moves.values() for pk in pks}


def set_service_status(service, *, status, pinned):
    """Staff set a status by hand. Pinned, it stays until unpinned; unpinned, the derived status
    takes over again at once."""
    with transaction.atomic():
        Service.objects.filter(pk=service.pk).update(status=status, status_pinned=pinned)
        if not pinned:
            refresh_service_status([service.pk])
    service.refresh_from_db(fields=["status", "status_pinned"])
    return service


_MAINTENANCE_MOVES = {
    MaintenanceStatus.IN_PROGRESS: {MaintenanceStatus.SCHEDULED},
    MaintenanceStatus.COMPLETED: {MaintenanceStatus.IN_PROGRESS},
    MaintenanceStatus.CANCELLED: {MaintenanceStatus.SCHEDULED},
}


def schedule_maintenance(*, title, services, scheduled_start, scheduled_end, public_description=""):
    """Create a maintenance window and tell its subscribers."""
    if scheduled_end <= scheduled_start:
        raise CatalogError(_("The end must be after the start."))
    with transaction.atomic():
        window = MaintenanceWindow.objects.create(
            title=title,
            scheduled_start=scheduled_start,
            scheduled_end=scheduled_end,
            public_description=public_description,
        )
        window.services.set(services)
        announce_maintenance(window)
    return window


def announce_maintenance(window):
    """Tell the subscribers of a newly scheduled window (its services must be set). Safe to
    call twice: the event key makes the second call a no-op."""
    from notifications.models import EventKind
    from notifications.outbox import enqueue_maintenance_event

    if window.status == MaintenanceStatus.SCHEDULED:
        enqueue_maintenance_event(window=window, kind=EventKind.MAINTENANCE_SCHEDULED)


def move_maintenance(window, *, to):
    """Start, complete or cancel a maintenance window; services follow, subscribers hear."""
    from notifications.models import EventKind
    from notifications.outbox import enqueue_maintenance_event

    with transaction.atomic():
        window = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
        if window.status not in _MAINTENANCE_MOVES.get(to, ()):
            raise CatalogError(
                _("A maintenance that is %(current)s cannot become %(to)s.")
                % {
                    "current": window.get_status_display(),
                    "to": MaintenanceStatus(to).label,
                }
            )
        window.status = to
        window.save(update_fields=["status"])
        refresh_service_status(window.services.values_list("pk", flat=True))
        kind = {
            MaintenanceStatus.IN_PROGRESS: EventKind.MAINTENANCE_STARTED,
            MaintenanceStatus.COMPLETED: EventKind.MAINTENANCE_COMPLETED,
        }.get(to)
        if kind:
            enqueue_maintenance_event(window=window, kind=kind)
    return window

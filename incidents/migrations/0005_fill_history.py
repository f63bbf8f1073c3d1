"""Fill the catalog's history from what existed before it was kept: each incident's impacts from
its timeline (open from creation or a reopen until a resolution, with the affected services as
each "affected services changed" event left them), maintenance windows in progress or completed,
then every service's status history from those impacts (pinned services end with their pin)."""

from django.db import migrations
from django.utils import timezone

from services.history import Impact, Interval, status_intervals

STATE_EVENTS = {"created", "resolved", "reopened", "services_changed"}


def _statuses(value):
    """{service id: status} from a "services changed" value: {"<id>": status} as written before
    timeline values were typed, or [{"id", "label", "status"}] after."""
    if isinstance(value, dict):
        return {int(k): v for k, v in value.items()}
    return {v["id"]: v["status"] for v in value or ()}


def incident_impacts(incident_id, opened_at, events, current):
    """[(service id, Impact)] of one incident from its (kind, at, old, new) events in time order
    and its current {service id: status}."""
    changes = [e for e in events if e[0] == "services_changed"]
    statuses = _statuses(changes[0][2]) if changes else dict(current)
    open_since = {}  # service id -> (status, from)
    found = []

    def end(pks, at):
        for pk in pks:
            status, since = open_since.pop(pk)
            found.append((pk, Impact(status, "incident", incident_id, since, at)))

    def start(at):
        for pk, status in statuses.items():
            open_since.setdefault(pk, (status, at))

    is_open = not any(e[0] == "created" for e in events)
    if is_open:
        start(opened_at)
    for kind, at, _old, new in events:
        if kind in ("created", "reopened"):
            is_open = True
            start(at)
        elif kind == "resolved":
            is_open = False
            end(list(open_since), at)
        elif kind == "services_changed":
            statuses = _statuses(new)
            if is_open:
                end([pk for pk, (s, _) in open_since.items() if statuses.get(pk) != s], at)
                start(at)
    found += [
        (pk, Impact(status, "incident", incident_id, since, None))
        for pk, (status, since) in open_since.items()
    ]
    return found


def fill(apps, schema_editor):
    Incident = apps.get_model("incidents", "Incident")
    IncidentEvent = apps.get_model("incidents", "IncidentEvent")
    IncidentService = apps.get_model("incidents", "IncidentService")
    MaintenanceWindow = apps.get_model("services", "MaintenanceWindow")
    Service = apps.get_model("services", "Service")
    ServiceImpact = apps.get_model("services", "ServiceImpact")
    ServiceStatusInterval = apps.get_model("services", "ServiceStatusInterval")
    now = timezone.now()

    current = {}
    for incident_id, service_id, status in IncidentService.objects.values_list(
        "incident_id", "service_id", "status"
    ):
        current.setdefault(incident_id, {})[service_id] = status
    events = {}
    for incident_id, kind, at, old, new in (
        IncidentEvent.objects.filter(kind__in=STATE_EVENTS)
        .order_by("at", "id")
        .values_list("incident_id", "kind", "at", "old_value", "new_value")
    ):
        events.setdefault(incident_id, []).append((kind, at, old, new))

    rows = []
    for incident_id, opened_at in Incident.objects.values_list("pk", "opened_at").iterator():
        for service_id, impact in incident_impacts(
            incident_id, opened_at, events.get(incident_id, []), current.get(incident_id, {})
        ):
            rows.append(ServiceImpact(service_id=service_id, **impact.__dict__))
    for window in MaintenanceWindow.objects.filter(status__in=["in_progress", "completed"]):
        end = window.scheduled_end if window.status == "completed" else None
        for service_id in window.services.values_list("pk", flat=True):
            rows.append(
                ServiceImpact(
                    service_id=service_id,
                    status="under_maintenance",
                    cause_kind="maintenance",
                    cause_id=window.pk,
                    valid_from=window.scheduled_start,
                    valid_to=end if end is None or end >= window.scheduled_start else None,
                )
            )
    ServiceImpact.objects.bulk_create(rows, batch_size=1000)

    by_service = {}
    for row in rows:
        by_service.setdefault(row.service_id, []).append(
            Impact(row.status, row.cause_kind, row.cause_id, row.valid_from, row.valid_to)
        )
    history = []
    for service in Service.objects.all():
        impacts = by_service.get(service.pk, [])
        since = min([service.created_at, *(i.valid_from for i in impacts)])
        intervals = status_intervals(impacts, since)
        if service.status_pinned or intervals[-1].status != service.status:
            # Staff set the status (or it was set outside the rules): what the column says
            # holds from now on.
            last = intervals.pop()
            if last.valid_from < now:
                intervals.append(Interval(**{**last.__dict__, "valid_to": now}))
            kind = "pin" if service.status_pinned else ""
            intervals.append(Interval(service.status, kind, None, now, None))
        history += [ServiceStatusInterval(service_id=service.pk, **i.__dict__) for i in intervals]
    ServiceStatusInterval.objects.bulk_create(history, batch_size=1000)


def empty(apps, schema_editor):
    apps.get_model("services", "ServiceStatusInterval").objects.all().delete()
    apps.get_model("services", "ServiceImpact").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0004_queue_indexes"),
        ("services", "0004_history"),
    ]

    operations = [migrations.RunPython(fill, empty)]

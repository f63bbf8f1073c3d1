"""Named reads of incidents for the admin: the queue, its filters and what a change page shows.

Each function declares the joins and prefetches its page needs, so the number of queries does
not grow with the number of rows shown. Tests pin the changelist's query count.
"""

from datetime import timedelta

from django.db.models import Prefetch, Q

from incidents.models import OPEN_STATES, Incident, IncidentEvent, IncidentService, IncidentState

DUE_SOON = timedelta(hours=1)


def incident_queue(queryset=None):
    """The admin changelist: the assignee joined, the affected services in one prefetch
    (``affected_list``, each with its service)."""
    queryset = Incident.objects.all() if queryset is None else queryset
    return queryset.select_related("assignee").prefetch_related(
        Prefetch(
            "affected",
            queryset=IncidentService.objects.select_related("service").order_by(
                "service__name", "pk"
            ),
            to_attr="affected_list",
        )
    )


def breached_q():
    """Either SLA target flagged as breached by the sweep."""
    return Q(response_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False)


def due_soon_q(now, window=DUE_SOON):
    """Open incidents whose next unmet deadline falls before ``now + window`` and has not been
    flagged as breached yet (a deadline just passed but not swept counts as due)."""
    until = now + window
    response = Q(
        state=IncidentState.NEW,
        acknowledged_at__isnull=True,
        response_due_at__lte=until,
        response_breached_at__isnull=True,
    )
    resolution = Q(
        state__in=[IncidentState.NEW, IncidentState.ACKNOWLEDGED],
        resolve_due_at__lte=until,
        resolve_breached_at__isnull=True,
    )
    return response | resolution


def open_q():
    return Q(state__in=OPEN_STATES)


def incidents_with_service(queryset, service_id):
    """Incidents affecting one service, as a semi-join: no DISTINCT, no duplicate rows."""
    return queryset.filter(
        pk__in=IncidentService.objects.filter(service_id=service_id).values("incident_id")
    )


def incident_timeline(incident):
    return IncidentEvent.objects.filter(incident=incident).select_related("actor")

"""Named reads of incidents for the admin: the queue, its filters and what a change page shows.

Each function declares the joins and prefetches its page needs, so the number of queries does
not grow with the number of rows shown. Tests pin the changelist's query count.
"""

from datetime import timedelta

from django.db.models import BooleanField, ExpressionWrapper, F, Prefetch, Q

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


MY_WORK_LIMIT = 100


def my_work(user, now):
    """What the admin's home shows an agent, from one query over the open incidents the agent
    may see: ``mine`` (assigned to them), ``due_soon`` and ``breached`` (theirs or their
    groups'), ``unassigned`` (in one of their groups) and ``major`` (any open major incident).
    An incident can be in several lists; each is in the queue's order."""
    my_groups = user.groups.all()
    ours = Q(assignee=user) | Q(assignment_group__in=my_groups)
    due_soon = ours & due_soon_q(now)
    breached = ours & breached_q()
    in_my_groups = Q(assignee__isnull=True, assignment_group__in=my_groups)
    wanted = ours | Q(is_major=True)
    found = list(
        Incident.objects.visible_to(user)
        .filter(open_q())
        .filter(wanted)
        .select_related("assignee")
        .annotate(
            is_due_soon=ExpressionWrapper(due_soon, output_field=BooleanField()),
            is_breached=ExpressionWrapper(breached, output_field=BooleanField()),
            in_my_groups=ExpressionWrapper(in_my_groups, output_field=BooleanField()),
        )
        .order_by("priority", F("resolve_due_at").asc(nulls_last=True), "pk")[:MY_WORK_LIMIT]
    )
    return {
        "mine": [i for i in found if i.assignee_id == user.pk],
        "due_soon": [i for i in found if i.is_due_soon],
        "breached": [i for i in found if i.is_breached],
        "unassigned": [i for i in found if i.in_my_groups],
        "major": [i for i in found if i.is_major],
        "capped": len(found) == MY_WORK_LIMIT,
    }


def related_open_incidents(incident, user, limit=10):
    """Other open incidents on any of this incident's services, that ``user`` may see: the
    same outage reported twice, or a second symptom of it. One query."""
    services = IncidentService.objects.filter(incident_id=incident.pk).values("service_id")
    shared = IncidentService.objects.filter(service_id__in=services).values("incident_id")
    return list(
        Incident.objects.visible_to(user)
        .filter(open_q(), pk__in=shared)
        .exclude(pk=incident.pk)
        .select_related("assignee")
        .order_by("priority", "-opened_at")[:limit]
    )

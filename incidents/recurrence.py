"""Recurring incidents: when a service has ``PROBLEM_RECURRENCE_COUNT`` or more incidents within
``PROBLEM_RECURRENCE_DAYS``, a problem is proposed to the problem managers, once per cluster.

A cluster is the service's incidents in the window that no problem holds and no earlier proposal
of the service covered (opened after that proposal's last incident). Its proposal row is keyed by
(service, opening of its first incident): two sweeps racing for a cluster compute the same key
and the unique constraint lets one of them write it, and its staff message, in one transaction.
Confidential incidents are not counted: the proposal and its message would show them.
"""

import datetime as dt

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents import problem_links, workflow
from incidents.models import Incident, IncidentService
from incidents.notify import notify_staff
from notifications.models import EventKind as NotificationKind
from problems import workflow as problem_workflow
from problems.models import ProposalState, RecurrenceProposal

PROBLEM_MANAGER_GROUP = "Problem manager"


def clusters(*, now, count, window):
    """[(service id, incident count, first opened, last opened)] of the services over the
    threshold: one grouped query."""
    covered = RecurrenceProposal.objects.filter(
        service_id=OuterRef("service_id"), window_end__gte=OuterRef("incident__opened_at")
    )
    return list(
        IncidentService.objects.filter(
            incident__opened_at__gt=now - window,
            incident__opened_at__lte=now,
            incident__problem__isnull=True,
            incident__is_confidential=False,
        )
        .exclude(Exists(covered))
        .values("service_id")
        .annotate(
            n=Count("incident_id"),
            first=Min("incident__opened_at"),
            last=Max("incident__opened_at"),
        )
        .filter(n__gte=count)
        .order_by("service_id")
        .values_list("service_id", "n", "first", "last")
    )


def propose_problems(*, now=None, count=None, window=None):
    """Write a proposal (and tell the problem managers) for each new cluster; returns the new
    proposals. Safe to run twice, and twice at once."""
    now = now or timezone.now()
    count = count or settings.PROBLEM_RECURRENCE_COUNT
    window = window or dt.timedelta(days=settings.PROBLEM_RECURRENCE_DAYS)
    made = []
    for service_id, n, first, last in clusters(now=now, count=count, window=window):
        ids = list(
            IncidentService.objects.filter(
                service_id=service_id,
                incident__opened_at__gte=first,
                incident__opened_at__lte=last,
                incident__problem__isnull=True,
                incident__is_confidential=False,
            )
            .order_by("incident_id")
            .values_list("incident_id", flat=True)
        )
        try:
            with transaction.atomic():
                proposal = RecurrenceProposal.objects.create(
                    service_id=service_id,
                    window_start=first,
                    window_end=last,
                    incident_count=n,
                    incident_ids=ids,
                    created_at=now,
                )
                _tell_problem_managers(proposal)
        except IntegrityError:
            continue  # another sweep proposed this cluster first
        made.append(proposal)
    return made


def _tell_problem_managers(proposal):
    group = Group.objects.filter(name=PROBLEM_MANAGER_GROUP).first()
    if group is None:
        return None
    references = ", ".join(Incident(pk=pk).reference for pk in proposal.incident_ids[:20])
    subject = _("%(count)d incidents on %(service)s: a problem is proposed") % {
        "count": proposal.incident_count,
        "service": proposal.service.name,
    }
    body = _(
        "%(service)s had %(count)d incidents between %(start)s and %(end)s UTC (%(references)s). "
        "Open a problem for them, or dismiss the proposal: %(url)s"
    ) % {
        "service": proposal.service.name,
        "count": proposal.incident_count,
        "start": f"{proposal.window_start:%Y-%m-%d %H:%M}",
        "end": f"{proposal.window_end:%Y-%m-%d %H:%M}",
        "references": references,
        "url": f"{settings.SITE_URL}/admin/problems/recurrenceproposal/?state__exact=open",
    }
    return notify_staff(
        kind=NotificationKind.PROBLEM_PROPOSED,
        key=f"problem-proposal:{proposal.pk}",
        subject=subject,
        body=body,
        groups=[group],
    )


def accept_proposal(proposal, *, actor, title=None):
    """Open a problem for the proposal's incidents still without one (those ``actor`` sees),
    and mark it accepted, in one transaction."""
    incidents = Incident.objects.visible_to(actor).filter(
        pk__in=proposal.incident_ids, problem__isnull=True
    )
    if not incidents.exists():
        raise workflow.WorkflowError(
            _("The proposal's incidents are all linked to a problem already.")
        )
    title = title or _("Recurring incidents on %(service)s") % {"service": proposal.service.name}
    with transaction.atomic():
        problem = problem_links.create_problem_from_incidents(
            incidents.order_by("pk"), actor=actor, title=title
        )
        try:
            problem_workflow.settle_proposal(
                proposal, actor=actor, state=ProposalState.ACCEPTED, problem=problem
            )
        except problem_workflow.WorkflowError as exc:
            raise workflow.WorkflowError(str(exc)) from exc
    return problem

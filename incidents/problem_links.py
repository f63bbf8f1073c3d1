"""Where incidents meet problems: what needs both apps (problems sit below incidents, so these
live here and call ``problems.workflow`` and ``incidents.workflow``).

- the known errors to suggest on an incident, and the search over them;
- a problem opened from selected incidents (the incident list's bulk action);
- the open incidents of a problem, resolved together when the problem is.
"""

from django.db import transaction
from django.db.models import Min, Q
from django.utils.translation import gettext as _

from incidents import workflow
from incidents.models import OPEN_STATES, Incident, IncidentService
from problems import workflow as problem_workflow
from problems.models import Problem, parse_reference

SUGGESTIONS_SHOWN = 5


def known_error_suggestions(incident, actor, *, limit=SUGGESTIONS_SHOWN):
    """The known errors on the incident's affected services, newest first, without the one it
    is linked to already: one query."""
    services = IncidentService.objects.filter(incident_id=incident.pk).values("service_id")
    return list(
        Problem.objects.visible_to(actor)
        .known_errors_for_services(services)
        .exclude(pk=incident.problem_id or 0)
        .order_by("-known_error_at", "-id")[:limit]
    )


def search_known_errors(text, actor, *, limit=SUGGESTIONS_SHOWN):
    """Known errors matching ``text``: a reference (PRB-000012) exactly, else words of the
    title, workaround or root cause."""
    text = (text or "").strip()
    if not text:
        return []
    found = Problem.objects.visible_to(actor).known_errors()
    pk = parse_reference(text)
    if pk is not None:
        found = found.filter(pk=pk)
    else:
        for word in text.split()[:5]:
            found = found.filter(
                Q(title__icontains=word)
                | Q(workaround__icontains=word)
                | Q(root_cause__icontains=word)
            )
    return list(found.order_by("-known_error_at", "-id")[:limit])


def create_problem_from_incidents(incidents, *, actor, title, description="", owner=None):
    """Open a problem for ``incidents`` (already narrowed to what ``actor`` sees) and link them
    all, in one transaction: its services are theirs, its priority their highest. Refused
    whole if any incident cannot be linked (``incidents.workflow.WorkflowError``)."""
    incidents = list(incidents)
    if not incidents:
        raise workflow.WorkflowError(_("Select at least one incident."))
    pks = [i.pk for i in incidents]
    services = {
        link.service
        for link in IncidentService.objects.filter(incident_id__in=pks).select_related("service")
    }
    priority = Incident.objects.filter(pk__in=pks).aggregate(p=Min("priority"))["p"] or 3
    with transaction.atomic():
        try:
            problem = problem_workflow.create_problem(
                actor=actor,
                title=title,
                description=description,
                priority=priority,
                services=sorted(services, key=lambda s: s.pk),
                owner=owner,
            )
        except problem_workflow.WorkflowError as exc:
            raise workflow.WorkflowError(str(exc), field=exc.field) from exc
        for incident in sorted(incidents, key=lambda i: i.pk):
            workflow.link_problem(incident, actor=actor, problem=problem)
    return problem


def open_linked_incidents(problem, actor):
    """The problem's linked incidents still open, that ``actor`` may see."""
    return (
        Incident.objects.visible_to(actor)
        .filter(problem_id=problem.pk, state__in=OPEN_STATES)
        .order_by("pk")
    )


def resolve_linked_incidents(problem, *, actor, incident_ids, code, notes):
    """Resolve the chosen open incidents of ``problem`` through ``incidents.workflow.resolve``,
    each in its own transaction (one refused does not undo the others). Returns (resolved
    references, refusals)."""
    resolved, refused = [], []
    chosen = open_linked_incidents(problem, actor).filter(pk__in=incident_ids)
    for incident in chosen:
        try:
            workflow.resolve(incident, actor=actor, code=code, notes=notes)
        except workflow.WorkflowError as exc:
            refused.append(str(exc))
        else:
            resolved.append(incident.reference)
    return resolved, refused

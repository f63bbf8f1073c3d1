"""The one write path for problems.

Every change to a problem (from its admin, the API, the incidents side linking one, or a task)
is one function here, with keyword-only arguments. Each checks who acts (``check_may``), locks
the row (``select_for_update``), refuses a stale ``expected_version`` and an illegal move, then
changes the row and writes its ``ProblemEvent`` in the same transaction.

Problems sit below incidents: nothing here imports the incidents app. Linking an incident is
done by ``incidents.workflow.link_problem``, which calls ``check_linkable`` and
``record_incident_link`` inside its own transaction, so both timelines say it.
"""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from itsm.actors import as_actor
from problems.models import (
    Problem,
    ProblemEvent,
    ProblemEventKind,
    ProblemState,
    ProposalState,
    RecurrenceProposal,
    can_see_problems,
)
from services.models import Priority


class WorkflowError(Exception):
    """A change the problem workflow refuses; ``field`` names the input it is about."""

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.field = field


class IllegalTransition(WorkflowError):
    pass


class NotPermitted(WorkflowError):
    pass


class ProblemNotFound(NotPermitted):
    """The actor cannot see the problem: to them it does not exist (404)."""


class StaleVersion(WorkflowError):
    def __init__(self, message, *, current_version):
        super().__init__(message)
        self.current_version = current_version


S = ProblemState
LEGAL_FROM = {
    "start_investigation": {S.NEW},
    "record_known_error": {S.NEW, S.INVESTIGATING},
    "resolve": {S.NEW, S.INVESTIGATING, S.KNOWN_ERROR},
    "close": {S.RESOLVED},
    "reopen": {S.RESOLVED, S.CLOSED},
    "edit": {S.NEW, S.INVESTIGATING, S.KNOWN_ERROR, S.RESOLVED},
    "link_incident": {S.NEW, S.INVESTIGATING, S.KNOWN_ERROR, S.RESOLVED},
}

ACTION_PERMISSIONS = {
    "create": "problems.add_problem",
    "edit": "problems.change_problem",
    **{a: "problems.work_problem" for a in LEGAL_FROM if a != "edit"},
}

_ACTION_LABELS = {
    "start_investigation": pgettext_lazy("cannot …", "start investigating"),
    "record_known_error": pgettext_lazy("cannot …", "record a known error for"),
    "resolve": pgettext_lazy("cannot …", "resolve"),
    "close": pgettext_lazy("cannot …", "close"),
    "reopen": pgettext_lazy("cannot …", "reopen"),
    "edit": pgettext_lazy("cannot …", "edit"),
    "link_incident": pgettext_lazy("cannot …", "link an incident to"),
    "create": pgettext_lazy("cannot …", "create"),
}


def legal_actions(problem):
    """The actions the problem's state allows, for buttons and API hints."""
    return {action for action, states in LEGAL_FROM.items() if problem.state in states}


def may(actor, action, problem=None):
    try:
        check_may(actor, action, problem)
    except NotPermitted:
        return False
    return True


def check_may(actor, action, problem=None):
    """Refuse ``actor`` doing ``action``: ``ProblemNotFound`` when it cannot see ``problem``,
    ``NotPermitted`` when it lacks the permission. Returns the ``Actor``."""
    actor = as_actor(actor)
    if problem is not None and not can_see_problems(actor):
        raise ProblemNotFound(_("No such problem."))
    if not actor.has_perm(ACTION_PERMISSIONS[action]):
        raise NotPermitted(
            _("You are not allowed to %(action)s this problem.")
            % {"action": _ACTION_LABELS[action]}
        )
    return actor


# --- plumbing ----------------------------------------------------------------------------------


def _lock(problem, expected_version, action):
    """Re-read and lock the row (inside ``transaction.atomic``); refuse a stale version, then
    an illegal move."""
    locked = Problem.objects.select_for_update(of=("self",)).select_related("owner", "group__group")
    locked = locked.get(pk=problem.pk)
    if expected_version is not None and locked.version != expected_version:
        raise StaleVersion(
            _(
                "%(reference)s was changed by someone else after you opened it. Reload to see "
                "the current version, then apply your change again."
            )
            % {"reference": locked.reference},
            current_version=locked.version,
        )
    if locked.state not in LEGAL_FROM[action]:
        raise IllegalTransition(
            _("Cannot %(action)s %(reference)s: it is %(state)s.")
            % {
                "action": _ACTION_LABELS[action],
                "reference": locked.reference,
                "state": locked.get_state_display().lower(),
            }
        )
    return locked


def _ref(obj, label=None):
    if obj is None:
        return None
    return {"id": obj.pk, "label": label or str(obj)}


def _user_ref(user):
    return _ref(user, user.get_username()) if user is not None else None


def _jsonable(value):
    if hasattr(value, "get_username"):
        return _user_ref(value)
    if hasattr(value, "pk"):
        return _ref(value)
    return value


def _event(problem, *, actor, kind, at, old=None, new=None, note="", version=None):
    actor = as_actor(actor)
    return ProblemEvent.objects.create(
        problem=problem,
        actor_kind=actor.kind,
        actor=actor.user,
        actor_label=actor.label[:150],
        actor_ref=actor.ref[:64],
        kind=kind,
        at=at,
        old_value=old,
        new_value=new,
        note=note,
        version=version,
    )


def _transition(problem, *, actor, kind, old, at, note="", fields=()):
    problem.version += 1
    problem.save(update_fields=["state", "version", "updated_at", *fields])
    _event(
        problem,
        actor=actor,
        kind=kind,
        at=at,
        old=old,
        new=problem.state,
        note=note,
        version=problem.version,
    )
    return problem


def _required(text, field, message):
    text = (text or "").strip()
    if not text:
        raise WorkflowError(message, field=field)
    return text


def _priority(value):
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = None
    if value not in Priority.values:
        raise WorkflowError(_("The priority is P1 to P5."), field="priority")
    return value


def _service_values(services):
    return sorted(
        ({"id": s.pk, "label": s.name} for s in services), key=lambda v: (v["label"], v["id"])
    )


# --- create and transitions --------------------------------------------------------------------


def create_problem(
    *,
    actor,
    title,
    description="",
    priority=Priority.P3,
    services=(),
    owner=None,
    group=None,
    now=None,
):
    """Open a problem (state new). ``services``: the affected services."""
    actor = check_may(actor, "create")
    title = _required(title, "title", _("A problem needs a title."))
    priority = _priority(priority)
    services = list(services)
    now = now or timezone.now()
    with transaction.atomic():
        problem = Problem.objects.create(
            title=title,
            description=description or "",
            priority=priority,
            owner=owner,
            group=group,
            created_at=now,
        )
        if services:
            problem.services.set(services)
        _event(
            problem,
            actor=actor,
            kind=ProblemEventKind.CREATED,
            at=now,
            new={
                "priority": priority,
                "services": _service_values(services),
                "owner": _user_ref(owner),
                "group": _ref(group),
            },
            version=problem.version,
        )
    return problem


def start_investigation(problem, *, actor, expected_version=None, now=None):
    actor = check_may(actor, "start_investigation", problem)
    with transaction.atomic():
        problem = _lock(problem, expected_version, "start_investigation")
        now = now or timezone.now()
        old = problem.state
        problem.state = S.INVESTIGATING
        problem.investigating_at = now
        if problem.owner_id is None and actor.user is not None:
            problem.owner = actor.user
        return _transition(
            problem,
            actor=actor,
            kind=ProblemEventKind.INVESTIGATING,
            old=old,
            at=now,
            fields=["investigating_at", "owner"],
        )


def record_known_error(
    problem, *, actor, workaround, root_cause=None, expected_version=None, now=None
):
    """The cause is known and a workaround exists (required): linked and future incidents on
    its services are offered it."""
    actor = check_may(actor, "record_known_error", problem)
    workaround = _required(
        workaround, "workaround", _("A known error needs a workaround agents can apply.")
    )
    with transaction.atomic():
        problem = _lock(problem, expected_version, "record_known_error")
        now = now or timezone.now()
        old = problem.state
        problem.state = S.KNOWN_ERROR
        problem.known_error_at = now
        problem.investigating_at = problem.investigating_at or now
        problem.workaround = workaround
        if root_cause is not None:
            problem.root_cause = root_cause.strip()
        return _transition(
            problem,
            actor=actor,
            kind=ProblemEventKind.KNOWN_ERROR,
            old=old,
            at=now,
            note=workaround,
            fields=["known_error_at", "investigating_at", "workaround", "root_cause"],
        )


def resolve(problem, *, actor, permanent_fix, root_cause=None, expected_version=None, now=None):
    """The permanent fix (required) is in place. The linked incidents are not touched here:
    the incidents side offers them for resolution (``incidents.problem_links``)."""
    actor = check_may(actor, "resolve", problem)
    permanent_fix = _required(permanent_fix, "permanent_fix", _("Say what the permanent fix is."))
    with transaction.atomic():
        problem = _lock(problem, expected_version, "resolve")
        now = now or timezone.now()
        old = problem.state
        problem.state = S.RESOLVED
        problem.resolved_at = now
        problem.permanent_fix = permanent_fix
        if root_cause is not None:
            problem.root_cause = root_cause.strip()
        return _transition(
            problem,
            actor=actor,
            kind=ProblemEventKind.RESOLVED,
            old=old,
            at=now,
            note=permanent_fix,
            fields=["resolved_at", "permanent_fix", "root_cause"],
        )


def close(problem, *, actor, expected_version=None, now=None):
    actor = check_may(actor, "close", problem)
    with transaction.atomic():
        problem = _lock(problem, expected_version, "close")
        now = now or timezone.now()
        problem.state = S.CLOSED
        problem.closed_at = now
        return _transition(
            problem,
            actor=actor,
            kind=ProblemEventKind.CLOSED,
            old=S.RESOLVED,
            at=now,
            fields=["closed_at"],
        )


def reopen(problem, *, actor, reason, expected_version=None, now=None):
    """The fix did not hold: back to investigating (reason required)."""
    actor = check_may(actor, "reopen", problem)
    reason = _required(reason, "reason", _("Say why the problem is reopened."))
    with transaction.atomic():
        problem = _lock(problem, expected_version, "reopen")
        now = now or timezone.now()
        old = problem.state
        problem.state = S.INVESTIGATING
        problem.resolved_at = None
        problem.closed_at = None
        return _transition(
            problem,
            actor=actor,
            kind=ProblemEventKind.REOPENED,
            old=old,
            at=now,
            note=reason,
            fields=["resolved_at", "closed_at"],
        )


EDITABLE_FIELDS = (
    "title",
    "description",
    "priority",
    "owner",
    "group",
    "root_cause",
    "workaround",
    "permanent_fix",
)


def edit(problem, *, actor, expected_version, changes, now=None):
    """Apply an edit form: plain fields and, when present, ``services``. One version bump,
    one event per kind of change; nothing changed, nothing written."""
    actor = check_may(actor, "edit", problem)
    unknown = set(changes) - {*EDITABLE_FIELDS, "services"}
    if unknown:
        raise WorkflowError(_("These fields cannot be edited: %s") % ", ".join(sorted(unknown)))
    if "priority" in changes:
        changes = {**changes, "priority": _priority(changes["priority"])}
    with transaction.atomic():
        problem = _lock(problem, expected_version, "edit")
        now = now or timezone.now()
        old, new = {}, {}
        for field in EDITABLE_FIELDS:
            if field not in changes:
                continue
            value = changes[field]
            if isinstance(value, str):
                value = value.strip()
            if getattr(problem, field) != value:
                old[field] = _jsonable(getattr(problem, field))
                new[field] = _jsonable(value)
                setattr(problem, field, value)
        if not problem.title:
            raise WorkflowError(_("A problem needs a title."), field="title")
        if problem.state == S.KNOWN_ERROR and not problem.workaround:
            raise WorkflowError(
                _("A known error needs a workaround agents can apply."), field="workaround"
            )
        services_moved = False
        if "services" in changes:
            wanted = list(changes["services"])
            before = list(problem.services.all())
            if {s.pk for s in before} != {s.pk for s in wanted}:
                problem.services.set(wanted)
                services_moved = True
        if not old and not services_moved:
            return problem
        problem.version += 1
        problem.save()
        if old:
            _event(
                problem,
                actor=actor,
                kind=ProblemEventKind.EDITED,
                at=now,
                old=old,
                new=new,
                version=problem.version,
            )
        if services_moved:
            _event(
                problem,
                actor=actor,
                kind=ProblemEventKind.SERVICES_CHANGED,
                at=now,
                old=_service_values(before),
                new=_service_values(wanted),
                version=problem.version,
            )
        return problem


# --- links from the incidents side -------------------------------------------------------------


def check_linkable(problem, *, actor):
    """Refuse linking an incident to ``problem`` (called by ``incidents.workflow`` before it
    changes anything): the actor must see problems and the problem must not be closed. Who may
    link is the incidents side's question (an agent working the incident links a known error)."""
    if not can_see_problems(actor):
        raise ProblemNotFound(_("No such problem."))
    if problem.state not in LEGAL_FROM["link_incident"]:
        raise IllegalTransition(
            _("Cannot link an incident to %(reference)s: it is closed.")
            % {"reference": problem.reference}
        )


def record_incident_link(problem, *, actor, incident, linked, at, note=""):
    """Write on the problem's timeline that ``incident`` ({"id", "label"}) was linked to it or
    unlinked from it. Called inside the incident's transaction; a link bumps no version of the
    problem (nobody editing the problem loses their form to an agent linking an incident)."""
    kind = ProblemEventKind.INCIDENT_LINKED if linked else ProblemEventKind.INCIDENT_UNLINKED
    return _event(
        problem,
        actor=actor,
        kind=kind,
        at=at,
        old=None if linked else incident,
        new=incident if linked else None,
        note=note,
    )


# --- recurrence proposals ----------------------------------------------------------------------


def settle_proposal(proposal, *, actor, state, problem=None):
    """Mark an open proposal accepted (with the problem opened for it) or dismissed. A
    conditional UPDATE: of two people settling it at once, one does; the other is refused."""
    check_may(actor, "create" if state == ProposalState.ACCEPTED else "edit")
    if state not in (ProposalState.ACCEPTED, ProposalState.DISMISSED):
        raise WorkflowError(_("A proposal is accepted or dismissed."))
    updated = RecurrenceProposal.objects.filter(pk=proposal.pk, state=ProposalState.OPEN).update(
        state=state, problem=problem
    )
    if not updated:
        raise IllegalTransition(_("This proposal was settled already."))
    proposal.state, proposal.problem = state, problem
    return proposal

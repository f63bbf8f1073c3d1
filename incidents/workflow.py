"""The one write path for incidents.

Every change to an incident — from the admin, the API, an alert or a task — is one function
here. Each takes the incident and keyword-only arguments, locks the row, checks the move is
legal (and, given ``expected_version``, that nobody changed the incident meanwhile), then in one
transaction changes the row, writes the timeline event, recomputes the SLA deadlines, refreshes
the affected services' status and writes the outbox rows. Delivery starts on commit.

Callers translate ``WorkflowError`` into a message or a status code; they hold no rules.

Who may act is decided here too (zulip's ``check_*``/``do_*`` split): each public function is
wrapped by ``_checked(action)``, which turns ``actor`` (a user or an ``itsm.actors.Actor``) into an
``Actor`` and refuses, before anything is locked or changed, an actor who lacks the action's
permission (``ACTION_PERMISSIONS``: the model permissions of the seeded groups; the system may
do everything) or who cannot see the incident (``incidents.visibility``). The admin, the API and
tasks therefore run the same check; ``may`` answers the same question for buttons.
"""

import functools

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from incidents import deadlines, escalation, notify, sweep, visibility
from incidents.models import (
    OPEN_STATES,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentPause,
    IncidentService,
    IncidentState,
    IncidentUpdate,
    PriorityMatrixEntry,
    PublicStatus,
    ResolutionCode,
)
from incidents.notify import enqueue_incident_event, notify_staff
from incidents.priority import priority_from_matrix
from itsm import rows
from itsm.actors import as_actor
from itsm.publishing import public_side_changed
from notifications.models import EventKind as NotificationKind
from oncall import workflow as oncall
from problems import workflow as problem_workflow
from services.models import CauseKind, Service, ServiceStatus
from services.workflow import end_impacts, set_impacts


class WorkflowError(Exception):
    """A change the incident workflow refuses. The message is written for the person acting;
    ``field`` names the input it is about (``reason``, ``notes``...), for a form to show it by."""

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.field = field


class IllegalTransition(WorkflowError):
    pass


class NotPermitted(WorkflowError):
    """The actor may not make this change (the admin shows it as a message, an API as 403)."""


class IncidentNotFound(NotPermitted):
    """The actor cannot see the incident: to them it does not exist (404, never 403)."""


class StaleVersion(WorkflowError):
    """The caller edited an older version of the incident than the one stored."""

    def __init__(self, message, *, current_version, last_event=None, fields=()):
        super().__init__(message)
        self.current_version = current_version
        self.last_event = last_event
        # What the clashing changes touched ("state", field names), for a form to mark.
        self.fields = set(fields)


# Timeline events written without a version bump.
VERSIONLESS_EVENTS = (EventKind.SLA_WARNING, EventKind.SLA_BREACHED)

# Which states each action may start from.
LEGAL_FROM = {
    "acknowledge": {IncidentState.NEW},
    "acknowledge_page": set(OPEN_STATES),
    "assign": set(OPEN_STATES),
    "change_priority": set(OPEN_STATES),
    "hold": {IncidentState.NEW, IncidentState.ACKNOWLEDGED},
    "resume": {IncidentState.ON_HOLD},
    "post_update": {*OPEN_STATES, IncidentState.RESOLVED},
    "resolve": set(OPEN_STATES),
    "close": {IncidentState.RESOLVED},
    "reopen": {IncidentState.RESOLVED},
    "edit": {*OPEN_STATES, IncidentState.RESOLVED},
    "link_problem": {*OPEN_STATES, IncidentState.RESOLVED, IncidentState.CLOSED},
}


# The permission each action needs ("app_label.codename"). Seeded groups: agents and incident
# managers work incidents, managers and the Security group may mark one confidential, read-only
# users do nothing here.
ACTION_PERMISSIONS = {
    "create": "incidents.add_incident",
    "edit": "incidents.change_incident",
    "confidential": visibility.CONFIDENTIAL_PERMISSION,
    **{
        action: "incidents.work_incident"
        for action in LEGAL_FROM
        if action != "edit"  # the change form: change_incident, as the admin asks
    },
}


def may(actor, action, incident=None):
    """Whether ``actor`` may do ``action`` (to ``incident``, when given): its permission and,
    for an incident, that the actor can see it. The state is not considered (``legal_actions``)."""
    try:
        check_may(actor, action, incident)
    except NotPermitted:
        return False
    return True


def check_may(actor, action, incident=None):
    """Refuse ``actor`` doing ``action``: ``IncidentNotFound`` when it cannot see ``incident``
    (checked first, so a refusal says nothing of an incident the actor must not know of),
    ``NotPermitted`` when it lacks the permission."""
    actor = as_actor(actor)
    if incident is not None and not visibility.can_see(actor, incident):
        raise IncidentNotFound(_("No such incident."))
    if not actor.has_perm(ACTION_PERMISSIONS[action]):
        raise NotPermitted(
            _("You are not allowed to %(action)s this incident.")
            % {"action": _PERMISSION_LABELS.get(action) or _ACTION_LABELS[action]}
        )
    return actor


def _checked(action):
    """Wrap a public workflow function: ``actor`` becomes an ``Actor`` and is checked against
    ``action`` (and the incident passed first, if any) before the function runs. The check reads
    the caller's copy of the incident, which the caller loaded through ``visible_to``; the
    function then locks and re-reads the row."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, actor, **kwargs):
            incident = args[0] if args else None
            actor = check_may(actor, action, incident)
            result = function(*args, actor=actor, **kwargs)
            if isinstance(result, Incident):
                # A change that changed nothing returns before its save: what it read with
                # the lock must not stand in for a later read of the caller's copy.
                deadlines.drop_prefetched(result)
            return result

        return wrapper

    return decorate


def legal_actions(incident):
    """The actions the incident's current state allows, for buttons and API hints."""
    return {action for action, states in LEGAL_FROM.items() if incident.state in states}


# --- plumbing ----------------------------------------------------------------------------------


def _now(now):
    """The time of a change. Transitions take it right after ``_lock``, never before: two
    writers racing for the row then stamp their events in the order they commit."""
    return now or timezone.now()


def _lock(incident, expected_version, action, *, matrix_cell=None, touches=None, prefetch=()):
    """Re-read and lock the row (the caller is inside ``transaction.atomic``); refuse a stale
    version and an illegal move. ``matrix_cell`` (impact, urgency): read that cell of the
    priority matrix in the same query (``matrix_priority``, None when the cell is missing).
    ``prefetch`` (``deadlines.CLOCK``, ``POLICY``, ``notify.AUDIENCE``): what the change
    will read, sent in the same round trip, each read after the lock is granted.
    ``touches``: what the caller changes (default: ``ACTION_TOUCHES[action]``); a version
    that moved only through changes touching none of it is not stale (a resolve after a
    colleague's work note goes through, on the current row)."""
    locked = _locked_row(incident.pk, matrix_cell, (*prefetch, notify.WEBHOOK_TARGETS))
    if expected_version is not None and locked.version != expected_version:
        touches = ACTION_TOUCHES[action] if touches is None else frozenset(touches)
        since = _changes_since(locked, expected_version)
        clashing = conflicting(since, expected_version, locked.version, touches)
        if clashing:
            _refuse_stale(locked, clashing)
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


# --- what a stale form may still do ---------------------------------------------------------
#
# Each change names what it touches; a change made since the caller's version conflicts with the
# caller's only if they touch the same thing. State changes all touch "state" (a resolve after a
# colleague's hold is refused: the agent decided on a state they no longer see); a work note
# touches nothing; a public update touches the public story.

_STATE = frozenset({"state"})
_ASSIGNMENT = frozenset({"assignee", "assignment_group"})
_PRIORITY = frozenset({"impact", "urgency"})
_PUBLIC = frozenset({"public_status"})

EVENT_TOUCHES = {
    EventKind.ACKNOWLEDGED: _STATE,
    EventKind.HELD: _STATE,
    EventKind.RESUMED: _STATE,
    EventKind.RESOLVED: _STATE,
    EventKind.CLOSED: _STATE,
    EventKind.REOPENED: _STATE,
    EventKind.ASSIGNED: _ASSIGNMENT,
    EventKind.PRIORITY_CHANGED: _PRIORITY,
    EventKind.SERVICES_CHANGED: frozenset({"services"}),
    EventKind.MAJOR_CHANGED: frozenset({"is_major"}),
    EventKind.PROBLEM_LINKED: frozenset({"problem"}),
}

ACTION_TOUCHES = {
    **dict.fromkeys(
        ["acknowledge", "acknowledge_page", "hold", "resume", "resolve", "close", "reopen"], _STATE
    ),
    "assign": _ASSIGNMENT,
    "change_priority": _PRIORITY,
    "link_problem": frozenset({"problem"}),
    "post_update": frozenset(),  # a work note; a public update passes its own (see there)
    "edit": None,  # what the form changed (see ``edit``)
}


class Change:
    """A change made since a caller's version, as the stale check sees it."""

    def __init__(self, version, kind, touches, event=None):
        self.version, self.kind, self.touches, self.event = version, kind, touches, event


def touched_by(kind, new_value):
    """What a timeline event of ``kind`` touched. An unknown kind touches everything."""
    if kind == EventKind.UPDATE_POSTED:
        return _PUBLIC if (new_value or {}).get("public") else frozenset()
    if kind == EventKind.EDITED:
        return frozenset(new_value or {}) or frozenset({"*"})
    return EVENT_TOUCHES.get(kind, frozenset({"*"}))


def conflicting(changes, expected_version, current_version, touches):
    """The changes (made after ``expected_version``, up to ``current_version``) that clash
    with a change touching ``touches``. A version with no recorded change (older rows, or a
    caller ahead of the row) clashes, as does anything touching "*": when in doubt, refuse."""
    if expected_version > current_version:
        return [Change(current_version, None, frozenset({"*"}))]
    seen = {c.version for c in changes}
    missing = [
        Change(v, None, frozenset({"*"}))
        for v in range(expected_version + 1, current_version + 1)
        if v not in seen
    ]
    if missing:
        return missing
    return [c for c in changes if "*" in c.touches or c.touches & touches]


def _changes_since(locked, expected_version):
    return [
        Change(e.version, e.kind, touched_by(e.kind, e.new_value), e)
        for e in IncidentEvent.objects.filter(incident=locked, version__gt=expected_version)
        .exclude(kind__in=VERSIONLESS_EVENTS)
        .order_by("-version", "-id")
    ]


def _refuse_stale(locked, clashing):
    """Raise ``StaleVersion`` naming the latest clashing change (never an SLA signal: those
    bump no version)."""
    last = next((c.event for c in clashing if c.event is not None), None)
    if last is None:
        last = (
            IncidentEvent.objects.filter(incident=locked)
            .exclude(kind__in=VERSIONLESS_EVENTS)
            .order_by("-at", "-id")
            .first()
        )
    who = (last.actor_label if last and last.actor_kind != "system" else None) or _("the system")
    what = last.get_kind_display().lower() if last else _("changed it")
    fields = set().union(*(c.touches for c in clashing)) - {"*"}
    raise StaleVersion(
        _(
            "%(reference)s was changed by %(who)s (%(what)s) after you opened it. "
            "Reload to see the current version, then apply your change again."
        )
        % {"reference": locked.reference, "who": who, "what": what},
        current_version=locked.version,
        last_event=last,
        fields=fields,
    )


@functools.cache
def _matrix_cell_sql():
    q = connection.ops.quote_name
    return (
        f"(SELECT {q('priority')} FROM {q(PriorityMatrixEntry._meta.db_table)} "  # noqa: S608
        f"WHERE {q('impact')} = %s AND {q('urgency')} = %s)"
    )


def _locked_row(pk, matrix_cell=None, prefetch=()):
    """The incident row, locked, read by a statement built once (``itsm.rows``: the ORM's
    ``select_for_update().get()`` took longer to compile than to run), with the priority of
    ``matrix_cell`` as ``matrix_priority`` when asked for, and the reads of ``prefetch``
    (``deadlines.Prefetch``) sent behind it in the same round trip."""
    extra, extra_params = ([_matrix_cell_sql()], matrix_cell) if matrix_cell else ((), ())
    statements = [rows.lock_statement(Incident, pk, extra=extra, extra_params=extra_params)]
    counts = []
    for reader in prefetch:
        wanted = reader.statements(pk)
        statements += wanted
        counts.append(len(wanted))
    found = rows.read_together(statements)
    locked, values = rows.locked_instance(Incident, found[0][0] if found[0] else None)
    if matrix_cell:
        (locked.matrix_priority,) = values
    start = 1
    for reader, count in zip(prefetch, counts, strict=True):
        reader.keep(locked, found[start : start + count])
        start += count
    return locked


_ACTION_LABELS = {
    "acknowledge": pgettext_lazy("cannot …", "acknowledge"),
    "acknowledge_page": pgettext_lazy("cannot …", "acknowledge a page of"),
    "assign": pgettext_lazy("cannot …", "assign"),
    "change_priority": pgettext_lazy("cannot …", "change the priority of"),
    "hold": pgettext_lazy("cannot …", "put on hold"),
    "resume": pgettext_lazy("cannot …", "resume"),
    "post_update": pgettext_lazy("cannot …", "post an update to"),
    "resolve": pgettext_lazy("cannot …", "resolve"),
    "close": pgettext_lazy("cannot …", "close"),
    "reopen": pgettext_lazy("cannot …", "reopen"),
    "edit": pgettext_lazy("cannot …", "edit"),
    "link_problem": pgettext_lazy("cannot …", "link a problem to"),
}
_PERMISSION_LABELS = {
    "create": pgettext_lazy("not allowed to …", "create"),
    "confidential": pgettext_lazy("not allowed to …", "mark as confidential or not"),
}


def _event(incident, *, actor, kind, at, old=None, new=None, note=""):
    """Queue a timeline event on ``incident``: ``_write`` inserts the queued events in the
    statement that saves the row (one round trip where there were two)."""
    actor = as_actor(actor)
    event = IncidentEvent(
        incident=incident,
        actor_kind=actor.kind,
        actor=actor.user,
        actor_label=actor.label[:150],
        actor_ref=actor.ref[:64],
        kind=kind,
        at=at,
        old_value=old,
        new_value=new,
        note=note,
    )
    incident.__dict__.setdefault("_queued_events", []).append(event)
    return event


def _write(incident):
    """Save the incident row (every field, as ``save()`` would) with its queued statements and
    events, in one statement on PostgreSQL. ``save()`` would compile its UPDATE anew each time."""
    statements = incident.__dict__.pop("_queued_statements", [])
    events = incident.__dict__.pop("_queued_events", [])
    _stamp_version(incident, events)
    if events:
        statements.append(rows.insert_statement(events))
    rows.execute_with_inserts(
        statements,
        rows.update_statement(incident),
        new_row=incident.__dict__.pop("_queued_row", None),
    )


def _stamp_version(incident, events):
    for event in events:
        event.version = incident.version  # the version this change produced


def _queue_statement(incident, sql, params):
    """A write of another row that ``_write`` sends with the incident's (a pause)."""
    incident.__dict__.setdefault("_queued_statements", []).append((sql, params))


def _write_events(incident):
    """Insert the queued events now (before rows that must follow them on the timeline)."""
    events = incident.__dict__.pop("_queued_events", [])
    _stamp_version(incident, events)
    if events:
        IncidentEvent.objects.bulk_create(events)


# Timeline values are typed data, so reviews and metrics can be computed from the timeline
# alone: a person, group, service or problem is {"id": …, "label": …} (the label as it read at
# the time), a set of services a list of those with the status caused.


def _ref(obj, label=None):
    if obj is None:
        return None
    return {"id": obj.pk, "label": label or str(obj)}


def _user_ref(user):
    return _ref(user, user.get_username()) if user is not None else None


def _service_values(statuses, names=None):
    """[{"id", "label", "status"}] for {service id: status}, by name; ``names`` ({id: name})
    saves the query."""
    if names is None:
        names = dict(Service.objects.filter(pk__in=statuses).values_list("pk", "name"))
    values = [{"id": pk, "label": names[pk], "status": status} for pk, status in statuses.items()]
    return sorted(values, key=lambda v: (v["label"], v["id"]))


def _save(incident, *, sla=False, repolicy=False, services_changed=False, at=None, met_at=None):
    """Bump the version and save. ``sla``: the clock moved (state, pause), recompute the
    deadlines with the stored policy; ``repolicy``: what picks the policy changed (priority,
    services, organisation), choose it again; ``services_changed``: the affected services or
    the incident's openness changed, so the impacts it causes (and the services' status) follow
    from ``at``; ``met_at``: a target was met now, so a breach that already happened is
    recorded (SLA.md rule 5). Integrators' endpoints hear of the change (``incident.updated``,
    or ``incident.resolved`` for a resolve)."""
    resolving = any(
        e.kind == EventKind.RESOLVED for e in incident.__dict__.get("_queued_events", ())
    )
    if sla or repolicy:
        # A pause queued by this transition is not in the table yet: the clock counts it.
        deadlines.recompute(
            incident,
            reuse_policy=not repolicy,
            pause_change=incident.__dict__.pop("_pause_change", None),
        )
    deadlines.drop_clock(incident)
    incident.version += 1
    if met_at is not None and deadlines.breaches_at_meeting(incident):
        # The breach's event follows the transition's on the timeline, as it happened.
        _write_events(incident)
        sweep.record_breaches_at_meeting(incident, met_at)
    _write(incident)
    if services_changed:
        _tell_catalog(incident, at=at)
    notify.tell_integrators(
        incident,
        NotificationKind.WEBHOOK_INCIDENT_RESOLVED
        if resolving
        else NotificationKind.WEBHOOK_INCIDENT_UPDATED,
    )
    notify.forget_webhook_targets(incident)
    if incident.published_at:
        # Its public page, the status page and the JSON may show something new.
        public_side_changed()
    return incident


def _tell_catalog(incident, *, at, statuses=None):
    """The catalog derives service status from the impacts causes report: an open incident
    causes its affected services' statuses, a resolved or closed one nothing, nor does a
    confidential one (it never moves a public service status by itself)."""
    cause = (CauseKind.INCIDENT, incident.pk)
    if not incident.is_open or incident.is_confidential:
        return end_impacts(cause, at=at)
    if statuses is None:
        statuses = dict(incident.affected.values_list("service_id", "status"))
    return set_impacts(cause, statuses, at=at)


_UNREAD = object()


def _matrix_priority(impact, urgency, cell=_UNREAD):
    """The matrix's priority for ``impact`` × ``urgency``; ``cell``: that cell's priority as
    read already (None: the matrix lacks it)."""
    if cell is _UNREAD:
        cell = PriorityMatrixEntry.objects.filter(impact=impact, urgency=urgency).first()
        cell = cell.priority if cell else None
    matrix = {(impact, urgency): cell} if cell is not None else {}
    try:
        return priority_from_matrix(matrix, impact, urgency)
    except ValueError as exc:
        raise WorkflowError(_("Impact and urgency must each be 1, 2 or 3.")) from exc


def _open_pause(incident, at, reason):
    """Start a pause (hold): written with the incident row by ``_write``."""
    pause = IncidentPause(incident=incident, started_at=at, reason=reason)
    _queue_statement(incident, *rows.insert_statement([pause]))
    incident._pause_change = ("start", at)


@functools.cache
def _close_pause_sql():
    q = connection.ops.quote_name
    return (
        f"UPDATE {q(IncidentPause._meta.db_table)} SET {q('ended_at')} = %s "  # noqa: S608
        f"WHERE {q('incident_id')} = %s AND {q('ended_at')} IS NULL"
    )


def _close_open_pause(incident, at):
    """End the open pause (resume, resolve from hold): written with the incident row."""
    _queue_statement(incident, _close_pause_sql(), [at, incident.pk])
    incident._pause_change = ("end", at)


def _normalise_services(services):
    """Accept services as a list (default status: partial outage) or {service: status}."""
    if isinstance(services, dict):
        items = services.items()
    else:
        items = [(s, ServiceStatus.PARTIAL_OUTAGE) for s in services]
    result = {}
    for service, status in items:
        if status not in ServiceStatus.values or status == ServiceStatus.OPERATIONAL:
            raise WorkflowError(
                _("%(status)s is not a status an incident can cause.") % {"status": status}
            )
        result[getattr(service, "pk", service)] = status
    return result


# --- create ------------------------------------------------------------------------------------


@_checked("create")
def create_incident(
    *,
    actor,
    title,
    description="",
    impact=2,
    urgency=2,
    services=(),
    organization=None,
    contact=None,
    source="admin",
    assignee=None,
    assignment_group=None,
    is_major=False,
    commander=None,
    communications_lead=None,
    is_confidential=False,
    now=None,
):
    """Open an incident. ``services`` is a list of services (each caused a partial outage) or
    {service: status}. Only an actor who may see confidential incidents opens one."""
    now = _now(now)
    if is_confidential:
        check_may(actor, "confidential")
    title = (title or "").strip()
    if not title:
        raise WorkflowError(_("An incident needs a title."))
    statuses = _normalise_services(services)
    if contact is not None and organization is None:
        organization = contact.organization
    # A public subscriber (a contact without an organisation) reports for nobody.
    if contact is not None and (organization is None or contact.organization_id != organization.pk):
        raise WorkflowError(_("The contact does not belong to the reporting organisation."))
    with transaction.atomic():
        incident = Incident.objects.create(
            title=title,
            description=description,
            impact=impact,
            urgency=urgency,
            priority=_matrix_priority(impact, urgency),
            organization=organization,
            contact=contact,
            source=source,
            assignee=assignee,
            assignment_group=assignment_group,
            is_major=is_major,
            commander=commander,
            communications_lead=communications_lead,
            is_confidential=bool(is_confidential),
            opened_at=now,
        )
        IncidentService.objects.bulk_create(
            IncidentService(incident=incident, service_id=pk, status=status)
            for pk, status in statuses.items()
        )
        _event(
            incident,
            actor=actor,
            kind=EventKind.CREATED,
            at=now,
            new={
                "priority": incident.priority,
                "services": _service_values(statuses),
                "assignee": _user_ref(assignee),
                **({"confidential": True} if is_confidential else {}),
            },
        )
        deadlines.recompute(incident)
        if escalation.starts_on_create(incident):
            escalation.start(
                incident, reason="created", now=now, urgent=True, service_ids=list(statuses)
            )
        _write(incident)
        _tell_catalog(incident, at=now, statuses=statuses)
        if assignee is not None or assignment_group is not None:
            _notify_assignment(incident, actor=actor, at=now)
        notify.tell_integrators(incident, NotificationKind.WEBHOOK_INCIDENT_CREATED)
        notify.forget_webhook_targets(incident)
    return incident


# --- transitions -------------------------------------------------------------------------------


@_checked("acknowledge")
def acknowledge(incident, *, actor, expected_version=None, now=None):
    """Take the incident: meets the response target."""
    with transaction.atomic():
        incident = _lock(incident, expected_version, "acknowledge", prefetch=[deadlines.CLOCK])
        now = _now(now)
        incident.state = IncidentState.ACKNOWLEDGED
        incident.acknowledged_at = now
        incident.responded_at = incident.responded_at or now
        if incident.assignee is None and actor.user is not None:
            incident.assignee = actor.user
        _event(
            incident,
            actor=actor,
            kind=EventKind.ACKNOWLEDGED,
            at=now,
            old=IncidentState.NEW,
            new=IncidentState.ACKNOWLEDGED,
        )
        escalation.stop(incident, now=now)
        return _save(incident, sla=True, met_at=now)


@_checked("acknowledge_page")
def acknowledge_page(incident, *, actor, page, now=None):
    """Acknowledge through a page's one-click link (``oncall.workflow.read_ack_token`` checked
    it): the link is used (single-use), the escalation stops, and a new incident is
    acknowledged as by ``acknowledge``; an incident taken already only stops escalating.
    Raises ``oncall.workflow.LinkRefused`` when the link was used meanwhile."""
    with transaction.atomic():
        incident = _lock(incident, None, "acknowledge_page", prefetch=[deadlines.CLOCK])
        now = _now(now)
        if not oncall.use_link(page, now=now):
            raise oncall.LinkRefused(_("This acknowledge link was used already."))
        note = _("Acknowledged through the page link (level %(level)s, round %(round)s).") % {
            "level": page.level + 1,
            "round": page.round + 1,
        }
        escalation.stop(incident, now=now)
        if incident.state != IncidentState.NEW:
            _event(incident, actor=actor, kind=EventKind.PAGED, at=now, note=note)
            return _save(incident)
        incident.state = IncidentState.ACKNOWLEDGED
        incident.acknowledged_at = now
        incident.responded_at = incident.responded_at or now
        if incident.assignee is None and actor.user is not None:
            incident.assignee = actor.user
        _event(
            incident,
            actor=actor,
            kind=EventKind.ACKNOWLEDGED,
            at=now,
            old=IncidentState.NEW,
            new=IncidentState.ACKNOWLEDGED,
            note=note,
        )
        return _save(incident, sla=True, met_at=now)


KEEP = object()  # "leave this part as it is", where None means "clear it"


@_checked("assign")
def assign(incident, *, actor, assignee=KEEP, group=KEEP, expected_version=None, now=None):
    """Give the incident to a person and/or a group. A part not given stays as it is; None
    clears it (back to the group's queue, or to nobody's)."""
    with transaction.atomic():
        incident = _lock(incident, expected_version, "assign")
        now = _now(now)
        if not _do_assign(incident, actor=actor, assignee=assignee, group=group, at=now):
            return incident  # nothing changed: no event, no version bump, no stale forms
        return _save(incident)


def _do_assign(incident, *, actor, assignee, group, at):
    old = {"assignee": _user_ref(incident.assignee), "group": _ref(incident.assignment_group)}
    changed = False
    if assignee is not KEEP and getattr(assignee, "pk", None) != incident.assignee_id:
        incident.assignee = assignee
        changed = True
    if group is not KEEP and getattr(group, "pk", None) != incident.assignment_group_id:
        incident.assignment_group = group
        changed = True
    if not changed:
        return False
    new = {"assignee": _user_ref(incident.assignee), "group": _ref(incident.assignment_group)}
    _event(incident, actor=actor, kind=EventKind.ASSIGNED, at=at, old=old, new=new)
    _notify_assignment(incident, actor=actor, at=at)
    return True


def _notify_assignment(incident, *, actor, at):
    if incident.assignee_id and incident.assignee_id == getattr(actor.user, "pk", None):
        return  # taking it yourself needs no email
    if not incident.assignee_id and not incident.assignment_group_id:
        return  # unassigned: nobody to tell
    subject = _("%(reference)s assigned: %(title)s") % {
        "reference": incident.reference,
        "title": incident.title,
    }
    notify_staff(
        kind=NotificationKind.ASSIGNMENT,
        key=f"incident:{incident.pk}:assignment:{at.isoformat()}",
        subject=subject,
        body=subject,
        users=[incident.assignee] if incident.assignee_id else [],
        groups=[] if incident.assignee_id else [incident.assignment_group],
        incident=incident,
    )


@_checked("change_priority")
def change_priority(incident, *, actor, impact, urgency, expected_version=None, now=None):
    """Re-rate impact and urgency; the priority follows the matrix and the deadlines move."""
    with transaction.atomic():
        incident = _lock(
            incident,
            expected_version,
            "change_priority",
            matrix_cell=(impact, urgency),
            prefetch=[deadlines.POLICY],
        )
        now = _now(now)
        if not _do_change_priority(incident, actor=actor, impact=impact, urgency=urgency, at=now):
            return incident
        return _save(incident, repolicy=True)


def _do_change_priority(incident, *, actor, impact, urgency, at):
    # The cell comes with the lock when the caller asked for it (one query fewer).
    priority = _matrix_priority(impact, urgency, getattr(incident, "matrix_priority", _UNREAD))
    if (impact, urgency) == (incident.impact, incident.urgency):
        return False
    old = {"impact": incident.impact, "urgency": incident.urgency, "priority": incident.priority}
    incident.impact, incident.urgency, incident.priority = impact, urgency, priority
    new = {"impact": impact, "urgency": urgency, "priority": priority}
    _event(incident, actor=actor, kind=EventKind.PRIORITY_CHANGED, at=at, old=old, new=new)
    return True


@_checked("hold")
def hold(incident, *, actor, reason, expected_version=None, now=None):
    """Pause the SLA clock (waiting on the customer or a supplier). A reason is required."""
    reason = (reason or "").strip()
    if not reason:
        raise WorkflowError(_("Say why the incident is on hold."), field="reason")
    limit = Incident._meta.get_field("hold_reason").max_length
    if len(reason) > limit:
        # Refused, not cut: a reason shortened behind the agent's back says something else.
        raise WorkflowError(
            _("A hold reason is at most %(limit)d characters (this one has %(length)d).")
            % {"limit": limit, "length": len(reason)},
            field="reason",
        )
    with transaction.atomic():
        incident = _lock(incident, expected_version, "hold", prefetch=[deadlines.CLOCK])
        now = _now(now)
        old = incident.state
        incident.state = IncidentState.ON_HOLD
        incident.hold_reason = reason
        _open_pause(incident, now, reason)
        _event(
            incident,
            actor=actor,
            kind=EventKind.HELD,
            at=now,
            old=old,
            new=IncidentState.ON_HOLD,
            note=reason,
        )
        return _save(incident, sla=True)


@_checked("resume")
def resume(incident, *, actor, expected_version=None, now=None):
    """Restart the clock; back to acknowledged (or new, if nobody acknowledged it yet)."""
    with transaction.atomic():
        incident = _lock(incident, expected_version, "resume", prefetch=[deadlines.CLOCK])
        now = _now(now)
        _close_open_pause(incident, now)
        incident.state = (
            IncidentState.ACKNOWLEDGED if incident.acknowledged_at else IncidentState.NEW
        )
        incident.hold_reason = ""
        _event(
            incident,
            actor=actor,
            kind=EventKind.RESUMED,
            at=now,
            old=IncidentState.ON_HOLD,
            new=incident.state,
        )
        return _save(incident, sla=True)


@_checked("post_update")
def post_update(
    incident,
    *,
    actor,
    body,
    body_ro="",
    is_public=False,
    public_status="",
    expected_version=None,
    now=None,
):
    """Write a work note, or a public update customers see and are told about. The first
    public update publishes the incident. ``body_ro``: the public message in Romanian too
    (Romanian subscribers and the Romanian page get it; without it, ``body``)."""
    body = (body or "").strip()
    body_ro = (body_ro or "").strip() if is_public else ""
    if not body:
        raise WorkflowError(_("An update needs a message."), field="body")
    if is_public and public_status not in PublicStatus.values:
        raise WorkflowError(
            _(
                "A public update needs a public status: investigating, identified, monitoring "
                "or resolved."
            ),
            field="public_status",
        )
    with transaction.atomic():
        # A work note touches nothing another change could clash with; a public update tells
        # the public story, so it clashes with a state change or another public update.
        incident = _lock(
            incident,
            expected_version,
            "post_update",
            touches=(_PUBLIC | _STATE) if is_public else frozenset(),
        )
        now = _now(now)
        update = IncidentUpdate.objects.create(
            incident=incident,
            author=actor.user,
            created_at=now,
            is_public=is_public,
            public_status=public_status if is_public else "",
            body=body,
            body_ro=body_ro,
        )
        kind = None
        if is_public:
            kind = (
                NotificationKind.INCIDENT_UPDATED
                if incident.published_at
                else NotificationKind.INCIDENT_PUBLISHED
            )
            incident.published_at = incident.published_at or now
            incident.public_status = public_status
        _event(
            incident,
            actor=actor,
            kind=EventKind.UPDATE_POSTED,
            at=now,
            new={"public": is_public, "public_status": update.public_status, "update": update.pk},
        )
        _save(incident)
        if kind:
            enqueue_incident_event(incident=incident, kind=kind, update=update)
    return update


@_checked("resolve")
def resolve(incident, *, actor, code, notes, public_message="", expected_version=None, now=None):
    """Service is restored: meets the resolution target (and the response one, if nobody
    acknowledged). Customers who heard of the incident hear it is resolved."""
    notes = (notes or "").strip()
    if code not in ResolutionCode.values:
        raise WorkflowError(_("Choose a resolution code."), field="code")
    if not notes:
        raise WorkflowError(_("Resolution notes are required."), field="notes")
    with transaction.atomic():
        # The customers' message needs the services and their dependants: read with the lock.
        announce = bool(public_message.strip() or incident.published_at)
        incident = _lock(
            incident, expected_version, "resolve", prefetch=[notify.AUDIENCE] if announce else ()
        )
        now = _now(now)
        old = incident.state
        if old == IncidentState.ON_HOLD:  # only a hold leaves a pause open
            _close_open_pause(incident, now)
        incident.state = IncidentState.RESOLVED
        incident.resolved_at = now
        # Resolving meets the response target too when nobody acknowledged; it is not an
        # acknowledgement (MTTA counts only those).
        incident.responded_at = incident.responded_at or now
        incident.first_resolved_at = incident.first_resolved_at or now
        incident.resolution_code, incident.resolution_notes = code, notes
        incident.hold_reason = ""
        escalation.stop(incident, now=now)
        _event(
            incident,
            actor=actor,
            kind=EventKind.RESOLVED,
            at=now,
            old=old,
            new=IncidentState.RESOLVED,
            note=notes,
        )
        update = None
        if incident.published_at or public_message.strip():
            update = IncidentUpdate(
                incident=incident,
                author=actor.user,
                created_at=now,
                is_public=True,
                public_status=PublicStatus.RESOLVED,
                body=public_message.strip() or _("This incident has been resolved."),
            )
            # Inserted by the statement that saves the row (``_write``): one round trip fewer.
            incident.__dict__["_queued_row"] = update
            incident.published_at = incident.published_at or now
            incident.public_status = PublicStatus.RESOLVED
        _save(incident, sla=True, services_changed=True, at=now, met_at=now)
        if update is not None:
            enqueue_incident_event(
                incident=incident, kind=NotificationKind.INCIDENT_RESOLVED, update=update
            )
    return incident


@_checked("close")
def close(incident, *, actor, expected_version=None, now=None):
    with transaction.atomic():
        incident = _lock(incident, expected_version, "close")
        now = _now(now)
        incident.state = IncidentState.CLOSED
        incident.closed_at = now
        _event(
            incident,
            actor=actor,
            kind=EventKind.CLOSED,
            at=now,
            old=IncidentState.RESOLVED,
            new=IncidentState.CLOSED,
        )
        return _save(incident)


@_checked("reopen")
def reopen(incident, *, actor, reason="", expected_version=None, now=None):
    """The fix did not hold: back to acknowledged. The time it sat resolved does not count
    against the resolution target (it is recorded as a pause); a breach already flagged stays."""
    with transaction.atomic():
        incident = _lock(incident, expected_version, "reopen")
        now = _now(now)
        IncidentPause.objects.create(
            incident=incident, started_at=incident.resolved_at, ended_at=now, reason="resolved"
        )
        incident.state = IncidentState.ACKNOWLEDGED
        incident.resolved_at = None
        incident.resolution_code, incident.resolution_notes = "", ""
        _event(
            incident,
            actor=actor,
            kind=EventKind.REOPENED,
            at=now,
            old=IncidentState.RESOLVED,
            new=IncidentState.ACKNOWLEDGED,
            note=reason,
        )
        return _save(incident, sla=True, services_changed=True, at=now)


@_checked("link_problem")
def link_problem(
    incident, *, actor, problem, quote_workaround=False, expected_version=None, now=None
):
    """Link the incident to ``problem``, or unlink it (``problem=None``); the problem's
    timeline records it too. ``quote_workaround``: the problem is a known error and its
    workaround is quoted on the incident's timeline (the one-click link from a suggestion)."""
    if problem is not None:
        _check_linkable(problem, actor)
    with transaction.atomic():
        incident = _lock(incident, expected_version, "link_problem")
        now = _now(now)
        if incident.problem_id == getattr(problem, "pk", None):
            return incident
        note = ""
        if quote_workaround and problem is not None and problem.workaround:
            note = _("Known error %(reference)s. Workaround: %(workaround)s") % {
                "reference": problem.reference,
                "workaround": problem.workaround,
            }
        _do_link_problem(incident, actor=actor, problem=problem, at=now, note=note)
        return _save(incident)


def _check_linkable(problem, actor):
    """The problem side's refusal (closed, not visible) in this workflow's words."""
    try:
        problem_workflow.check_linkable(problem, actor=actor)
    except problem_workflow.NotPermitted as exc:
        raise NotPermitted(str(exc)) from exc
    except problem_workflow.WorkflowError as exc:
        raise IllegalTransition(str(exc), field="problem") from exc


def _do_link_problem(incident, *, actor, problem, at, note=""):
    """Move the incident to ``problem`` (or none) and say so on every timeline concerned: the
    incident's, the old problem's (unlinked) and the new one's (linked)."""
    old_problem = incident.problem
    _event(
        incident,
        actor=actor,
        kind=EventKind.PROBLEM_LINKED,
        at=at,
        old=_ref(old_problem),
        new=_ref(problem),
        note=note,
    )
    incident.problem = problem
    incident_value = _ref(incident)
    if old_problem is not None:
        problem_workflow.record_incident_link(
            old_problem, actor=actor, incident=incident_value, linked=False, at=at
        )
    if problem is not None:
        problem_workflow.record_incident_link(
            problem, actor=actor, incident=incident_value, linked=True, at=at, note=note
        )


@_checked("edit")
def set_affected_services(incident, *, actor, services, expected_version=None, now=None):
    """Replace the affected services ({service: status} or a list); deadlines follow, since a
    contract may apply to one service and not another."""
    statuses = _normalise_services(services)
    with transaction.atomic():
        incident = _lock(incident, expected_version, "edit", touches={"services"})
        now = _now(now)
        if not _do_set_services(incident, actor=actor, statuses=statuses, at=now):
            return incident
        return _save(incident, repolicy=True, services_changed=True, at=now)


def _do_set_services(incident, *, actor, statuses, at):
    before = dict(incident.affected.values_list("service_id", "status"))
    if before == statuses:
        return False
    names = dict(Service.objects.filter(pk__in={*before, *statuses}).values_list("pk", "name"))
    incident.affected.exclude(service_id__in=statuses).delete()
    for pk, status in statuses.items():
        IncidentService.objects.update_or_create(
            incident=incident, service_id=pk, defaults={"status": status}
        )
    _event(
        incident,
        actor=actor,
        kind=EventKind.SERVICES_CHANGED,
        at=at,
        old=_service_values(before, names),
        new=_service_values(statuses, names),
    )
    return True


EDITABLE_FIELDS = (
    "title",
    "description",
    "organization",
    "contact",
    "is_major",
    "commander",
    "communications_lead",
    "is_confidential",
)


@_checked("edit")
def edit(incident, *, actor, expected_version, changes, now=None):
    """Apply an edit form: plain fields plus, when present, ``impact``/``urgency`` (priority),
    ``assignee``/``assignment_group`` and ``services``. One version bump, one transaction,
    one event per kind of change."""
    unknown = set(changes) - {
        *EDITABLE_FIELDS,
        "impact",
        "urgency",
        "assignee",
        "assignment_group",
        "services",
        "problem",
    }
    if unknown:
        raise WorkflowError(_("These fields cannot be edited: %s") % ", ".join(sorted(unknown)))
    confidential = changes.get("is_confidential", incident.is_confidential)
    if bool(confidential) != incident.is_confidential:
        check_may(actor, "confidential")
    with transaction.atomic():
        incident = _lock(incident, expected_version, "edit", touches=_edit_touches(changes))
        now = _now(now)
        sla_moves = False
        old, new = {}, {}
        for field in EDITABLE_FIELDS:
            if field in changes and getattr(incident, field) != changes[field]:
                old[field] = _jsonable(getattr(incident, field))
                new[field] = _jsonable(changes[field])
                setattr(incident, field, changes[field])
        if "title" in new and not (incident.title or "").strip():
            raise WorkflowError(_("An incident needs a title."))
        if incident.contact is not None and (
            incident.organization is None
            or incident.contact.organization_id != incident.organization.pk
        ):
            raise WorkflowError(_("The contact does not belong to the reporting organisation."))
        if "organization" in new:
            sla_moves = True
        changed = bool(old)
        if "is_major" in new:
            _event(
                incident,
                actor=actor,
                kind=EventKind.MAJOR_CHANGED,
                at=now,
                old=old.pop("is_major"),
                new=new.pop("is_major"),
            )
        if old:
            _event(incident, actor=actor, kind=EventKind.EDITED, at=now, old=old, new=new)
        if "impact" in changes or "urgency" in changes:
            if incident.state not in LEGAL_FROM["change_priority"]:
                if (
                    changes.get("impact", incident.impact),
                    changes.get("urgency", incident.urgency),
                ) != (incident.impact, incident.urgency):
                    raise IllegalTransition(_("The priority of a resolved incident is final."))
            else:
                moved = _do_change_priority(
                    incident,
                    actor=actor,
                    impact=int(changes.get("impact", incident.impact)),
                    urgency=int(changes.get("urgency", incident.urgency)),
                    at=now,
                )
                sla_moves |= moved
                changed |= moved
        if "assignee" in changes or "assignment_group" in changes:
            changed |= _do_assign(
                incident,
                actor=actor,
                assignee=changes.get("assignee", KEEP),
                group=changes.get("assignment_group", KEEP),
                at=now,
            )
        # A confidential incident's impact does not show on the services: their status follows.
        services_changed = "is_confidential" in new
        if "services" in changes:
            moved = _do_set_services(
                incident, actor=actor, statuses=_normalise_services(changes["services"]), at=now
            )
            services_changed |= moved
            sla_moves |= moved
            changed |= moved
        if "problem" in changes and changes["problem"] != incident.problem:
            if changes["problem"] is not None:
                _check_linkable(changes["problem"], actor)
            _do_link_problem(incident, actor=actor, problem=changes["problem"], at=now)
            changed = True
        if not changed:
            return incident  # an edit form saved as it was: nothing to record
        return _save(
            incident,
            repolicy=sla_moves and incident.is_open,
            services_changed=services_changed,
            at=now,
        )


def _edit_touches(changes):
    touches = set(changes)
    if touches & _PRIORITY:
        touches |= _PRIORITY
    if touches & _ASSIGNMENT:
        touches |= _ASSIGNMENT
    return frozenset(touches)


def _jsonable(value):
    if hasattr(value, "get_username"):
        return _user_ref(value)
    if hasattr(value, "pk"):
        return _ref(value)
    return value

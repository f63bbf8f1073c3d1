"""The SLA sweep: Celery beat runs it every few seconds to raise warnings and breaches.

It reads ``next_sla_check_at <= now`` over open incidents on a partial index, locking what it
takes with ``SKIP LOCKED`` so two sweeps (two workers, two beats) split the work instead of
repeating it. Each warning and breach is a ``SlaSignal`` row, unique per incident, target and
threshold, written in the same transaction as its timeline event and outbox rows: a restart
redoes nothing, and a sweep that finds the row already there says nothing.
"""

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents import deadlines, escalation, notify
from incidents.models import (
    OPEN_STATES,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentPause,
    IncidentService,
    SlaSignal,
    SlaTargetKind,
)
from incidents.notify import notify_staff_batch, staff_message
from itsm import arrays
from notifications import webhooks
from notifications.models import EventKind as NotificationKind
from services.models import Contract, Service, SlaInputChange, SlaPolicy

log = logging.getLogger(__name__)

# How long the sweep leaves an incident alone after its SLA check failed (a bad row must not
# be retried in a hot loop, nor stop the others); it is retried after that, and on any change.
SLA_RETRY_AFTER = timedelta(minutes=15)


def due_incidents(now):
    """Open incidents with an SLA checkpoint at or before ``now``, oldest first."""
    return Incident.objects.filter(
        state__in=OPEN_STATES, next_sla_check_at__isnull=False, next_sla_check_at__lte=now
    ).order_by("next_sla_check_at")


def sweep_sla(*, now=None, batch_size=None):
    """Raise every warning and breach that is due. Returns how many signals were raised."""
    now = now or timezone.now()
    batch_size = batch_size or settings.SLA_SWEEP_BATCH
    catch_up_sla_inputs(now)
    raised = 0
    while True:
        with transaction.atomic():
            locked = due_incidents(now).select_for_update(
                skip_locked=connection.features.has_select_for_update_skip_locked, of=("self",)
            )
            batch = list(
                locked.select_related(
                    "assignee",
                    "assignment_group__team",
                )[:batch_size]
            )
            raised += _check_batch(batch, now)
        if len(batch) < batch_size:
            break
    # Breaches start escalations due now: page their first level in this same sweep.
    escalation.sweep_escalations(now=now, batch_size=batch_size)
    return raised


# --- catalog changes ---------------------------------------------------------------------------


def catch_up_sla_inputs(now):
    """Consume the catalog's notes of changed SLA inputs (``services.SlaInputChange``): mark
    the open incidents that depend on what changed and were computed before it as stale and due
    now, so this sweep recomputes them from their history. A note is deleted in the same
    transaction that marks its incidents, so a crash or a stopped sweep loses none."""
    with transaction.atomic():
        changes = list(
            SlaInputChange.objects.select_for_update(
                skip_locked=connection.features.has_select_for_update_skip_locked
            ).order_by("pk")[:1000]
        )
        if not changes:
            return 0
        marked = 0
        for condition, at in _dependents(changes):
            marked += (
                Incident.objects.filter(condition, state__in=OPEN_STATES)
                .filter(Q(sla_computed_at__isnull=True) | Q(sla_computed_at__lte=at))
                .update(sla_stale=True, next_sla_check_at=now)
            )
        SlaInputChange.objects.filter(pk__in=[c.pk for c in changes]).delete()
    return marked


def _dependents(changes):
    """[(condition on Incident, change instant)] for a batch of change notes: the notes that
    touch the global default (every open incident may depend on it) apart from the others, so
    each group only marks incidents computed before its own latest note."""
    on_calendar = defaultdict(set)
    for pk, calendar_id, is_default in SlaPolicy.objects.filter(
        calendar_id__in={c.calendar_id for c in changes if c.calendar_id}
    ).values_list("pk", "calendar_id", "is_default"):
        on_calendar[calendar_id].add((pk, is_default))
    defaults = set(
        SlaPolicy.objects.filter(
            pk__in={c.policy_id for c in changes if c.policy_id}, is_default=True
        ).values_list("pk", flat=True)
    )
    everything_at, policies, services, latest = None, set(), set(), None
    for change in changes:
        policies_here = {pk for pk, _default in on_calendar.get(change.calendar_id, ())}
        if change.policy_id:
            policies_here.add(change.policy_id)
        if (
            change.everything
            or policies_here & defaults
            or any(d for _pk, d in on_calendar.get(change.calendar_id, ()))
        ):
            everything_at = max(everything_at or change.at, change.at)
            continue
        if policies_here or change.service_id:
            policies |= policies_here
            if change.service_id:
                services.add(change.service_id)
            latest = max(latest or change.at, change.at)
    found = []
    if everything_at is not None:
        found.append((Q(), everything_at))
    if policies:
        services |= set(
            Service.objects.filter(default_sla_policy_id__in=policies).values_list("pk", flat=True)
        )
        services |= set(
            Contract.objects.filter(sla_policy_id__in=policies).values_list("service_id", flat=True)
        )
    condition = Q(sla_policy_id__in=policies) if policies else Q(pk__in=[])
    if services:
        affected = IncidentService.objects.filter(service_id__in=services).values("incident_id")
        condition |= Q(pk__in=affected)
    if latest is not None:
        found.append((condition, latest))
    return found


# --- one batch ---------------------------------------------------------------------------------


def _check_batch(batch, now):
    """Raise what is due on a batch of locked incidents with a constant number of reads
    (pauses, signals, calendars for the whole batch) and bulk writes. An incident whose check
    fails is logged, marked and retried later; the others go on."""
    if not batch:
        return 0
    ids = [i.pk for i in batch]
    pauses = defaultdict(list)
    for incident_id, started, ended in IncidentPause.objects.filter(
        incident_id__in=ids
    ).values_list("incident_id", "started_at", "ended_at"):
        pauses[incident_id].append((started, ended))
    signalled = defaultdict(set)
    for incident_id, target, threshold in SlaSignal.objects.filter(incident_id__in=ids).values_list(
        "incident_id", "target", "threshold"
    ):
        signalled[incident_id].add((target, threshold))
    calendars = deadlines.calendars_by_id(
        deadlines.target_calendar_id(i, k) for i in batch for k in deadlines.TARGETS
    )

    raised = 0
    plain = []  # incidents whose changed columns go out in one bulk update
    for incident in batch:
        try:
            if incident.sla_stale:
                # An input changed: recompute from the history, on its own savepoint (it
                # reads the catalog and writes a timeline entry).
                with transaction.atomic():
                    raised += _recheck_moved(incident, now)
                continue
            found = _crossed(incident, calendars, pauses[incident.pk], signalled[incident.pk], now)
        except Exception as exc:  # noqa: BLE001 - one bad incident must not stop the sweep
            _failed(incident, now, exc)
            continue
        raised += len(found.signals)
        plain.append((incident, found))

    if plain:
        try:
            with transaction.atomic():
                _insert_signals(plain, now)
        except IntegrityError:
            # Raised meanwhile by a workflow call that held no lock on this row: fall back to
            # one at a time, each once.
            raised -= sum(len(found.signals) for _incident, found in plain)
            for incident, found in plain:
                raised += _write_one_by_one(incident, found, now)
                incident.sla_error = ""
            _save_columns([i for i, _found in plain])
            return raised
        messages = []
        texts = _AnnouncementTexts()
        for incident, found in plain:
            incident.sla_error = ""
            for signal in found.signals:
                _mark_breach(incident, signal)
            for signal in found.announce:
                is_breach = signal.threshold >= deadlines.BREACH
                messages.append(_announcement(incident, signal, is_breach, texts))
        notify_staff_batch(m for m in messages if m is not None)
        _save_columns([i for i, _found in plain])
        _tell_integrators(plain)
        # A breach starts the escalation policy (the team's escalation contact by default).
        escalation.start_for_breaches(_breached(plain), now=now)
    return raised


def _tell_integrators(plain):
    """``sla.warning``/``sla.breached`` for what the batch announced, to the endpoints that
    listen: the endpoints are read once for the batch (one query, however many signals)."""
    announced = [(incident, s) for incident, found in plain for s in found.announce]
    if not announced:
        return
    targets = webhooks.read_targets()
    for incident, signal in announced:
        incident.__dict__["_webhook_targets"] = targets
        notify.tell_integrators_of_sla(
            incident,
            target=signal.target,
            threshold=signal.threshold,
            due_at=signal.at,
            is_breach=signal.threshold >= deadlines.BREACH,
        )
        notify.forget_webhook_targets(incident)


def _breached(plain):
    return [
        incident
        for incident, found in plain
        if any(signal.threshold >= deadlines.BREACH for signal in found.announce)
    ]


def _insert_signals(plain, now):
    """The signals of a batch and their timeline events, in one statement on PostgreSQL (from
    one array per column: building ~12 model instances per due incident cost more than the
    inserts themselves). Raises IntegrityError when one of the signals exists already."""
    raised = [(incident, signal) for incident, found in plain for signal in found.signals]
    if connection.vendor != "postgresql":
        SlaSignal.objects.bulk_create(
            SlaSignal(
                incident=incident,
                target=signal.target,
                threshold=signal.threshold,
                due_at=signal.at,
                raised_at=now,
            )
            for incident, signal in raised
        )
        IncidentEvent.objects.bulk_create(
            IncidentEvent(
                incident=incident,
                at=now,
                kind=_signal_kind(signal),
                new_value=_signal_value(signal),
            )
            for incident, signal in raised
        )
        return
    incident_ids = [incident.pk for incident, _signal in raised]
    signals_sql, signals_params = arrays.insert_sql(
        SlaSignal,
        {
            "incident": incident_ids,
            "target": [signal.target for _incident, signal in raised],
            "threshold": [signal.threshold for _incident, signal in raised],
            "due_at": [signal.at for _incident, signal in raised],
        },
        values={"raised_at": now},
    )
    events_sql, events_params = arrays.insert_sql(
        IncidentEvent,
        {
            "incident": incident_ids,
            "kind": [_signal_kind(signal) for _incident, signal in raised],
            "new_value": [_signal_value(signal) for _incident, signal in raised],
        },
        values={"at": now},
    )
    with connection.cursor() as cursor:
        # A data-modifying WITH runs whether or not it is read: both inserts, one round trip.
        cursor.execute(
            f"WITH signals AS ({signals_sql}) {events_sql}", signals_params + events_params
        )


class _Found:
    def __init__(self):
        self.signals = []
        self.announce = []


def _crossed(incident, calendars, pauses, signalled, now):
    """The signals due on one incident (not written yet) and its next check, in memory."""
    upcoming = deadlines.checkpoints(incident, calendars, pauses, signalled)
    found = _Found()
    for target in deadlines.TARGETS:
        mine = sorted(
            (c for c in upcoming if c.target == target and c.at <= now),
            key=lambda c: c.threshold,
        )
        found.signals.extend(mine)
        # A sweep that comes late (a restart, a long hold released) records the lower
        # thresholds but tells people only the worst one: a warning after a breach is noise.
        if mine:
            found.announce.append(found.signals[-1])
    incident.next_sla_check_at = min((c.at for c in upcoming if c.at > now), default=None)
    return found


def _mark_breach(incident, signal):
    if signal.threshold >= deadlines.BREACH:
        field = (
            "response_breached_at"
            if signal.target == SlaTargetKind.RESPONSE
            else "resolve_breached_at"
        )
        setattr(incident, field, signal.at)


def _signal_kind(checkpoint):
    return (
        EventKind.SLA_BREACHED
        if checkpoint.threshold >= deadlines.BREACH
        else EventKind.SLA_WARNING
    )


def _signal_value(checkpoint):
    return {
        "target": checkpoint.target,
        "threshold": checkpoint.threshold,
        "due_at": checkpoint.at.isoformat(),
    }


SWEPT_COLUMNS = ["next_sla_check_at", "response_breached_at", "resolve_breached_at", "sla_error"]


def _save_columns(incidents):
    """Write what the sweep changed on each incident, one statement for the batch."""
    if connection.vendor != "postgresql":
        # One CASE per column and row: quadratic in one statement, hence the batches.
        Incident.objects.bulk_update(incidents, SWEPT_COLUMNS, batch_size=100)
        return
    # PostgreSQL: UPDATE … FROM one JSON array per column (itsm.arrays), linear in the batch
    # (bulk_update's CASE took about a third of a 1,000-incident sweep), five parameters.
    table = Incident._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS i SET next_sla_check_at = v.next_check::timestamptz, "
            "response_breached_at = v.response_breached::timestamptz, "
            "resolve_breached_at = v.resolve_breached::timestamptz, sla_error = v.error "
            "FROM ROWS FROM (json_array_elements_text(%s::json), "
            "json_array_elements_text(%s::json), json_array_elements_text(%s::json), "
            "json_array_elements_text(%s::json), json_array_elements_text(%s::json)) "
            "AS v(id, next_check, response_breached, resolve_breached, error) "
            "WHERE i.id = v.id::bigint",
            [
                arrays.json_array(i.pk for i in incidents),
                arrays.json_array(i.next_sla_check_at for i in incidents),
                arrays.json_array(i.response_breached_at for i in incidents),
                arrays.json_array(i.resolve_breached_at for i in incidents),
                arrays.json_array(i.sla_error for i in incidents),
            ],
        )


def _write_one_by_one(incident, found, now):
    raised = 0
    for signal in found.signals:
        if _raise(incident, signal, now, announce=any(s is signal for s in found.announce)):
            raised += 1
    return raised


def _failed(incident, now, exc):
    log.exception("SLA check of %s failed; retrying after %s", incident.reference, SLA_RETRY_AFTER)
    Incident.objects.filter(pk=incident.pk).update(
        next_sla_check_at=now + SLA_RETRY_AFTER,
        sla_error=f"{now:%Y-%m-%d %H:%M:%S}: {exc!r}"[:2000],
    )


def _recheck_moved(incident, now):
    """Recompute a stale incident's deadlines from its history (an SLA input changed), write
    the move on its timeline, then raise what is due."""
    before = (incident.response_due_at, incident.resolve_due_at)
    deadlines.recompute(incident)
    after = (incident.response_due_at, incident.resolve_due_at)
    if after != before:
        IncidentEvent.objects.create(
            incident=incident,
            at=now,
            kind=EventKind.SLA_MOVED,
            old_value={
                "response_due_at": _iso(before[0]),
                "resolve_due_at": _iso(before[1]),
            },
            new_value={
                "response_due_at": _iso(after[0]),
                "resolve_due_at": _iso(after[1]),
            },
            note=_("The SLA calendar, policy or contract changed."),
        )
    incident.sla_error = ""
    Incident.objects.filter(pk=incident.pk).update(
        sla_policy_id=incident.sla_policy_id,
        response_target=incident.response_target,
        resolution_target=incident.resolution_target,
        response_due_at=incident.response_due_at,
        resolve_due_at=incident.resolve_due_at,
        sla_explain=incident.sla_explain,
        sla_stale=False,
        sla_computed_at=incident.sla_computed_at,
        sla_error="",
        next_sla_check_at=incident.next_sla_check_at,
    )
    calendars = deadlines.calendars_by_id(
        deadlines.target_calendar_id(incident, k) for k in deadlines.TARGETS
    )
    found = _crossed(
        incident,
        calendars,
        deadlines.pauses_of(incident),
        set(incident.sla_signals.values_list("target", "threshold")),
        now,
    )
    raised = _write_one_by_one(incident, found, now)
    _save_columns([incident])
    return raised


def _iso(value):
    return value.isoformat() if value else None


def record_breaches_at_meeting(incident, now):
    """Called by the workflow when a target is met (acknowledge, resolve) on the locked row:
    a target met after its due instant was breached at that instant (SLA.md rule 5). Recorded
    once (signal, timeline, breach column) whether or not a sweep saw it first; nobody is
    emailed, since the person meeting it is the one acting."""
    for checkpoint in deadlines.breaches_at_meeting(incident):
        _raise(incident, checkpoint, now, announce=False)


def _raise(incident, checkpoint, now, *, announce):
    try:
        with transaction.atomic():
            SlaSignal.objects.create(
                incident=incident,
                target=checkpoint.target,
                threshold=checkpoint.threshold,
                due_at=checkpoint.at,
                raised_at=now,
            )
    except IntegrityError:
        return False  # raised already (by a sweep, or when the target was met)
    is_breach = checkpoint.threshold >= deadlines.BREACH
    if is_breach:
        field = (
            "response_breached_at"
            if checkpoint.target == SlaTargetKind.RESPONSE
            else "resolve_breached_at"
        )
        setattr(incident, field, checkpoint.at)
    IncidentEvent.objects.create(
        incident=incident,
        at=now,
        kind=EventKind.SLA_BREACHED if is_breach else EventKind.SLA_WARNING,
        new_value={
            "target": checkpoint.target,
            "threshold": checkpoint.threshold,
            "due_at": checkpoint.at.isoformat(),
        },
    )
    if announce:
        _announce(incident, checkpoint, is_breach)
        if is_breach:
            escalation.start_for_breaches([incident], now=now)
    # Integrators hear of a breach recorded when its target is met too: they keep SLA records.
    notify.tell_integrators_of_sla(
        incident,
        target=checkpoint.target,
        threshold=checkpoint.threshold,
        due_at=checkpoint.at,
        is_breach=is_breach,
    )
    return True


def _announce(incident, checkpoint, is_breach):
    message = _announcement(incident, checkpoint, is_breach, _AnnouncementTexts())
    if message is not None:
        notify_staff_batch([message])


class _AnnouncementTexts:
    """The announcement templates in the active language, translated once per batch (a sweep
    of 1,000 due incidents spent a fifth of its time translating the same five strings)."""

    def __init__(self):
        self.breach = _("%(reference)s breached its %(target)s target: %(title)s")
        self.warning = _("%(reference)s used %(percent)s%% of its %(target)s target: %(title)s")
        self.priority = _("Priority: P%(priority)s")
        self.response_due = _("Response due: %(at)s")
        self.resolve_due = _("Resolution due: %(at)s")
        self.targets = {kind.value: str(kind.label).lower() for kind in SlaTargetKind}


def _announcement(incident, checkpoint, is_breach, texts):
    """The staff message that tells about a warning or breach (None: nobody to tell)."""
    values = {
        "reference": incident.reference,
        "title": incident.title,
        "target": texts.targets[checkpoint.target],
        "percent": checkpoint.threshold // 10,
    }
    subject = (texts.breach if is_breach else texts.warning) % values
    body = "\n".join(
        [
            subject,
            "",
            texts.priority % {"priority": incident.priority},
            texts.response_due % {"at": incident.response_due_at or "-"},
            texts.resolve_due % {"at": incident.resolve_due_at or "-"},
            f"{settings.SITE_URL}/admin/incidents/incident/{incident.pk}/change/",
        ]
    )
    users, groups = [], []
    if incident.assignee_id:
        users.append(incident.assignee)
    if incident.assignment_group_id and (is_breach or not incident.assignee_id):
        groups.append(incident.assignment_group)
    if not users and not groups:
        log.warning("No one to tell about %s on %s", checkpoint, incident.reference)
        return None
    return staff_message(
        kind=NotificationKind.SLA_BREACH if is_breach else NotificationKind.SLA_WARNING,
        key=f"incident:{incident.pk}:sla:{checkpoint.target}:{checkpoint.threshold}",
        subject=subject,
        body=body,
        users=tuple(users),
        groups=tuple(groups),
        incident=incident,
    )

"""The SLA sweep: Celery beat runs it every few seconds to raise warnings and breaches.

It reads ``next_sla_check_at <= now`` over open incidents on a partial index, locking what it
takes with ``SKIP LOCKED`` so two sweeps (two workers, two beats) split the work instead of
repeating it. Each warning and breach is a ``SlaSignal`` row, unique per incident, target and
threshold, written in the same transaction as its timeline event and outbox rows: a restart
redoes nothing, and a sweep that finds the row already there says nothing.
"""

import logging

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents import deadlines
from incidents.models import (
    OPEN_STATES,
    EventKind,
    Incident,
    IncidentEvent,
    SlaSignal,
    SlaTargetKind,
)
from notifications.models import EventKind as NotificationKind
from notifications.outbox import notify_staff

log = logging.getLogger(__name__)


def due_incidents(now):
    """Open incidents with an SLA checkpoint at or before ``now``, oldest first."""
    return Incident.objects.filter(
        state__in=OPEN_STATES, next_sla_check_at__isnull=False, next_sla_check_at__lte=now
    ).order_by("next_sla_check_at")


def sweep_sla(*, now=None, batch_size=None):
    """Raise every warning and breach that is due. Returns how many signals were raised."""
    now = now or timezone.now()
    batch_size = batch_size or settings.SLA_SWEEP_BATCH
    raised = 0
    while True:
        with transaction.atomic():
            locked = due_incidents(now).select_for_update(
                skip_locked=connection.features.has_select_for_update_skip_locked, of=("self",)
            )
            batch = list(
                locked.select_related(
                    "sla_policy__calendar",
                    "assignee",
                    "assignment_group__team__escalation_contact",
                )[:batch_size]
            )
            for incident in batch:
                raised += _check(incident, now)
        if len(batch) < batch_size:
            return raised


def _check(incident, now):
    """Raise what is due on one locked incident, then move its next check forward."""
    calendar = deadlines.calendar_of(incident.sla_policy)
    pauses = deadlines.pauses_of(incident)
    signalled = set(SlaSignal.objects.filter(incident=incident).values_list("target", "threshold"))
    upcoming = deadlines.checkpoints(incident, calendar, pauses, signalled)
    crossed = [c for c in upcoming if c.at <= now]
    raised = 0
    for target in (SlaTargetKind.RESPONSE, SlaTargetKind.RESOLUTION):
        mine = sorted((c for c in crossed if c.target == target), key=lambda c: c.threshold)
        if not mine:
            continue
        # A sweep that comes late (a restart, a long hold released) records the lower
        # thresholds but tells people only the worst one: a warning after a breach is noise.
        for checkpoint in mine:
            loudest = checkpoint is mine[-1]
            if _raise(incident, checkpoint, now, announce=loudest):
                raised += 1
    deadlines_after = [c for c in upcoming if c.at > now]
    incident.next_sla_check_at = min((c.at for c in deadlines_after), default=None)
    Incident.objects.filter(pk=incident.pk).update(
        next_sla_check_at=incident.next_sla_check_at,
        response_breached_at=incident.response_breached_at,
        resolve_breached_at=incident.resolve_breached_at,
    )
    return raised


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
        return False  # another sweep raised it first
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
    return True


def _announce(incident, checkpoint, is_breach):
    target_label = SlaTargetKind(checkpoint.target).label.lower()
    values = {
        "reference": incident.reference,
        "title": incident.title,
        "target": target_label,
        "percent": checkpoint.threshold // 10,
    }
    if is_breach:
        subject = _("%(reference)s breached its %(target)s target: %(title)s") % values
    else:
        subject = _("%(reference)s used %(percent)s%% of its %(target)s target: %(title)s") % values
    body = "\n".join(
        [
            subject,
            "",
            _("Priority: P%(priority)s") % {"priority": incident.priority},
            _("Response due: %(at)s") % {"at": incident.response_due_at or "-"},
            _("Resolution due: %(at)s") % {"at": incident.resolve_due_at or "-"},
            f"{settings.SITE_URL}/admin/incidents/incident/{incident.pk}/change/",
        ]
    )
    users, groups = [], []
    if incident.assignee_id:
        users.append(incident.assignee)
    if incident.assignment_group_id and (is_breach or not incident.assignee_id):
        groups.append(incident.assignment_group)
    if is_breach and incident.assignment_group_id:
        team = getattr(incident.assignment_group, "team", None)
        if team is not None and team.escalation_contact_id:
            users.append(team.escalation_contact)
    if not users and not groups:
        log.warning("No one to tell about %s on %s", checkpoint, incident.reference)
        return
    notify_staff(
        kind=NotificationKind.SLA_BREACH if is_breach else NotificationKind.SLA_WARNING,
        key=f"incident:{incident.pk}:sla:{checkpoint.target}:{checkpoint.threshold}",
        subject=subject,
        body=body,
        users=users,
        groups=groups,
        incident=incident,
    )

"""Escalating incidents: start (a new P1/P2 or alert incident, an SLA breach), stop (an
acknowledgement) and the beat sweep that pages the next level when ``next_escalation_at`` is due.

The sweep reads ``next_escalation_at <= now`` over open incidents on a partial index and locks
what it takes with ``SKIP LOCKED``, so two sweeps split the work; each level of each round is a
unique ``oncall.Page`` row written with its timeline event and outbox rows, so a level is paged
exactly once, whatever runs twice. Who is paged, and when the next level is due, is
``oncall.workflow``'s answer; this module writes the incident's side."""

import logging

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents.models import OPEN_STATES, EventKind, Incident, IncidentEvent, IncidentService
from incidents.notify import notify_staff_batch, staff_message
from notifications.models import EventKind as NotificationKind
from oncall import workflow as oncall

log = logging.getLogger(__name__)

URGENT_PRIORITIES = (1, 2)
ALERT_SOURCES = ("alertmanager", "grafana", "alert", "events")


def _team_ids(incident):
    team = (
        getattr(incident.assignment_group, "team", None) if incident.assignment_group_id else None
    )
    return [team.pk] if team is not None else []


def start(incident, *, reason, now, urgent=False, service_ids=None):
    """Start escalating ``incident`` (inside the caller's transaction, with its row locked or
    new): sets ``next_escalation_at`` to now when a policy applies and none runs. The caller
    saves the row."""
    if service_ids is None:
        service_ids = list(
            IncidentService.objects.filter(incident=incident).values_list("service_id", flat=True)
        )
    if oncall.start(
        subject_id=incident.pk,
        reason=reason,
        now=now,
        service_ids=service_ids,
        team_ids=_team_ids(incident),
        urgent=urgent,
    ):
        incident.next_escalation_at = now
        return True
    return False


def starts_on_create(incident):
    return incident.priority in URGENT_PRIORITIES or incident.source in ALERT_SOURCES


def stop(incident, *, now):
    """An acknowledgement stops the escalation: nobody else is paged. (No query when nothing
    escalates: acknowledging stays one round trip.)"""
    if incident.next_escalation_at is None:
        return False
    incident.next_escalation_at = None
    return oncall.stop(subject_id=incident.pk, now=now)


def start_for_breaches(incidents, *, now):
    """The SLA sweep's breaches start escalation on their incidents (locked by the sweep)."""
    started = []
    for incident in incidents:
        if incident.next_escalation_at is None and start(incident, reason="sla_breach", now=now):
            started.append(incident.pk)
    if started:
        Incident.objects.filter(pk__in=started).update(next_escalation_at=now)
    return len(started)


def due_escalations(now):
    return Incident.objects.filter(
        state__in=OPEN_STATES, next_escalation_at__isnull=False, next_escalation_at__lte=now
    ).order_by("next_escalation_at")


def sweep_escalations(*, now=None, batch_size=None):
    """Page every level that is due. Returns how many pages were sent."""
    now = now or timezone.now()
    batch_size = batch_size or getattr(settings, "ESCALATION_SWEEP_BATCH", 500)
    paged = 0
    while True:
        with transaction.atomic():
            batch = list(
                due_escalations(now)
                .select_for_update(
                    skip_locked=connection.features.has_select_for_update_skip_locked,
                    of=("self",),
                )
                .select_related("assignment_group__team")[:batch_size]
            )
            paged += _page_batch(batch, now)
        if len(batch) < batch_size:
            return paged


def _page_batch(batch, now):
    if not batch:
        return 0
    contacts = {}
    for incident in batch:
        team = (
            getattr(incident.assignment_group, "team", None)
            if incident.assignment_group_id
            else None
        )
        contacts[incident.pk] = team.escalation_contact_id if team is not None else None
    results = oncall.page_next(contacts, now=now)
    events, messages, paged = [], [], 0
    by_next = {}
    for incident in batch:
        result = results[incident.pk]
        if result.page is not None:
            paged += 1
            events.append(
                IncidentEvent(
                    incident=incident,
                    at=now,
                    kind=EventKind.PAGED,
                    new_value={
                        "round": result.page.round + 1,
                        "level": result.page.level + 1,
                        "recipients": result.page.recipients,
                        "next_at": result.next_at.isoformat() if result.next_at else None,
                    },
                )
            )
            messages.extend(_page_messages(incident, result))
        by_next.setdefault(result.next_at, []).append(incident.pk)
    IncidentEvent.objects.bulk_create(events)
    notify_staff_batch(messages)
    for next_at, ids in by_next.items():
        Incident.objects.filter(pk__in=ids).update(next_escalation_at=next_at)
    return paged


def ack_url(token):
    return f"{settings.SITE_URL}{reverse('oncall-acknowledge', args=[token])}"


def _page_messages(incident, result):
    """One message per paged person (each with their own acknowledge link), one per group."""
    page = result.page
    subject = _("Page: %(reference)s P%(priority)s %(title)s") % {
        "reference": incident.reference,
        "priority": incident.priority,
        "title": incident.title,
    }
    lines = [
        subject,
        "",
        _("Escalation level %(level)s, round %(round)s.")
        % {"level": page.level + 1, "round": page.round + 1},
    ]
    admin_link = f"{settings.SITE_URL}/admin/incidents/incident/{incident.pk}/change/"
    key = f"incident:{incident.pk}:page:{page.escalation_id}:{page.run}:{page.round}:{page.level}"
    out = []
    for user in result.users:
        body = "\n".join(
            [
                *lines,
                _("Acknowledge (one click, then confirm): %(url)s")
                % {"url": ack_url(oncall.ack_token(page, user))},
                admin_link,
            ]
        )
        out.append(
            staff_message(
                kind=NotificationKind.ESCALATION,
                key=f"{key}:user:{user.pk}",
                subject=subject,
                body=body,
                users=(user,),
                incident=incident,
            )
        )
    if result.groups:
        out.append(
            staff_message(
                kind=NotificationKind.ESCALATION,
                key=f"{key}:groups",
                subject=subject,
                body="\n".join([*lines, admin_link]),
                groups=tuple(result.groups),
                incident=incident,
            )
        )
    if not out:
        log.warning("Escalation level of %s reached nobody", incident.reference)
    return out

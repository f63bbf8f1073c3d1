"""Turning an incident's SLA policy, calendar and pauses into the deadline columns.

Called by the workflow (inside its transaction, on the locked row) and by the sweep. The maths
itself is ``incidents.sla``; this module only gathers its inputs from the database.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from incidents import sla
from incidents.models import IncidentState, SlaSignal, SlaTargetKind
from services.models import SlaTarget
from services.selectors import global_default_policy, sla_policies_for

log = logging.getLogger(__name__)

BREACH = 1000  # per mille of the target


def warning_thresholds():
    """Warning thresholds in per mille (75% → 750), from settings, ascending."""
    return sorted({round(f * 1000) for f in settings.SLA_WARNING_FRACTIONS if 0 < f < 1})


@dataclass(frozen=True)
class Checkpoint:
    """An instant at which the sweep has something to say about one target."""

    target: str  # SlaTargetKind
    threshold: int  # per mille; BREACH for the breach
    at: datetime


def policy_for_incident(incident):
    """The strictest policy among the affected services (each through the reporting
    organisation's contract, else the service default), else the global default: a customer
    promised 1 h on one of the hurt services is promised 1 h for the incident. A constant
    number of queries, whatever the number of services."""
    services = incident.services.select_related("default_sla_policy")
    candidates = {p.pk: p for p in sla_policies_for(services, incident.organization).values()}
    if not candidates:
        default = global_default_policy()
        return default, _target_for(default, incident.priority)
    targets = {
        t.policy_id: t
        for t in SlaTarget.objects.filter(policy_id__in=candidates, priority=incident.priority)
    }
    if not targets:
        return next(iter(candidates.values())), None
    strictest = min(
        targets.values(), key=lambda t: (t.resolution_target, t.response_target, t.policy_id)
    )
    return candidates[strictest.policy_id], strictest


def _target_for(policy, priority):
    if policy is None:
        return None
    return SlaTarget.objects.filter(policy=policy, priority=priority).first()


# Calendars change rarely and every transition needs one: keep the plain values in memory,
# keyed by calendar id, and trust a copy while the calendar's ``updated_at`` stamp (read with
# the incident's policy at no extra query) is unchanged. The age limit covers writes that skip
# the stamp (bulk updates, raw SQL).
_CALENDARS = {}
CALENDAR_CACHE_SECONDS = 300


def calendar_of(policy):
    """The plain ``sla.Calendar`` of a policy (24×7 UTC without one), from memory while the
    calendar is unchanged."""
    if policy is None:
        return sla.Calendar.twenty_four_seven()
    stamp = policy.calendar.updated_at
    kept = _CALENDARS.get(policy.calendar_id)
    if kept and kept[0] == stamp and kept[1] > time.monotonic():
        calendar = kept[2]
    else:
        calendar = _load_calendar(policy)
        _CALENDARS[policy.calendar_id] = (
            stamp,
            time.monotonic() + CALENDAR_CACHE_SECONDS,
            calendar,
        )
    return calendar


def _load_calendar(policy):
    calendar = policy.calendar.to_calendar()
    if not calendar.always_open and not any(calendar.weekly):
        # A calendar without hours would never let the clock run; count all time rather than
        # promise nothing, and say so.
        log.warning("Calendar %s has no business hours; counting it as 24x7", policy.calendar)
        calendar = sla.Calendar.twenty_four_seven(calendar.tz)
    return calendar


def pauses_of(incident):
    return [(p.started_at, p.ended_at) for p in incident.pauses.all()]


def checkpoints(incident, calendar, pauses, signalled):
    """Every warning and breach instant still to come for the targets not yet met.
    ``signalled`` is the set of (target, threshold) already raised."""
    found = []
    clocks = []
    if incident.acknowledged_at is None and incident.response_target is not None:
        clocks.append((SlaTargetKind.RESPONSE, incident.response_target))
    if incident.resolved_at is None and incident.resolution_target is not None:
        clocks.append((SlaTargetKind.RESOLUTION, incident.resolution_target))
    for target, duration in clocks:
        for threshold in [*warning_thresholds(), BREACH]:
            if (target, threshold) in signalled:
                continue
            part = timedelta(seconds=round(duration.total_seconds() * threshold / 1000))
            found.append(
                Checkpoint(
                    target, threshold, sla.due_at(incident.opened_at, part, calendar, pauses)
                )
            )
    return found


def recompute(incident, *, reuse_policy=False):
    """Set the incident's policy, targets, deadlines and ``next_sla_check_at`` in memory (the
    caller saves). With ``reuse_policy`` the stored policy and targets stand (only the clock
    moved). On hold, the deadlines are unknown and the sweep leaves the incident alone."""
    if reuse_policy and incident.sla_policy_id is not None:
        policy = incident.sla_policy
    else:
        policy, target = policy_for_incident(incident)
        incident.sla_policy = policy
        if incident.acknowledged_at is None:
            incident.response_target = target.response_target if target else None
        if incident.resolved_at is None:
            incident.resolution_target = target.resolution_target if target else None

    if incident.state == IncidentState.ON_HOLD or not incident.is_open:
        if incident.state == IncidentState.ON_HOLD:
            if incident.acknowledged_at is None:
                incident.response_due_at = None
            incident.resolve_due_at = None
        incident.next_sla_check_at = None
        return incident

    calendar = calendar_of(policy)
    pauses = pauses_of(incident)
    if incident.acknowledged_at is None:
        incident.response_due_at = (
            sla.due_at(incident.opened_at, incident.response_target, calendar, pauses)
            if incident.response_target is not None
            else None
        )
    if incident.resolved_at is None:
        incident.resolve_due_at = (
            sla.due_at(incident.opened_at, incident.resolution_target, calendar, pauses)
            if incident.resolution_target is not None
            else None
        )
    signalled = set(SlaSignal.objects.filter(incident=incident).values_list("target", "threshold"))
    upcoming = checkpoints(incident, calendar, pauses, signalled)
    incident.next_sla_check_at = min((c.at for c in upcoming), default=None)
    return incident

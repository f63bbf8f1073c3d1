"""Turning an incident's SLA policies, calendars and pauses into the deadline columns.

Called by the workflow (inside its transaction, on the locked row) and by the sweep. The maths
itself is ``incidents.sla``; this module gathers its inputs from the database and applies
SLA.md's "Which deadlines an incident gets":

- every affected service contributes one policy (the reporting organisation's contract, else
  the service default, else the global default); no service at all counts under the global
  default; a policy without a target for the priority contributes the global default's target
  (on the global default's calendar, since that policy is what makes the promise);
- per target, each contributor's due instant on its own calendar, the earliest wins;
- a target that is met keeps its due instant.

The contributors are kept in ``Incident.sla_explain`` (``candidates``) with, per target, the
one that set the deadline, so a change of pauses (hold, resume, resolve, reopen) re-evaluates
them without reading the catalog again, and the desk can be shown why a deadline is what it is.
"""

import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from incidents import sla
from incidents.calendars import calendar_value
from incidents.models import Incident, IncidentPause, IncidentService, SlaSignal, SlaTargetKind
from itsm import rows
from services.models import BusinessCalendar, Contract, Service, SlaPolicy, SlaTarget

log = logging.getLogger(__name__)

BREACH = 1000  # per mille of the target
TARGETS = (SlaTargetKind.RESPONSE, SlaTargetKind.RESOLUTION)


def warning_thresholds():
    """Warning thresholds in per mille (75% → 750), from settings, ascending."""
    return sorted({round(f * 1000) for f in settings.SLA_WARNING_FRACTIONS if 0 < f < 1})


@dataclass(frozen=True)
class Checkpoint:
    """An instant at which the sweep has something to say about one target."""

    target: str  # SlaTargetKind
    threshold: int  # per mille; BREACH for the breach
    at: datetime


# --- calendars ----------------------------------------------------------------------------------

# Calendars change rarely and every transition needs one: keep the plain values in memory,
# keyed by calendar id, and trust a copy while the calendar's ``updated_at`` stamp is unchanged.
# Every catalog write that changes a calendar moves the stamp (bulk query-set operations too,
# see ``services.models.sla_inputs_changed``); the age limit covers raw SQL.
_CALENDARS = {}
CALENDAR_CACHE_SECONDS = 300


def _cached_calendar(calendar_row):
    stamp = calendar_row.updated_at
    kept = _CALENDARS.get(calendar_row.pk)
    if kept and kept[0] == stamp and kept[1] > time.monotonic():
        return kept[2]
    calendar = _load_calendar(calendar_row)
    _CALENDARS[calendar_row.pk] = (stamp, time.monotonic() + CALENDAR_CACHE_SECONDS, calendar)
    return calendar


def calendars_by_id(ids, stamps=None):
    """{calendar id: plain calendar} for ``ids``: one query for the stamps (none when the
    caller read them: ``stamps`` {id: updated_at}), more only for the calendars not in memory.
    An id that no longer exists counts as 24×7 UTC; one that cannot be turned into a calendar
    maps to its error."""
    ids = {i for i in ids if i is not None}
    found = {}
    if ids:
        if stamps is None:
            stamps = dict(
                BusinessCalendar.objects.filter(pk__in=ids).values_list("pk", "updated_at")
            )
        for pk in ids:
            stamp = stamps.get(pk)
            if stamp is None:
                found[pk] = sla.Calendar.twenty_four_seven()
                continue
            kept = _CALENDARS.get(pk)
            if kept and kept[0] == stamp and kept[1] > time.monotonic():
                found[pk] = kept[2]
                continue
            try:
                found[pk] = _cached_calendar(BusinessCalendar.objects.get(pk=pk))
            except ValueError as exc:
                # A calendar stored before input was validated: the incidents on it fail
                # (see ``checkpoints``), the others go on.
                found[pk] = exc
    found[None] = sla.Calendar.twenty_four_seven()
    return found


def _load_calendar(calendar_row):
    calendar = calendar_value(calendar_row)
    if not calendar.always_open and not any(calendar.weekly):
        # A calendar without hours would never let the clock run; count all time rather than
        # promise nothing, and say so.
        log.warning("Calendar %s has no business hours; counting it as 24x7", calendar_row)
        calendar = sla.Calendar.twenty_four_seven(calendar.tz)
    return calendar


def pauses_of(incident):
    return [(p.started_at, p.ended_at) for p in incident.pauses.all()]


def clock_inputs(incident):
    """The incident's pauses [(from, to)] in time order and the (target, threshold) signals
    already raised, in one query (UNION ALL): every transition that moves the clock needs both."""
    pauses, signalled, _stamps = _clock_inputs(incident, ())
    return pauses, signalled


_CALENDAR_ROW = "calendar"  # not a target: marks the calendar stamps in ``_clock_inputs``


@functools.cache
def _clock_inputs_sql(calendars):
    """The text of ``_clock_inputs``'s query for ``calendars`` calendar ids (``ALL_CALENDARS``:
    every calendar's stamp; there are a handful). Built once per count: compiling the ORM's
    three-part UNION took longer than running it."""

    def q(name):
        return connection.ops.quote_name(name)

    pause, signal = IncidentPause._meta, SlaSignal._meta
    parts = [
        f"SELECT {q('started_at')}, {q('ended_at')}, '' AS {q('target')}, 0 AS {q('number')} "
        f"FROM {q(pause.db_table)} WHERE {q('incident_id')} = %s",
        f"SELECT NULL, NULL, {q('target')}, {q('threshold')} "
        f"FROM {q(signal.db_table)} WHERE {q('incident_id')} = %s",
    ]
    if calendars:
        parts.append(
            f"SELECT {q('updated_at')}, NULL, '{_CALENDAR_ROW}', {q('id')} "
            f"FROM {q(BusinessCalendar._meta.db_table)}"
            + (
                ""
                if calendars == ALL_CALENDARS
                else f" WHERE {q('id')} IN ({', '.join(['%s'] * calendars)})"
            )
        )
    return " UNION ALL ".join(parts)


ALL_CALENDARS = -1


def _datetime(value):
    """A datetime column read by a plain cursor: SQLite hands back naive UTC (or text)."""
    if value is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return value
    return connection.ops.convert_datetimefield_value(value, None, connection)


def _clock_inputs(incident, calendar_ids):
    """``clock_inputs`` and, in the same query, the ``updated_at`` stamps of ``calendar_ids``
    ({id: stamp}, for ``calendars_by_id``). What ``prefetch`` sent with the row lock is used
    instead of a query of its own."""
    prefetched = incident.__dict__.pop("_prefetched_clock", None)
    if prefetched is not None:
        return prefetched
    calendar_ids = sorted(calendar_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            _clock_inputs_sql(len(calendar_ids)), [incident.pk, incident.pk, *calendar_ids]
        )
        return _parse_clock_inputs(cursor.fetchall())


def _parse_clock_inputs(found_rows):
    found, signalled, stamps = [], set(), {}
    for started_at, ended_at, target, number in found_rows:
        if target == _CALENDAR_ROW:
            stamps[number] = _datetime(started_at)
        elif target:
            signalled.add((target, number))
        else:
            found.append((_datetime(started_at), _datetime(ended_at)))
    return sorted(found, key=lambda p: p[0]), signalled, stamps


# --- reads sent with the row lock ---------------------------------------------------------------
#
# A transition locks the incident row and then reads what its deadlines need: the pauses and
# signals, and for a change of what picks the policy the contributors too. Sent behind the lock
# statement in the same round trip (``itsm.rows.read_together``), each read still runs after the
# lock is granted; ``recompute`` then uses them instead of reading again.


class Prefetch:
    """Reads a transition sends behind its row lock: ``statements(pk)`` gives them, ``keep``
    attaches their rows to the locked incident for the code that would otherwise read."""

    def __init__(self, statements, keep):
        self.statements, self.keep = statements, keep


def _keep_clock(incident, results):
    incident.__dict__["_prefetched_clock"] = _parse_clock_inputs(results[0])


def _keep_policy(incident, results):
    _keep_clock(incident, results[:1])
    incident.__dict__["_prefetched_contributors"] = results[1:]


def _clock_statements(incident_pk):
    return [(_clock_inputs_sql(ALL_CALENDARS), [incident_pk, incident_pk])]


# The clock inputs (with every calendar's stamp); those and the contributors' rows.
CLOCK = Prefetch(_clock_statements, _keep_clock)
POLICY = Prefetch(lambda pk: _clock_statements(pk) + _contributor_statements(pk), _keep_policy)


def drop_clock(incident):
    """Forget the clock and policy read with the lock (after the deadlines are computed)."""
    incident.__dict__.pop("_prefetched_clock", None)
    incident.__dict__.pop("_prefetched_contributors", None)


def drop_prefetched(incident):
    """Forget all that was read with the lock (after the change: the next one reads anew)."""
    for name in [n for n in incident.__dict__ if n.startswith("_prefetched_")]:
        del incident.__dict__[name]


# --- contributors -------------------------------------------------------------------------------


@functools.cache
def _contributor_sql():
    """Per affected service (in the catalog's order), the policy that governs it for the
    incident's reporting organisation (its contract, else the service default) with that
    policy's calendar; then the global default policy, with no service. And the targets of
    those policies, every priority (the caller picks the incident's: it may have been read in
    the same round trip as the priority). Text built once."""

    def q(name):
        return connection.ops.quote_name(name)

    service, affected, contract, policy, calendar, target, incident = (
        q(m._meta.db_table)
        for m in (
            Service,
            IncidentService,
            Contract,
            SlaPolicy,
            BusinessCalendar,
            SlaTarget,
            Incident,
        )
    )
    governing = (
        f"FROM {affected} a JOIN {service} s ON s.id = a.service_id "
        f"LEFT JOIN {contract} k ON k.service_id = s.id AND k.organization_id = "
        f"(SELECT i.organization_id FROM {incident} i WHERE i.id = %s) "
        f"WHERE a.incident_id = %s"
    )
    policies = (
        f"SELECT s.id, s.name, p.id, p.name, p.calendar_id, c.name, c.updated_at, 0, "
        f"s.display_order, s.name "
        f"FROM {affected} a JOIN {service} s ON s.id = a.service_id "
        f"LEFT JOIN {contract} k ON k.service_id = s.id AND k.organization_id = "
        f"(SELECT i.organization_id FROM {incident} i WHERE i.id = %s) "
        f"LEFT JOIN {policy} p ON p.id = COALESCE(k.sla_policy_id, s.default_sla_policy_id) "
        f"LEFT JOIN {calendar} c ON c.id = p.calendar_id "
        f"WHERE a.incident_id = %s "
        f"UNION ALL "
        f"SELECT NULL, NULL, p.id, p.name, p.calendar_id, c.name, c.updated_at, 1, 0, '' "
        f"FROM {policy} p JOIN {calendar} c ON c.id = p.calendar_id WHERE p.is_default "
        f"ORDER BY 8, 9, 10, 1"
    )
    targets = (
        f"SELECT t.policy_id, t.priority, t.response_target, t.resolution_target FROM {target} t "
        f"WHERE t.policy_id IN (SELECT COALESCE(k.sla_policy_id, s.default_sla_policy_id) "
        f"{governing}) "
        f"OR t.policy_id IN (SELECT p.id FROM {policy} p WHERE p.is_default)"
    )
    return policies, targets


def _contributor_statements(incident_pk):
    policies, targets = _contributor_sql()
    return [(policies, [incident_pk, incident_pk]), (targets, [incident_pk, incident_pk])]


def _seconds(duration):
    """A duration column read by a plain cursor: PostgreSQL's interval, SQLite's microseconds."""
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    return int(duration) / 1_000_000


def contributors(incident):
    """The policies that contribute to the incident's deadlines (SLA.md rule 1), as plain
    dicts: policy, service and calendar (ids and names) and the response and resolution
    targets in seconds (None when nothing promises one), each with its calendar. One round
    trip whatever the number of services (none when read with the lock, ``prefetch``); the
    calendars come from memory."""
    prefetched = incident.__dict__.pop("_prefetched_contributors", None)
    policy_rows, target_rows = prefetched or rows.read_together(
        _contributor_statements(incident.pk)
    )
    targets = {
        policy: (_seconds(response), _seconds(resolution))
        for policy, priority, response, resolution in target_rows
        if priority == incident.priority
    }
    services, default = [], None
    for row in policy_rows:
        service_id, service_name, policy_id = row[:3]
        policy = (*row[2:6], _datetime(row[6]))  # id, name, calendar id, calendar name, stamp
        if service_id is None:
            # The global default only ever contributes through its target for this priority.
            default = policy if policy_id in targets else None
        else:
            services.append((service_id, service_name, policy if policy_id else None))
    pairs = [(pk, name, policy or default) for pk, name, policy in services] or [
        (None, None, default)
    ]
    # The global default's calendar too: a policy without this priority falls back to it.
    governing = [p for _pk, _name, p in pairs if p] + ([default] if default else [])
    calendars = calendars_by_id({p[2] for p in governing}, {p[2]: p[4] for p in governing})
    found = {}
    for service_id, service_name, policy in pairs:
        if policy is None:
            continue
        if policy[0] not in targets:
            # No target for this priority: the global default's promise stands in for it.
            if default is None:
                continue
            policy = default
        response, resolution = targets[policy[0]]
        key = (policy[0], response, resolution)
        if key in found:
            continue  # the same promise through another service says nothing new
        policy_id, policy_name, calendar_id, calendar_name, _stamp = policy
        calendar = calendars[calendar_id]
        if isinstance(calendar, Exception):
            raise calendar
        found[key] = (
            {
                "policy": policy_id,
                "policy_name": policy_name,
                "service": service_id,
                "service_name": service_name,
                "calendar": calendar_id,
                "calendar_name": calendar_name,
                "response": response,
                "resolution": resolution,
            },
            calendar,
        )
    return list(found.values())


def _earliest(candidates, kind, start, pauses):
    """(candidate, due or None) with the earliest due instant for ``kind`` among
    ``candidates`` = [(dict, calendar)], or (None, None) when none promises it. While on hold,
    a candidate due after the hold began has no due instant (None); the winner is then chosen
    as if the hold had ended, so the desk still sees which promise applies."""
    closed = [p for p in pauses if p[1] is not None]
    best = None
    for candidate, calendar in candidates:
        seconds = candidate.get(kind)
        if seconds is None:
            continue
        due = sla.due_at(start, timedelta(seconds=seconds), calendar, closed)
        rank = (due, candidate["policy"], candidate["service"] or 0)
        if best is None or rank < best[0]:
            best = (rank, candidate, calendar)
    if best is None:
        return None, None
    _rank, candidate, calendar = best
    return candidate, _due_or_none(start, candidate[kind], calendar, pauses)


def _due_or_none(start, seconds, calendar, pauses):
    try:
        return sla.due_at(start, timedelta(seconds=seconds), calendar, pauses)
    except sla.StillOnHold:
        return None


def _met_at(incident, kind):
    return incident.responded_at if kind == SlaTargetKind.RESPONSE else incident.resolved_at


def _due_field(kind):
    return "response_due_at" if kind == SlaTargetKind.RESPONSE else "resolve_due_at"


def _target_field(kind):
    return "response_target" if kind == SlaTargetKind.RESPONSE else "resolution_target"


def _explain_line(candidate, kind):
    line = {k: v for k, v in candidate.items() if k not in ("response", "resolution")}
    line["target"] = candidate[kind]
    return line


# --- recompute ----------------------------------------------------------------------------------


def _changed_pauses(pauses, change):
    """``pauses`` [(from, to)] with ``change`` applied: ("start", at) a pause begins at ``at``,
    ("end", at) the open one ends there (a transition's pause not written yet)."""
    if change is None:
        return pauses
    what, at = change
    if what == "start":
        return sorted([*pauses, (at, None)], key=lambda p: p[0])
    return [(start, at if end is None else end) for start, end in pauses]


def recompute(incident, *, reuse_policy=False, pause_change=None):
    """Set the incident's policy, targets, deadlines, explanation and ``next_sla_check_at`` in
    memory (the caller saves). With ``reuse_policy`` the contributors stored in
    ``sla_explain`` stand (only the pauses moved: no catalog reads). A target already met keeps
    its due instant; one met while on hold is due as if the hold ended when it was met.
    ``pause_change`` (``_changed_pauses``): a pause the caller writes after this read."""
    explain = dict(incident.sla_explain or {})
    stored = explain.get("candidates")
    reuse = reuse_policy and stored is not None
    if not reuse:
        candidates = contributors(incident)
        explain["candidates"] = [c for c, _calendar in candidates]
    pending = [
        kind
        for kind in TARGETS
        if _met_at(incident, kind) is None or getattr(incident, _due_field(kind)) is None
    ]
    if reuse and not pending and not incident.is_open:
        # Both targets met and kept (a resolve): no deadline can move, nothing is left to
        # check, so neither the calendars nor the pauses are read.
        pauses = signalled = None
    else:
        # The stored candidates' calendar stamps come with the pauses (one query, not two).
        calendar_ids = {c["calendar"] for c in stored if c["calendar"]} if reuse else ()
        pauses, signalled, stamps = _clock_inputs(incident, calendar_ids)
        pauses = _changed_pauses(pauses, pause_change)
        if reuse:
            calendars = calendars_by_id(calendar_ids, stamps)
            candidates = [(c, calendars[c["calendar"]]) for c in stored]
            for _candidate, calendar in candidates:
                if isinstance(calendar, Exception):
                    raise calendar
    for kind in pending:
        due_field, target_field = _due_field(kind), _target_field(kind)
        candidate, due = _earliest(candidates, kind, incident.opened_at, pauses)
        setattr(incident, due_field, due)
        if candidate is None:
            setattr(incident, target_field, None)
            explain.pop(kind, None)
        else:
            setattr(incident, target_field, timedelta(seconds=candidate[kind]))
            explain[kind] = _explain_line(candidate, kind)
    incident.sla_explain = explain
    # The policy behind the resolution deadline (else the response one), for lists and filters.
    winner = explain.get(SlaTargetKind.RESOLUTION) or explain.get(SlaTargetKind.RESPONSE)
    incident.sla_policy_id = winner["policy"] if winner else None
    incident.sla_computed_at = timezone.now()
    incident.sla_stale = False

    if not incident.is_open:
        incident.next_sla_check_at = None
        return incident
    # The winners' calendars are among the candidates' (read above): no second read.
    calendars = {c["calendar"]: calendar for c, calendar in candidates}
    calendars[None] = sla.Calendar.twenty_four_seven()
    wanted = {explain[k]["calendar"] for k in pending if k in explain}
    if not wanted <= calendars.keys():
        calendars = calendars_by_id(wanted)
    upcoming = checkpoints(incident, calendars, pauses, signalled)
    incident.next_sla_check_at = min((c.at for c in upcoming), default=None)
    return incident


def explain_lines(incident):
    """One line per target for the desk: which policy, service and calendar set it."""
    from django.utils.translation import gettext as _

    labels = {
        SlaTargetKind.RESPONSE: _("Response"),
        SlaTargetKind.RESOLUTION: _("Resolution"),
    }
    lines = []
    for kind in TARGETS:
        line = (incident.sla_explain or {}).get(kind)
        if not line:
            lines.append(_("%(target)s: no SLA target applies.") % {"target": labels[kind]})
            continue
        values = {
            "target": labels[kind],
            "policy": line["policy_name"],
            "service": line["service_name"] or _("no affected service"),
            "calendar": line["calendar_name"],
            "length": timedelta(seconds=line["target"]),
        }
        lines.append(
            _(
                "%(target)s: %(length)s from policy %(policy)s (through %(service)s), "
                "counted on calendar %(calendar)s."
            )
            % values
        )
    return lines


def left_on_hold(incident, now=None):
    """{target: time left} for an incident on hold: the business time each target not yet met
    still has to run when work resumes, on the calendar that set it (one query: the pauses, with
    the calendars' stamps). Empty when the incident is not on hold."""
    from incidents.models import IncidentState

    if incident.state != IncidentState.ON_HOLD:
        return {}
    explain = incident.sla_explain or {}
    kinds = [k for k in TARGETS if _met_at(incident, k) is None and explain.get(k)]
    if not kinds:
        return {}
    calendar_ids = {explain[k]["calendar"] for k in kinds if explain[k]["calendar"]}
    pauses, _signalled, stamps = _clock_inputs(incident, calendar_ids)
    calendars = calendars_by_id(calendar_ids, stamps)
    now = now or timezone.now()
    left = {}
    for kind in kinds:
        calendar = calendars[explain[kind]["calendar"]]
        if isinstance(calendar, Exception):
            continue
        ran = sla.business_time_between(
            incident.opened_at, max(now, incident.opened_at), calendar, pauses
        )
        left[kind] = max(timedelta(seconds=explain[kind]["target"]) - ran, timedelta(0))
    return left


def target_calendar_id(incident, kind):
    return (incident.sla_explain or {}).get(kind, {}).get("calendar")


def checkpoints(incident, calendars, pauses, signalled):
    """Every warning and breach instant still to come for the targets not yet met, each on the
    calendar of the policy that set that target. ``calendars`` maps calendar id → calendar;
    ``signalled`` is the set of (target, threshold) already raised. While on hold, only the
    instants that fell before the hold began are known."""
    found = []
    for kind in TARGETS:
        duration = getattr(incident, _target_field(kind))
        if _met_at(incident, kind) is not None or duration is None:
            continue
        calendar = calendars[target_calendar_id(incident, kind)]
        if isinstance(calendar, Exception):
            raise calendar
        for threshold in [*warning_thresholds(), BREACH]:
            if (kind, threshold) in signalled:
                continue
            part = round(duration.total_seconds() * threshold / 1000)
            at = _due_or_none(incident.opened_at, part, calendar, pauses)
            if at is not None:
                found.append(Checkpoint(kind, threshold, at))
    return found


def breaches_at_meeting(incident):
    """The targets the incident met after their due instant, as checkpoints at that instant
    (SLA.md rule 5: the breach happened at the due instant, whether or not a sweep ran)."""
    found = []
    for kind in TARGETS:
        met, due = _met_at(incident, kind), getattr(incident, _due_field(kind))
        if met is not None and due is not None and met > due:
            found.append(Checkpoint(kind, BREACH, due))
    return found

"""The SLA in words, for the desk: the queue's one figure and the change page's line per target.

Pure functions over an incident's stored columns (and, on hold, the time left that
``incidents.deadlines.left_on_hold`` computed): no query here. Each figure says which target it
is about, since "12 min left" alone does not tell an agent whether to answer or to fix."""

from datetime import timedelta

from django.utils import formats, timezone
from django.utils.translation import gettext as _

from incidents.models import IncidentState, SlaTargetKind


def target_name(kind):
    return _("response") if kind == SlaTargetKind.RESPONSE else _("resolution")


def short_duration(delta):
    """'23 min', '5 h', '3 d': the precision a person reads in a queue."""
    minutes = int(abs(delta.total_seconds()) // 60)
    if minutes < 1:
        return _("<1 min")
    if minutes < 60:
        return _("%(n)d min") % {"n": minutes}
    hours = minutes // 60
    if hours < 48:
        return _("%(n)d h") % {"n": hours}
    return _("%(n)d d") % {"n": hours // 24}


def precise_duration(delta):
    """'12 min', '2 h 10 min', '3 d 4 h': two units at most, for the change page."""
    minutes = int(abs(delta.total_seconds()) // 60)
    if minutes < 1:
        return _("<1 min")
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return (
            _("%(d)d d %(h)d h") % {"d": days, "h": hours} if hours else _("%(d)d d") % {"d": days}
        )
    if hours:
        if minutes:
            return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
        return _("%(h)d h") % {"h": hours}
    return _("%(n)d min") % {"n": minutes}


def local_time(instant):
    """One format for every time on the desk's pages, in the active time zone, zone shown:
    '3 Dec 2026, 16:40 EET'."""
    local = timezone.localtime(instant)
    return f"{formats.date_format(local, 'j M Y, H:i')} {local.tzname()}"


def _targets(incident):
    """[(kind, due, breached_at, met_at, target length)] for the targets the incident has."""
    found = []
    for kind, due, breached, met, length in (
        (
            SlaTargetKind.RESPONSE,
            incident.response_due_at,
            incident.response_breached_at,
            incident.responded_at,
            incident.response_target,
        ),
        (
            SlaTargetKind.RESOLUTION,
            incident.resolve_due_at,
            incident.resolve_breached_at,
            incident.resolved_at,
            incident.resolution_target,
        ),
    ):
        if due is not None or length is not None:
            found.append((kind, due, breached, met, length))
    return found


def sla_summary(incident, now):
    """(tone, text) for the queue: the next unmet target, named, read from the stored columns:
    ``("breached", "response breached 2 h ago")``, ``("warning", "resolution: 12 min left")``,
    ``("paused", "paused")``, ``("met", "met")``, or ``("none", "—")`` without a target."""
    if not incident.is_open:
        if incident.response_breached_at or incident.resolve_breached_at:
            return "breached", _("breached")
        if incident.resolve_due_at is None and incident.response_due_at is None:
            return "none", "—"
        return "met", _("met")
    if incident.state == IncidentState.ON_HOLD:
        return "paused", _("paused")
    pending = [
        (due, breached, length, kind)
        for kind, due, breached, met, length in _targets(incident)
        if due is not None and (met is None or kind == SlaTargetKind.RESOLUTION)
    ]
    breaches = [
        (breached or due, kind) for due, breached, _l, kind in pending if breached or due <= now
    ]
    if breaches:
        at, kind = min(breaches, key=lambda b: b[0])
        return "breached", _("%(target)s breached %(ago)s ago") % {
            "target": target_name(kind),
            "ago": short_duration(now - at),
        }
    if not pending:
        return "none", "—"
    due, _b, length, kind = min(pending, key=lambda p: p[0])
    left = due - now
    # Amber in the last quarter of the target (or the last 15 minutes without one).
    soon = length / 4 if length else None
    tone = "warning" if left <= (soon or timedelta(minutes=15)) else "ok"
    return tone, _("%(target)s: %(left)s left") % {
        "target": target_name(kind),
        "left": short_duration(left),
    }


def target_lines(incident, now, left_on_hold=None):
    """[(tone, text)], one per target, for the change page:

    - "Response: met 12 min early" / "Response: met 5 min late"
    - "Resolution: 2 h 10 min left (due 3 Dec 2026, 16:40 EET)"
    - "Resolution: breached 20 min ago (due 3 Dec 2026, 14:00 EET)"
    - "Resolution: paused, 1 h 5 min left when work resumes"

    ``left_on_hold`` {kind: timedelta} is what the clock still has to run for an incident on
    hold (``incidents.deadlines.left_on_hold``)."""
    lines = []
    for kind, due, breached, met, length in _targets(incident):
        name = target_name(kind).capitalize()
        if met is not None and due is not None:
            if met <= due:
                text = _("%(target)s: met %(margin)s early") % {
                    "target": name,
                    "margin": precise_duration(due - met),
                }
                lines.append(("met", text))
            else:
                text = _("%(target)s: met %(margin)s late") % {
                    "target": name,
                    "margin": precise_duration(met - due),
                }
                lines.append(("breached", text))
            continue
        if incident.state == IncidentState.ON_HOLD or due is None:
            left = (left_on_hold or {}).get(kind)
            if left is None:
                lines.append(("paused", _("%(target)s: paused") % {"target": name}))
            else:
                text = _("%(target)s: paused, %(left)s left when work resumes") % {
                    "target": name,
                    "left": precise_duration(left),
                }
                lines.append(("paused", text))
            continue
        values = {"target": name, "due": local_time(due)}
        if breached or due <= now:
            values["ago"] = precise_duration(now - (breached or due))
            lines.append(("breached", _("%(target)s: breached %(ago)s ago (due %(due)s)") % values))
        else:
            values["left"] = precise_duration(due - now)
            tone = "ok"
            if length and due - now <= length / 4:
                tone = "warning"
            lines.append((tone, _("%(target)s: %(left)s left (due %(due)s)") % values))
    return lines

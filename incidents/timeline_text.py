"""Each timeline event as a sentence in the agent's language, with the text it carries (the
update, the hold reason, the resolution notes) inline: "ana put the incident on hold: waiting
on the acquirer." rather than "acknowledged → on_hold".

Pure functions over an event's stored values (typed: people, services and problems carry their
labels, see ``workflow._ref``), so rendering a timeline runs no query per row. The update text
of an "update posted" event comes annotated on the row (``with_update_text``)."""

from django.db.models import IntegerField, OuterRef, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils.translation import gettext as _

from incidents.models import (
    EventKind,
    Incident,
    IncidentState,
    IncidentUpdate,
    PublicStatus,
    SlaTargetKind,
)
from incidents.sla_text import local_time
from itsm.actors import ActorKind
from services.models import Priority, ServiceStatus


def with_update_text(events):
    """The events with ``update_body``: the text of the update an "update posted" event
    records, in the same query."""
    body = IncidentUpdate.objects.filter(
        pk=Cast(KeyTextTransform("update", OuterRef("new_value")), IntegerField()),
        incident_id=OuterRef("incident_id"),
    ).values("body")[:1]
    return events.annotate(update_body=Subquery(body))


def who(event):
    if event.actor_kind == ActorKind.SYSTEM:
        return _("The system")
    return event.actor_label or _("Someone")


def _label(value, empty=None):
    if isinstance(value, dict) and "label" in value:
        return str(value["label"])
    if value in (None, ""):
        return empty if empty is not None else _("nobody")
    return str(value)


def _services(values):
    parts = []
    for value in values or []:
        status = value.get("status")
        if status in ServiceStatus.values:
            parts.append(f"{value['label']} ({ServiceStatus(status).label.lower()})")
        else:
            parts.append(str(value.get("label", "")))
    return ", ".join(parts) or _("no service")


def _state(value):
    return IncidentState(value).label.lower() if value in IncidentState.values else str(value)


def _priority(value):
    return Priority(value).label if value in Priority.values else str(value)


def _field_label(name):
    try:
        return str(Incident._meta.get_field(name).verbose_name)
    except Exception:  # a field renamed since the event was written
        return name


def _quoted(text):
    return f"“{text.strip()}”" if text and text.strip() else ""


def _with_note(sentence, note):
    """ "… on hold" + ": waiting on the acquirer." or "."."""
    note = (note or "").strip()
    return f"{sentence}: {note}" if note else f"{sentence}."


def sentence(event):
    """The event in words, for the incident's timeline."""
    actor, kind = who(event), event.kind
    old, new, note = event.old_value, event.new_value, event.note
    values = {"actor": actor}
    if kind == EventKind.CREATED:
        new = new or {}
        values.update(
            priority=_priority(new.get("priority")), services=_services(new.get("services"))
        )
        text = _("%(actor)s opened the incident at %(priority)s on %(services)s") % values
        if new.get("assignee"):
            text += _(", assigned to %(person)s") % {"person": _label(new["assignee"])}
        return text + "."
    if kind == EventKind.ACKNOWLEDGED:
        return _("%(actor)s acknowledged the incident.") % values
    if kind == EventKind.ASSIGNED:
        new = new or {}
        values.update(person=_label(new.get("assignee")), group=_label(new.get("group"), "—"))
        return _("%(actor)s assigned the incident to %(person)s (group: %(group)s).") % values
    if kind == EventKind.PRIORITY_CHANGED:
        old, new = old or {}, new or {}
        values.update(
            old=_priority(old.get("priority")),
            new=_priority(new.get("priority")),
            impact=new.get("impact"),
            urgency=new.get("urgency"),
        )
        return (
            _(
                "%(actor)s changed the priority from %(old)s to %(new)s "
                "(impact %(impact)s, urgency %(urgency)s)."
            )
            % values
        )
    if kind == EventKind.HELD:
        return _with_note(_("%(actor)s put the incident on hold") % values, note)
    if kind == EventKind.RESUMED:
        return _("%(actor)s resumed work; the incident is %(state)s again.") % {
            **values,
            "state": _state(new),
        }
    if kind == EventKind.UPDATE_POSTED:
        new = new or {}
        body = _quoted(getattr(event, "update_body", None) or "")
        if new.get("public"):
            status = new.get("public_status")
            values["status"] = (
                PublicStatus(status).label.lower() if status in PublicStatus.values else "—"
            )
            text = _("%(actor)s posted a public update (%(status)s)") % values
        else:
            text = _("%(actor)s added a work note") % values
        return f"{text}: {body}" if body else f"{text}."
    if kind == EventKind.RESOLVED:
        return _with_note(_("%(actor)s resolved the incident") % values, note)
    if kind == EventKind.CLOSED:
        return _("%(actor)s closed the incident.") % values
    if kind == EventKind.REOPENED:
        return _with_note(_("%(actor)s reopened the incident") % values, note)
    if kind == EventKind.SERVICES_CHANGED:
        values["services"] = _services(new)
        return _("%(actor)s changed the affected services to %(services)s.") % values
    if kind == EventKind.MAJOR_CHANGED:
        if new:
            return _("%(actor)s declared a major incident.") % values
        return _("%(actor)s stood down the major incident.") % values
    if kind == EventKind.PROBLEM_LINKED:
        if new:
            return _("%(actor)s linked the incident to problem %(problem)s.") % {
                **values,
                "problem": _label(new),
            }
        return _("%(actor)s unlinked the incident from problem %(problem)s.") % {
            **values,
            "problem": _label(old, "—"),
        }
    if kind in (EventKind.SLA_WARNING, EventKind.SLA_BREACHED) and isinstance(new, dict):
        target = SlaTargetKind(new["target"]).label.lower() if new.get("target") else ""
        values = {"target": target, "percent": (new.get("threshold") or 0) // 10}
        values["due"] = _iso_local(new.get("due_at"))
        if kind == EventKind.SLA_BREACHED or (new.get("threshold") or 0) >= 1000:
            return _("The %(target)s target was breached (due %(due)s).") % values
        return _("The %(target)s target is %(percent)s%% used (due %(due)s).") % values
    if kind == EventKind.SLA_MOVED and isinstance(new, dict):
        parts = []
        for key, label in (("response_due_at", _("response")), ("resolve_due_at", _("resolution"))):
            if (old or {}).get(key) != new.get(key):
                parts.append(
                    _("%(target)s due %(old)s → %(new)s")
                    % {
                        "target": label,
                        "old": _iso_local((old or {}).get(key)),
                        "new": _iso_local(new.get(key)),
                    }
                )
        return _with_note(_("SLA deadlines moved (%(moves)s)") % {"moves": "; ".join(parts)}, note)
    if kind == EventKind.EDITED and isinstance(new, dict):
        old = old or {}
        parts = [
            _("%(field)s from %(old)s to %(new)s")
            % {
                "field": _field_label(key),
                "old": _label(old.get(key), "—"),
                "new": _label(new[key], "—"),
            }
            for key in sorted(new)
        ]
        return _("%(actor)s changed %(changes)s.") % {**values, "changes": "; ".join(parts)}
    # An event kind added later and not described here still reads as its name.
    label = EventKind(kind).label if kind in EventKind.values else kind
    return _with_note(f"{actor}: {label}", note)


def _iso_local(value):
    if not value:
        return "—"
    from datetime import datetime

    try:
        return local_time(datetime.fromisoformat(value))
    except ValueError:
        return str(value)

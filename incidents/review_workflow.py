"""The one write path of post-incident reviews and their action items, and the daily reminder
of overdue items.

- ``start_review``: a resolved (or closed) major or P1 incident gets one review, its draft
  generated from the timeline (``review_facts`` reads, ``draft_markdown`` writes the text).
- ``edit_review``: staff's sections; ``add_action_item`` and ``set_action_item_state``.
- ``remind_overdue_action_items`` (beat, hourly): each open item past its due day reminds its
  owner once per day, through the outbox. The day's ``ActionItemReminder`` row is inserted
  with ON CONFLICT DO NOTHING and only the rows this call inserted are told: two beats or a
  retried task never remind twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents import visibility
from incidents.cost import format_cost, running_costs
from incidents.models import (
    EventKind,
    Incident,
    IncidentEvent,
    IncidentState,
    IncidentUpdate,
)
from incidents.reviews import ActionItem, ActionItemReminder, ActionItemState, PostIncidentReview
from incidents.workflow import WorkflowError, check_may
from notifications import outbox
from notifications.models import EventKind as NotificationKind
from notifications.models import Notification
from services.models import CauseKind, Priority, ServiceImpact, ServiceStatus

REVIEW_PERMISSION_ACTION = "edit"  # reviews are written by those who may change incidents
REVIEW_FIELDS = ("summary", "impact", "contributing_factors", "went_well", "went_badly")
SUBJECT_KIND = "incident"
REVIEW_ADMIN_PATH = "/admin/incidents/postincidentreview/{pk}/change/"


def needs_review(incident):
    return incident.is_major or incident.priority == Priority.P1


# --- the facts and the draft (pure once read) ---------------------------------------------------


@dataclass
class TargetOutcome:
    name: str
    target: dt.timedelta | None
    due_at: dt.datetime | None
    met_at: dt.datetime | None

    @property
    def margin(self):
        """Positive: met with this to spare; negative: breached by this much; None: unknown."""
        if self.due_at is None or self.met_at is None:
            return None
        return self.due_at - self.met_at


@dataclass
class ReviewFacts:
    reference: str
    title: str
    priority: str
    is_major: bool
    source: str
    opened_at: dt.datetime
    opened_by: str
    acknowledged_at: dt.datetime | None
    acknowledged_by: str
    responded_at: dt.datetime | None
    resolved_at: dt.datetime | None
    targets: list = field(default_factory=list)  # TargetOutcome
    timeline: list = field(default_factory=list)  # (at, what, who, note)
    public_updates: list = field(default_factory=list)  # (at, status, body)
    impacts: list = field(default_factory=list)  # (service name, status label, from, to)
    customers_notified: int = 0
    cost: object = None  # incidents.cost.IncidentCost


def review_facts(incident, *, now=None):
    """Everything the draft says, read in a constant number of queries."""
    now = now or timezone.now()
    events = list(
        IncidentEvent.objects.filter(incident=incident)
        .order_by("at", "id")
        .values_list("at", "kind", "actor_label", "note")
    )
    kinds = dict(EventKind.choices)
    opened_by = next((who for _at, kind, who, _n in events if kind == EventKind.CREATED), "")
    acked_by = next((who for _at, kind, who, _n in events if kind == EventKind.ACKNOWLEDGED), "")
    statuses = dict(ServiceStatus.choices)
    impacts = [
        (name, statuses.get(status, status), start, end)
        for name, status, start, end in ServiceImpact.objects.filter(
            cause_kind=CauseKind.INCIDENT, cause_id=incident.pk
        )
        .order_by("valid_from", "service__name")
        .values_list("service__name", "status", "valid_from", "valid_to")
    ]
    updates = list(
        IncidentUpdate.objects.filter(incident=incident, is_public=True)
        .order_by("created_at", "id")
        .values_list("created_at", "public_status", "body")
    )
    customers = (
        Notification.objects.filter(
            event__subject_kind=SUBJECT_KIND,
            event__subject_id=incident.pk,
            contact__isnull=False,
        )
        .values("contact_id")
        .distinct()
        .count()
    )
    return ReviewFacts(
        reference=incident.reference,
        title=incident.title,
        priority=incident.get_priority_display(),
        is_major=incident.is_major,
        source=incident.get_source_display(),
        opened_at=incident.opened_at,
        opened_by=opened_by,
        acknowledged_at=incident.acknowledged_at,
        acknowledged_by=acked_by,
        responded_at=incident.responded_at,
        resolved_at=incident.resolved_at,
        targets=[
            TargetOutcome(
                _("Response"),
                incident.response_target,
                incident.response_due_at,
                incident.responded_at,
            ),
            TargetOutcome(
                _("Resolution"),
                incident.resolution_target,
                incident.resolve_due_at,
                incident.first_resolved_at,
            ),
        ],
        timeline=[(at, kinds.get(kind, kind), who, note) for at, kind, who, note in events],
        public_updates=updates,
        impacts=impacts,
        customers_notified=customers,
        cost=running_costs([incident], now=now)[incident.pk],
    )


def _when(moment):
    return "—" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(delta):
    if delta is None:
        return "—"
    seconds = int(abs(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


def _between(start, end):
    return None if start is None or end is None else end - start


def draft_markdown(facts):
    """The draft of a review, in Markdown, from its facts: detection, response, each public
    update, the SLA targets, the times, the services hurt and when, customers told, the cost."""
    lines = [f"# {facts.reference} {facts.title}", ""]
    lines += [
        f"{_('Priority')}: {facts.priority}"
        + (f" · {_('major incident')}" if facts.is_major else ""),
        "",
        f"## {_('Detection')}",
        "",
        _("Opened %(at)s from %(source)s by %(who)s.")
        % {"at": _when(facts.opened_at), "source": facts.source, "who": facts.opened_by or "—"},
        "",
        f"## {_('Response')}",
        "",
    ]
    if facts.acknowledged_at:
        lines.append(
            _("Acknowledged %(at)s by %(who)s.")
            % {"at": _when(facts.acknowledged_at), "who": facts.acknowledged_by or "—"}
        )
    else:
        lines.append(_("Never acknowledged."))
    lines += [
        "",
        f"- {_('Time to respond')}: {_span(_between(facts.opened_at, facts.responded_at))}",
        f"- {_('Time to resolve')}: {_span(_between(facts.opened_at, facts.resolved_at))}",
        "",
        f"## {_('SLA')}",
        "",
    ]
    for outcome in facts.targets:
        if outcome.target is None:
            lines.append(f"- {outcome.name}: {_('no target')}")
        elif outcome.margin is None:
            lines.append(f"- {outcome.name}: {_('not met yet')}")
        elif outcome.margin >= dt.timedelta(0):
            lines.append(
                f"- {outcome.name} ({_span(outcome.target)}): "
                + _("met, %(margin)s to spare") % {"margin": _span(outcome.margin)}
            )
        else:
            lines.append(
                f"- {outcome.name} ({_span(outcome.target)}): "
                + _("breached by %(margin)s") % {"margin": _span(outcome.margin)}
            )
    lines += ["", f"## {_('Public updates')}", ""]
    for at, status, body in facts.public_updates:
        lines.append(f"- {_when(at)} **{status or '—'}**: {' '.join(body.split())}")
    if not facts.public_updates:
        lines.append(_("No public update was posted."))
    lines += ["", f"## {_('Affected services')}", ""]
    for name, status, start, end in facts.impacts:
        lines.append(
            f"- {name}: {status}, {_when(start)} – {_when(end)} ({_span(_between(start, end))})"
        )
    if not facts.impacts:
        lines.append(_("No service was affected."))
    lines += [
        "",
        f"## {_('Customers notified')}",
        "",
        str(facts.customers_notified),
        "",
        f"## {_('Cost of downtime')}",
        "",
        format_cost(facts.cost.total if facts.cost else 0),
        "",
        f"## {_('Timeline')}",
        "",
    ]
    for at, what, who, note in facts.timeline:
        text = f"- {_when(at)} {what}" + (f" ({who})" if who else "")
        lines.append(text + (f": {' '.join(note.split())}" if note else ""))
    return "\n".join(lines) + "\n"


def review_markdown(review):
    """The whole review as Markdown (the export): the draft, staff's sections, the items."""
    parts = [review.draft.rstrip(), ""]
    titles = {
        "summary": _("Summary"),
        "impact": _("Impact"),
        "contributing_factors": _("Contributing factors"),
        "went_well": _("What went well"),
        "went_badly": _("What did not go well"),
    }
    for name in REVIEW_FIELDS:
        parts += [f"## {titles[name]}", "", getattr(review, name).strip() or "—", ""]
    parts += [f"## {_('Action items')}", ""]
    items = review.action_items.select_related("owner", "problem").order_by("due_on", "id")
    for item in items:
        problem = f" · {item.problem}" if item.problem_id else ""
        parts.append(
            f"- [{'x' if item.state == ActionItemState.DONE else ' '}] {item.title} "
            f"({item.owner.get_username()}, {_('due')} {item.due_on:%Y-%m-%d}, "
            f"{item.get_state_display()}{problem})"
        )
    if not items:
        parts.append("—")
    return "\n".join(parts) + "\n"


# --- writes ---------------------------------------------------------------------------------------


def start_review(incident, *, actor, now=None):
    """The review of a resolved (or closed) major or P1 incident, its draft generated now."""
    check_may(actor, REVIEW_PERMISSION_ACTION, incident)
    now = now or timezone.now()
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if not needs_review(incident):
            raise WorkflowError(_("Only a major or P1 incident gets a post-incident review."))
        if incident.state not in (IncidentState.RESOLVED, IncidentState.CLOSED):
            raise WorkflowError(_("Resolve the incident before reviewing it."))
        if PostIncidentReview.objects.filter(incident=incident).exists():
            raise WorkflowError(_("This incident has a review already."))
        return PostIncidentReview.objects.create(
            incident=incident,
            draft=draft_markdown(review_facts(incident, now=now)),
            created_by=actor if isinstance(actor, get_user_model()) else None,
            created_at=now,
        )


def edit_review(review, *, actor, changes):
    """Staff's sections (``REVIEW_FIELDS``) of the review."""
    check_may(actor, REVIEW_PERMISSION_ACTION, review.incident)
    unknown = set(changes) - set(REVIEW_FIELDS)
    if unknown:
        raise WorkflowError(_("A review has no field %(name)s.") % {"name": sorted(unknown)[0]})
    with transaction.atomic():
        review = PostIncidentReview.objects.select_for_update().get(pk=review.pk)
        for name, value in changes.items():
            setattr(review, name, (value or "").strip())
        review.save()
    return review


def add_action_item(review, *, actor, title, owner, due_on, problem=None):
    check_may(actor, REVIEW_PERMISSION_ACTION, review.incident)
    title = (title or "").strip()
    if not title:
        raise WorkflowError(_("Give the action item a title."), field="title")
    if owner is None:
        raise WorkflowError(_("Give the action item an owner."), field="owner")
    if due_on is None:
        raise WorkflowError(_("Give the action item a due date."), field="due_on")
    return ActionItem.objects.create(
        review=review, title=title, owner=owner, due_on=due_on, problem=problem
    )


def set_action_item_state(item, *, actor, state):
    check_may(actor, REVIEW_PERMISSION_ACTION, item.review.incident)
    if state not in ActionItemState.values:
        raise WorkflowError(_("%(state)s is not a state of an action item.") % {"state": state})
    ActionItem.objects.filter(pk=item.pk).update(state=state)
    item.state = state
    return item


def remind_overdue_action_items(*, today=None):
    """Remind the owner of each open action item past its due day, once per item and day.
    Returns the number of reminders queued."""
    today = today or timezone.localdate()
    due = list(
        ActionItem.objects.filter(state=ActionItemState.OPEN, due_on__lt=today)
        .exclude(reminders__day=today)
        .select_related("owner", "review__incident")
    )
    queued = 0
    for item in due:
        try:
            with transaction.atomic():
                ActionItemReminder.objects.create(item=item, day=today)
                _queue_reminder(item, today)
        except IntegrityError:
            continue  # another beat or worker reminded it today
        queued += 1
    return queued


def _queue_reminder(item, today):
    incident = item.review.incident
    late = (today - item.due_on).days
    outbox.notify_staff(
        kind=NotificationKind.ACTION_ITEM_OVERDUE,
        key=f"action-item:{item.pk}:{today.isoformat()}",
        subject=_("Overdue action item: %(title)s") % {"title": item.title},
        body=_(
            "The action item “%(title)s” of the review of %(incident)s was due on %(due)s "
            "(%(late)d days ago)."
        )
        % {
            "title": item.title,
            "incident": incident.reference,
            "due": item.due_on.isoformat(),
            "late": late,
        },
        users=[item.owner],
        details={
            "incident_id": incident.pk,
            "reference": incident.reference,
            "url": f"{settings.SITE_URL}{REVIEW_ADMIN_PATH.format(pk=item.review_id)}",
        },
        subject_kind=SUBJECT_KIND,
        subject_id=incident.pk,
        # An owner who may no longer see the incident (a confidential one) is not told of it.
        readers=visibility.readers_of(incident),
    )

"""Post-incident reviews: the draft of a scripted incident, action items, reminders once a day.

The scripted P1 (24×7 policy: respond in 15 min, resolve in 1 h), Payments in major outage at
600 an hour, two confirmed subscribers of Payments:

    10:00  opened by the agent
    10:05  acknowledged: response met, 10 min to spare
    10:10  public update "investigating"
    10:30  public update "identified"
    11:20  resolved: resolution breached by 20 min; 80 min of major outage = 800.00
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from incidents import review_workflow, workflow
from incidents.reviews import ActionItemReminder, ActionItemState
from notifications.models import EventKind as NotificationKind
from notifications.models import Notification, NotificationEvent
from notifications.outbox import expand_event
from services.models import ServiceStatus
from tests.factories import ContactFactory, SubscriptionFactory, UserFactory

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def scripted(agent, service):
    service.cost_major_per_hour = Decimal("600")
    service.save()
    for _ in range(2):
        SubscriptionFactory(service=service, contact=ContactFactory(confirmed_at=T0))
    incident = workflow.create_incident(
        actor=agent,
        title="Card payments fail",
        impact=1,
        urgency=1,
        services={service: ServiceStatus.MAJOR_OUTAGE},
        now=at(0),
    )
    incident = workflow.acknowledge(incident, actor=agent, now=at(5))
    workflow.post_update(
        incident,
        actor=agent,
        body="We are looking into failed card payments.",
        is_public=True,
        public_status="investigating",
        now=at(10),
    )
    workflow.post_update(
        incident,
        actor=agent,
        body="The payment gateway rejects our certificate.",
        is_public=True,
        public_status="identified",
        now=at(30),
    )
    incident = workflow.resolve(
        incident, actor=agent, code="fixed", notes="Certificate renewed", now=at(80)
    )
    for event in NotificationEvent.objects.filter(subject_kind="incident", subject_id=incident.pk):
        expand_event(event.pk)
    return incident


def test_the_draft_of_a_scripted_incident(scripted, agent):
    review = review_workflow.start_review(scripted, actor=agent, now=at(120))
    draft = review.draft
    assert draft.startswith(f"# {scripted.reference} Card payments fail\n")
    assert "Opened 2026-03-02 10:00 UTC from Admin by agent." in draft
    assert "Acknowledged 2026-03-02 10:05 UTC by agent." in draft
    assert "- Time to respond: 5 min" in draft
    assert "- Time to resolve: 1 h 20 min" in draft
    assert "- Response (15 min): met, 10 min to spare" in draft
    assert "- Resolution (1 h 00 min): breached by 20 min" in draft
    assert (
        "- 2026-03-02 10:10 UTC **investigating**: We are looking into failed card payments."
        in draft
    )
    assert "- 2026-03-02 10:30 UTC **identified**: The payment gateway rejects" in draft
    assert (
        "- Payments: Major outage, 2026-03-02 10:00 UTC – 2026-03-02 11:20 UTC (1 h 20 min)"
        in draft
    )
    assert "## Customers notified\n\n2\n" in draft
    assert "## Cost of downtime\n\nEUR 800.00\n" in draft
    assert "- 2026-03-02 11:20 UTC Resolved (agent): Certificate renewed" in draft


def test_only_a_resolved_major_or_p1_incident_gets_one_review(scripted, agent, service):
    minor = workflow.create_incident(actor=agent, title="Slow search", services=[service])
    minor = workflow.resolve(minor, actor=agent, code="fixed", notes="ok")
    with pytest.raises(workflow.WorkflowError, match="major or P1"):
        review_workflow.start_review(minor, actor=agent)
    open_p1 = workflow.create_incident(actor=agent, title="Down", impact=1, urgency=1)
    with pytest.raises(workflow.WorkflowError, match="Resolve"):
        review_workflow.start_review(open_p1, actor=agent)
    review_workflow.start_review(scripted, actor=agent)
    with pytest.raises(workflow.WorkflowError, match="already"):
        review_workflow.start_review(scripted, actor=agent)


def test_overdue_action_items_remind_their_owner_once_a_day(scripted, agent):
    owner = UserFactory(username="owner")
    review = review_workflow.start_review(scripted, actor=agent)
    late = review_workflow.add_action_item(
        review,
        actor=agent,
        title="Alert on certificate expiry",
        owner=owner,
        due_on=dt.date(2026, 3, 9),
    )
    review_workflow.add_action_item(
        review, actor=agent, title="Not yet due", owner=owner, due_on=dt.date(2026, 3, 20)
    )
    done = review_workflow.add_action_item(
        review, actor=agent, title="Done already", owner=owner, due_on=dt.date(2026, 3, 5)
    )
    review_workflow.set_action_item_state(done, actor=agent, state=ActionItemState.DONE)

    day = dt.date(2026, 3, 10)
    assert review_workflow.remind_overdue_action_items(today=day) == 1
    assert review_workflow.remind_overdue_action_items(today=day) == 0  # the same day: nothing
    assert review_workflow.remind_overdue_action_items(today=day + dt.timedelta(days=1)) == 1
    assert list(ActionItemReminder.objects.values_list("item_id", "day")) == [
        (late.pk, day),
        (late.pk, day + dt.timedelta(days=1)),
    ]
    events = NotificationEvent.objects.filter(kind=NotificationKind.ACTION_ITEM_OVERDUE)
    assert events.count() == 2
    rows = Notification.objects.filter(event__in=events)
    assert set(rows.values_list("user_id", flat=True)) == {owner.pk}
    assert "Alert on certificate expiry" in events.first().payload["subject"]


def test_action_items_need_a_title_owner_and_due_date(scripted, agent):
    review = review_workflow.start_review(scripted, actor=agent)
    with pytest.raises(workflow.WorkflowError) as refused:
        review_workflow.add_action_item(review, actor=agent, title=" ", owner=agent, due_on=None)
    assert refused.value.field == "title"
    with pytest.raises(workflow.WorkflowError) as refused:
        review_workflow.add_action_item(review, actor=agent, title="x", owner=agent, due_on=None)
    assert refused.value.field == "due_on"
    assert not review.action_items.exists()


def test_markdown_export_and_read_only_admin(scripted, agent, admin_client):
    review = review_workflow.start_review(scripted, actor=agent)
    review_workflow.edit_review(
        review,
        actor=agent,
        changes={"summary": "An expired certificate stopped card payments.", "went_well": "Fast"},
    )
    review_workflow.add_action_item(
        review,
        actor=agent,
        title="Alert on certificate expiry",
        owner=agent,
        due_on=timezone.localdate(),
    )
    response = admin_client.get(
        reverse("admin:incidents_postincidentreview_markdown", args=[review.pk])
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "## Summary\n\nAn expired certificate stopped card payments." in text
    assert "- [ ] Alert on certificate expiry (agent, due" in text
    page = admin_client.get(reverse("admin:incidents_postincidentreview_change", args=[review.pk]))
    assert page.status_code == 200
    assert b"Card payments fail" in page.content


def test_staff_write_the_review_in_the_admin_through_the_workflow(scripted, agent, admin_client):
    review = review_workflow.start_review(scripted, actor=agent)
    url = reverse("admin:incidents_postincidentreview_change", args=[review.pk])
    response = admin_client.post(
        url,
        {
            "summary": "  An expired certificate.  ",
            "impact": "",
            "contributing_factors": "",
            "went_well": "",
            "went_badly": "No expiry alert",
            "action_items-TOTAL_FORMS": "1",
            "action_items-INITIAL_FORMS": "0",
            "action_items-MIN_NUM_FORMS": "0",
            "action_items-MAX_NUM_FORMS": "1000",
            "action_items-0-title": "Alert on certificate expiry",
            "action_items-0-owner": str(agent.pk),
            "action_items-0-due_on": "2026-03-09",
            "action_items-0-state": "open",
            "action_items-0-problem": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    review.refresh_from_db()
    assert (review.summary, review.went_badly) == ("An expired certificate.", "No expiry alert")
    (item,) = review.action_items.all()
    assert (item.title, item.owner, item.due_on) == (
        "Alert on certificate expiry",
        agent,
        dt.date(2026, 3, 9),
    )


def test_a_viewer_sees_the_review_read_only(scripted, agent, client):
    review = review_workflow.start_review(scripted, actor=agent)
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_incident", "view_postincidentreview", "view_actionitem"]
        )
    )
    client.force_login(viewer)
    page = client.get(reverse("admin:incidents_postincidentreview_change", args=[review.pk]))
    assert page.status_code == 200
    assert b"Card payments fail" in page.content
    assert b'name="_save"' not in page.content

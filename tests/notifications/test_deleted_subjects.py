"""Deleting an incident or a maintenance window: what is still queued about it is never sent
(cancelled, with the reason), what was sent stays as the record, and no worker trips on it.
The outbox names its subject as (kind, id), without a foreign key, so no cascade reaches it."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents.notify import enqueue_incident_event, notify_staff
from notifications import delivery
from notifications.models import EventKind, Notification, NotificationEvent, NotificationStatus
from notifications.outbox import expand_event
from services import workflow
from services.models import MaintenanceWindow
from tests.factories import ServiceFactory, SubscriptionFactory, UserFactory
from tests.notifications.conftest import deliver_all, make_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    service = ServiceFactory(name="Payments")
    for _ in range(3):
        SubscriptionFactory(service=service)
    return service


def statuses(event):
    return sorted(Notification.objects.filter(event=event).values_list("status", flat=True))


def test_deleting_an_incident_cancels_what_is_queued_and_keeps_what_was_sent(
    service, smtp, dispatched, admin_client
):
    incident = make_incident(service, public_status="investigating")
    published = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    deliver_all(published)  # told the customers already: this stays
    resolved = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_RESOLVED)
    expand_event(resolved.pk)  # queued, not sent yet
    staff = notify_staff(
        kind=EventKind.SLA_BREACH,
        key=f"breach:{incident.pk}",
        subject="Breach",
        body="Resolution overdue",
        users=[UserFactory(email="agent@x.test")],
        incident=incident,
    )
    assert statuses(resolved) == ["pending"] * 3 and statuses(staff) == ["pending"]
    sent_before = len(smtp.messages)

    url = reverse("admin:incidents_incident_delete", args=[incident.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302

    for event in (resolved, staff):
        rows = Notification.objects.filter(event=event)
        assert {r.status for r in rows} == {NotificationStatus.CANCELLED}
        assert {r.last_error for r in rows} == {f"not sent: incident {incident.pk} was deleted"}
        event.refresh_from_db()
        assert event.cancelled_at is not None
    assert statuses(published) == ["sent"] * 3  # the record of what customers were told
    # A worker that still gets the delivery tasks sends nothing and does not fail.
    for event in (published, resolved, staff):
        assert delivery.deliver_event(event.pk) == 0
    assert delivery.sweep_outbox()["events"] == 0
    assert len(smtp.messages) == sent_before


def test_an_incident_deleted_before_its_event_was_expanded_writes_no_rows(
    service, smtp, dispatched
):
    incident = make_incident(service, public_status="investigating")
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    incident.delete()
    # The expansion task (dispatched on commit) and the sweep's re-dispatch find nothing to do.
    assert expand_event(event.pk) == 0
    NotificationEvent.objects.filter(pk=event.pk).update(expansion_lease_expires_at=None)
    assert delivery.sweep_outbox()["expansions"] == 0
    assert not Notification.objects.filter(event=event).exists()
    assert smtp.messages == []


def test_rows_a_worker_held_when_the_incident_was_deleted_are_not_sent(service, smtp, dispatched):
    """A worker claimed the rows, then the incident was deleted before it sent them; and rows
    of a dead worker's lease come back after the deletion: neither is sent."""
    incident = make_incident(service, public_status="investigating")
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    expand_event(event.pk)
    ids, lease = delivery.claim_batch(event.pk, batch_size=2)
    incident.delete()
    assert delivery.send_claimed(ids, lease) == 0
    assert statuses(event) == ["cancelled"] * 3
    assert smtp.messages == []

    # The same for rows a dead worker still held: they come back through the sweep.
    Notification.objects.filter(event=event).update(
        status=NotificationStatus.SENDING, lease_expires_at=timezone.now() - dt.timedelta(1)
    )
    delivery.sweep_outbox()
    assert delivery.deliver_event(event.pk) == 0
    assert statuses(event) == ["cancelled"] * 3
    assert smtp.messages == []


def test_deleting_a_maintenance_window_cancels_its_announcements(service, smtp, dispatched):
    start = timezone.now() + dt.timedelta(days=1)
    window = workflow.schedule_maintenance(
        title="Database upgrade",
        services=[service],
        scheduled_start=start,
        scheduled_end=start + dt.timedelta(hours=2),
    )
    event = NotificationEvent.objects.get(subject_kind="maintenance", subject_id=window.pk)
    expand_event(event.pk)
    assert statuses(event) == ["pending"] * 3

    MaintenanceWindow.objects.filter(pk=window.pk).delete()  # as the admin's bulk delete does

    rows = Notification.objects.filter(event=event)
    assert {(r.status, r.last_error) for r in rows} == {
        ("cancelled", f"not sent: maintenance {window.pk} was cancelled or deleted")
    }
    assert delivery.deliver_event(event.pk) == 0
    assert smtp.messages == []

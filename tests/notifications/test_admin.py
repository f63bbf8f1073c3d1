"""The outbox in the admin: lists, retry; and what incidents read and preview through it."""

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from incidents.notify import (
    enqueue_incident_event,
    events_being_expanded,
    notifications_for_incident,
    render_preview,
)
from notifications.delivery import retry_notifications
from notifications.models import EventKind, Notification, NotificationEvent, NotificationStatus
from notifications.outbox import expand_event
from tests.factories import ContactFactory, ServiceFactory, SubscriptionFactory
from tests.notifications.conftest import make_incident
from tests.pages import assert_no_injected_script

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("boss", "boss@desk.test", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def event(dispatched):
    service = ServiceFactory(name="Payments")
    for _ in range(3):
        SubscriptionFactory(service=service)
    incident = make_incident(service, public_status="investigating")
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    expand_event(event.pk)
    event.incident = incident  # the subject, for the tests below
    first = Notification.objects.filter(event=event).order_by("id").first()
    Notification.objects.filter(pk=first.pk).update(
        status=NotificationStatus.FAILED, attempts=6, last_error="SMTP 550: mailbox unavailable"
    )
    return event


def test_changelists_and_counts(staff_client, event):
    response = staff_client.get("/admin/notifications/notificationevent/")
    assert response.status_code == 200
    page = staff_client.get(f"/admin/notifications/notificationevent/{event.pk}/change/")
    assert "Failed: 1" in page.content.decode() and "Pending: 2" in page.content.decode()
    listing = staff_client.get("/admin/notifications/notification/?status__exact=failed")
    assert "SMTP 550: mailbox unavailable" in listing.content.decode()
    assert staff_client.get("/admin/notifications/notification/?q=customer").status_code == 200


def test_an_event_being_expanded_reads_expanding_not_nobody(staff_client, dispatched):
    service = ServiceFactory(name="Payments")
    for _ in range(5):
        SubscriptionFactory(service=service)
    incident = make_incident(service, public_status="investigating")
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)

    listing = staff_client.get("/admin/notifications/notificationevent/").content.decode()
    assert '<td class="field-recipients">expanding</td>' in listing
    page = staff_client.get(f"/admin/notifications/notificationevent/{event.pk}/change/")
    assert "expanding" in page.content.decode()

    expand_event(event.pk, chunk_size=2, max_chunks=1)  # a worker half-way through
    listing = staff_client.get("/admin/notifications/notificationevent/").content.decode()
    assert '<td class="field-recipients">expanding (2 so far)</td>' in listing

    expand_event(event.pk)
    listing = staff_client.get("/admin/notifications/notificationevent/").content.decode()
    assert '<td class="field-recipients">5</td>' in listing


def test_retry_action(staff_client, event, django_capture_on_commit_callbacks, dispatched):
    failed = Notification.objects.get(status=NotificationStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/notifications/notification/",
            {"action": "retry", "_selected_action": [failed.pk]},
            follow=True,
        )
    assert "1 notification will be sent again." in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (NotificationStatus.PENDING, 0)
    assert dispatched[-1] == (event.pk, 1)


@pytest.fixture
def reader_client(client):
    user = User.objects.create_user("reader", "reader@desk.test", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Read only"))
    client.force_login(user)
    return client


def test_retry_needs_the_change_permission(reader_client, event, dispatched):
    """A read-only user is offered no retry, and posting the action anyway re-sends nothing."""
    failed = Notification.objects.get(status=NotificationStatus.FAILED)
    dispatched.clear()
    listing = reader_client.get("/admin/notifications/notification/")
    assert listing.status_code == 200
    assert 'value="retry"' not in listing.content.decode()

    response = reader_client.post(
        "/admin/notifications/notification/",
        {"action": "retry", "_selected_action": [failed.pk]},
        follow=True,
    )
    assert response.status_code in (200, 403)
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (NotificationStatus.FAILED, 6)
    assert dispatched == []


def test_retry_function_refuses_an_actor_without_permission(event, dispatched):
    reader = User.objects.create_user("reader2", is_staff=True)
    reader.groups.add(Group.objects.get(name="Read only"))
    with pytest.raises(PermissionDenied):
        retry_notifications(Notification.objects.all(), actor=reader)
    assert Notification.objects.filter(status=NotificationStatus.FAILED).count() == 1


def test_preview_of_hostile_text_runs_no_script(reader_client, event):
    """The preview (on the incident's page; the outbox admin has none of its own): markup in
    the title, a service name or the body is shown as text; the HTML part is in a sandboxed
    iframe."""
    incident = make_incident(
        ServiceFactory(name='<script>alert("xss-service")</script>'),
        title="<img src=x onerror=alert('xss-title')>",
        public_status="investigating",
    )
    response = reader_client.get(
        reverse("admin:incidents_incident_preview", args=[incident.pk]),
        {
            "public_status": "monitoring",
            "language": "en",
            "body": '</pre>"><script>alert("xss-body")</script>',
        },
    )
    assert response.status_code == 200
    page = assert_no_injected_script(response.content.decode(), "xss-")
    [frame] = page.find("iframe")
    assert frame["sandbox"] == "" and frame["srcdoc"] == response.context["preview"]["html"]
    assert page.preformatted == [response.context["preview"]["text"]]


def test_preview_renders_without_writing(staff_client, event):
    incident = event.incident
    before = (NotificationEvent.objects.count(), Notification.objects.count())
    response = staff_client.post(
        reverse("admin:incidents_incident_preview", args=[incident.pk]),
        {
            "public_status": "monitoring",
            "language": "ro",
            "body": "Am aplicat o remediere.",
        },
    )
    assert response.status_code == 200
    content = response.content.decode()
    assert "Am aplicat o remediere." in content and "Sub monitorizare" in content
    assert (NotificationEvent.objects.count(), Notification.objects.count()) == before


def test_render_preview_matches_what_is_sent(event):
    preview = render_preview(event.incident, "Fixed the card gateway.", "resolved", "en")
    assert preview["kind"] == EventKind.INCIDENT_RESOLVED
    assert preview["subject"] == f"[{event.incident.reference}] Resolved: Payments are slow"
    assert "Fixed the card gateway." in preview["text"]
    assert "Fixed the card gateway." in preview["html"]
    assert "Incident resolved" in preview["text"]


def test_notifications_for_incident(event, django_assert_num_queries):
    ContactFactory()  # not notified
    with django_assert_num_queries(1):
        rows = [
            (n.channel, n.address, n.status, n.event.kind)
            for n in notifications_for_incident(event.incident)
        ]
    assert len(rows) == 3
    assert {r[2] for r in rows} == {"pending", "failed"}


def test_events_being_expanded(dispatched, django_assert_num_queries):
    service = ServiceFactory()
    SubscriptionFactory(service=service)
    incident = make_incident(service, public_status="investigating")
    first = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    second = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_RESOLVED)
    with django_assert_num_queries(1):
        assert list(events_being_expanded(incident)) == [first, second]
    expand_event(first.pk)
    assert list(events_being_expanded(incident)) == [second]
    assert len(notifications_for_incident(incident)) == 1

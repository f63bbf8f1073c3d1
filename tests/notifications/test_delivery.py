"""Claim, send, mark: retries, failures, the SSRF guard, Message-IDs, the sweep."""

import datetime as dt
import email
import email.policy

import pytest
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from incidents.notify import enqueue_incident_event
from notifications import delivery
from notifications.channels import PermanentError, check_address
from notifications.models import (
    EventKind,
    Installation,
    Notification,
    NotificationEvent,
    NotificationStatus,
)
from notifications.outbox import expand_event
from services.models import Channel
from tests.factories import ContactFactory, ServiceFactory, SubscriptionFactory, UserFactory
from tests.notifications.conftest import deliver_all, make_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    return ServiceFactory(name="Payments")


def hook_event(service, url):
    SubscriptionFactory(service=service, channel=Channel.WEBHOOK, webhook_url=url)
    incident = make_incident(service, public_status="investigating")
    return enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)


def test_a_client_error_is_retried_a_few_times_then_failed(service, receiver, settings, dispatched):
    settings.NOTIFY_CLIENT_ERROR_ATTEMPTS = 3
    settings.NOTIFY_BACKOFF_BASE = 0  # retry at once, so one delivery run shows every attempt
    receiver.status = 400
    event = hook_event(service, receiver.url())
    deliver_all(event)

    row = Notification.objects.get(event=event)
    assert row.status == NotificationStatus.FAILED
    assert row.attempts == 3
    assert "HTTP 400" in row.last_error
    assert len(receiver.requests) == 3
    # Every attempt carries the same webhook-id, so a receiver can drop a duplicate.
    assert {headers["webhook-id"] for _p, headers, _b in receiver.requests} == {row.webhook_id}


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_transient_statuses_are_retried_until_the_retry_window_ends(
    status, service, receiver, settings, dispatched
):
    receiver.status = status
    event = hook_event(service, receiver.url())
    deliver_all(event)
    row = Notification.objects.get(event=event)
    assert (row.status, row.attempts, len(receiver.requests)) == ("pending", 1, 1)
    # Retried (not failed) until NOTIFY_RETRY_HOURS after the row was queued.
    Notification.objects.filter(pk=row.pk).update(
        next_attempt_at=timezone.now(),
        created_at=timezone.now() - dt.timedelta(hours=settings.NOTIFY_RETRY_HOURS),
    )
    deliver_all(event)
    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED and f"HTTP {status}" in row.last_error


def test_a_transient_failure_backs_off(service, receiver, settings, dispatched):
    settings.NOTIFY_BACKOFF_BASE = 30.0
    receiver.status = 503
    event = hook_event(service, receiver.url())
    before = timezone.now()
    deliver_all(event)

    row = Notification.objects.get(event=event)
    assert row.status == NotificationStatus.PENDING and row.attempts == 1
    assert "HTTP 503" in row.last_error
    assert before + dt.timedelta(seconds=15) <= row.next_attempt_at
    assert row.next_attempt_at <= timezone.now() + dt.timedelta(seconds=30)
    assert len(receiver.requests) == 1  # not due yet: the same run does not retry it


def test_backoff_doubles_with_jitter(settings):
    settings.NOTIFY_BACKOFF_BASE = 10.0
    for attempts, full in [(1, 10), (2, 20), (3, 40), (6, 320)]:
        delays = [delivery.backoff_seconds(attempts) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1


def test_a_4xx_fails_at_once(service, receiver, dispatched):
    receiver.status = 410
    event = hook_event(service, receiver.url())
    deliver_all(event)
    row = Notification.objects.get(event=event)
    assert (row.status, row.attempts) == (NotificationStatus.FAILED, 1)
    assert "HTTP 410" in row.last_error


def test_loopback_is_refused_unless_allowed(service, receiver, settings, dispatched):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    event = hook_event(service, receiver.url())
    deliver_all(event)
    row = Notification.objects.get(event=event)
    assert row.status == NotificationStatus.FAILED and row.attempts == 1
    assert "127.0.0.1 is not a public address" in row.last_error
    assert receiver.requests == []


def test_metadata_address_is_refused_even_when_allowed(service, settings, dispatched):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["169.254.0.0/16", "127.0.0.0/8"]
    event = hook_event(service, "http://169.254.169.254/latest/meta-data/")
    deliver_all(event)
    row = Notification.objects.get(event=event)
    assert row.status == NotificationStatus.FAILED
    assert "metadata" in row.last_error


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.5",
        "::1",
        "::ffff:127.0.0.1",
        "fe80::1",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
    ],
)
def test_non_public_addresses_are_refused(address, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(PermanentError):
        check_address(address)


def test_public_addresses_pass(settings):
    check_address("93.184.216.34")
    check_address("2606:2800:220:1:248:1893:25c8:1946")


def test_message_ids_are_unique_and_stable_across_a_resend(smtp, dispatched):
    service = ServiceFactory()
    contacts = [ContactFactory() for _ in range(5)]
    for contact in contacts:
        SubscriptionFactory(service=service, contact=contact)
    incident = make_incident(service, public_status="investigating")
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    deliver_all(event)
    first = {rcpts[0]: message["Message-ID"] for rcpts, message in smtp.messages}
    assert len(set(first.values())) == 5
    # Unique to this install (its id is stored in the database) and on the site's domain.
    install = Installation.objects.get().install_id
    assert all(mid.endswith(f".{install}@127.0.0.1>") for mid in first.values())

    # A resend (say the worker died before marking) carries the same Message-ID.
    Notification.objects.filter(event=event).update(status=NotificationStatus.PENDING)
    smtp.messages.clear()
    deliver_all(event)
    second = {rcpts[0]: message["Message-ID"] for rcpts, message in smtp.messages}
    assert second == first


def test_prepared_email_equals_the_fully_built_one(smtp, dispatched, monkeypatch):
    """Big fan-outs send a message prepared once per event and language with the recipient's
    parts filled in; what arrives must be what the full build would have sent."""
    from django.core import signing

    from notifications.channels import EmailChannel

    # Unsubscribe links are dated to the second: both builds must be made in the same one.
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: "1xYnaW")

    service = ServiceFactory()
    contacts = [ContactFactory(language=lang) for lang in ("en", "ro", "en")]
    for contact in contacts:
        SubscriptionFactory(service=service, contact=contact)
    incident = make_incident(service, public_status="investigating")
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    deliver_all(event)
    arrived = {rcpts[0]: message for rcpts, message in smtp.messages}
    assert len(arrived) == 3
    from django.core.mail import get_connection

    channel = EmailChannel()
    smtp_channel = EmailChannel(get_connection())
    for row in Notification.objects.filter(event=event).select_related("event"):
        assert smtp_channel._prepared(row) is not None  # these went the prepared way
        got = arrived[row.address]
        built = email.message_from_bytes(
            channel.build_message(row).message().as_bytes(), policy=email.policy.default
        )
        for header in ("Subject", "To", "Message-ID", "List-Unsubscribe", "Auto-Submitted"):
            # (a long header may be folded in one and not the other: compare the values)
            assert str(got[header]).strip() == str(built[header]).strip(), header
        assert got["Message-ID"] == row.message_id
        got_parts = [p.get_content() for p in got.walk() if p.get_content_maintype() == "text"]
        built_parts = [p.get_content() for p in built.walk() if p.get_content_maintype() == "text"]

        def same(parts):  # SMTP carries CRLF line ends; the built message has LF
            return [part.replace("\r\n", "\n").strip() for part in parts]

        assert same(got_parts) == same(built_parts)
        assert "PLACEHOLDER" not in got.as_string()


def test_one_smtp_connection_per_batch(smtp, dispatched, settings, monkeypatch):
    from django.core.mail.backends.smtp import EmailBackend

    settings.NOTIFY_BATCH_SIZE = 50
    opened = []
    real_open = EmailBackend.open

    def counting_open(self):
        created = real_open(self)
        if created:
            opened.append(self)
        return created

    monkeypatch.setattr(EmailBackend, "open", counting_open)
    service = ServiceFactory()
    for _ in range(120):
        SubscriptionFactory(service=service)
    event = enqueue_incident_event(incident=make_incident(service), kind=EventKind.INCIDENT_UPDATED)
    assert deliver_all(event) == 120
    assert len(smtp.messages) == 120
    assert len(opened) == 3  # batches of 50, 50, 20


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even an ``except Exception``."""


def test_a_killed_worker_leaves_only_the_message_in_flight_unmarked(smtp, dispatched, monkeypatch):
    from notifications.channels import EmailChannel

    service = ServiceFactory()
    for _ in range(30):
        SubscriptionFactory(service=service)
    event = enqueue_incident_event(incident=make_incident(service), kind=EventKind.INCIDENT_UPDATED)
    expand_event(event.pk)
    real_send = EmailChannel.send
    calls = []

    def send_then_die(self, notification):
        real_send(self, notification)
        calls.append(notification.pk)
        if len(calls) == 12:  # the 12th message is out; the worker dies before marking it
            raise WorkerKilled

    monkeypatch.setattr(EmailChannel, "send", send_then_die)
    ids, lease = delivery.claim_batch(event.pk)
    with pytest.raises(WorkerKilled):
        delivery.send_claimed(ids, lease)
    assert len(smtp.messages) == 12
    rows = Notification.objects.filter(event=event)
    assert set(rows.filter(status="sent").values_list("pk", flat=True)) == set(calls[:11])
    # The one in flight, and the 18 never tried, wait for the lease to run out.
    assert rows.filter(status="sending").count() == 19

    monkeypatch.setattr(EmailChannel, "send", real_send)
    Notification.objects.filter(event=event, status="sending").update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    delivery.sweep_outbox()
    deliver_all(event)
    ids = [message["Message-ID"] for _r, message in smtp.messages]
    assert len(set(ids)) == 30 and len(ids) == 31  # one resend: the message in flight


def test_smtp_down_waits_for_the_relay_without_using_attempts(smtp, settings, dispatched):
    SubscriptionFactory(service=(service := ServiceFactory()))
    settings.EMAIL_PORT = 1  # nothing listens there
    event = enqueue_incident_event(incident=make_incident(service), kind=EventKind.INCIDENT_UPDATED)
    deliver_all(event)
    row = Notification.objects.get(event=event)
    assert row.status == NotificationStatus.PENDING and row.attempts == 0
    assert row.waiting_for == "email" and "SMTP" in row.last_error


def test_sweep_reclaims_expired_leases_and_dispatches(service, dispatched):
    SubscriptionFactory(service=service)
    SubscriptionFactory(service=service)
    event = enqueue_incident_event(incident=make_incident(service), kind=EventKind.INCIDENT_UPDATED)
    expand_event(event.pk)
    dispatched.clear()
    ids, lease = delivery.claim_batch(event.pk)
    assert len(ids) == 2
    # A second claim finds nothing: the rows are leased.
    assert delivery.claim_batch(event.pk)[0] == []
    assert delivery.sweep_outbox() == {"reclaimed": 0, "expansions": 0, "events": 0}

    # The worker died: the lease runs out.
    Notification.objects.filter(pk__in=ids).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert delivery.sweep_outbox() == {"reclaimed": 2, "expansions": 0, "events": 1}
    assert dispatched == [(event.pk, 1)]
    assert set(Notification.objects.values_list("status", flat=True)) == {"pending"}
    # Marks from the dead worker's lease change nothing any more.
    delivery.mark_sent(ids, lease)
    assert not Notification.objects.filter(status="sent").exists()
    # The rows are still pending and due, but the task just dispatched may still be queued:
    # the next sweep leaves them to it, until that dispatch is overdue (a lease old).
    assert delivery.sweep_outbox() == {"reclaimed": 0, "expansions": 0, "events": 0}
    later = timezone.now() + dt.timedelta(seconds=settings.NOTIFY_LEASE_SECONDS + 1)
    assert delivery.sweep_outbox(now=later) == {"reclaimed": 0, "expansions": 0, "events": 1}
    assert dispatched == [(event.pk, 1), (event.pk, 1)]


def test_sweeps_leave_a_queued_delivery_to_its_task(service, dispatched):
    """Each outbox sweep dispatched every event with due rows, those whose task was still
    queued behind a backlog too: at a 1 s interval bench E1 found 5,315 of 5,668 deliveries
    with nothing left to send. A dispatched event is left to its task until that dispatch is a
    lease old; rows that come due after it (a retry's backoff ended) go at once."""
    for _ in range(3):
        SubscriptionFactory(service=service)
    event = enqueue_incident_event(incident=make_incident(service), kind=EventKind.INCIDENT_UPDATED)
    expand_event(event.pk)
    assert dispatched == [(event.pk, 1)]

    for _ in range(5):
        assert delivery.sweep_outbox()["events"] == 0
    assert dispatched == [(event.pk, 1)]

    mark = NotificationEvent.objects.get(pk=event.pk).delivery_dispatched_at
    retry = Notification.objects.filter(event=event).order_by("pk").first()
    Notification.objects.filter(pk=retry.pk).update(next_attempt_at=mark + dt.timedelta(seconds=5))
    assert delivery.sweep_outbox(now=mark + dt.timedelta(seconds=6))["events"] == 1
    assert dispatched == [(event.pk, 1), (event.pk, 1)]
    # That sweep's dispatch is the mark now: the next sweep leaves it alone again.
    assert delivery.sweep_outbox(now=mark + dt.timedelta(seconds=7))["events"] == 0


def test_a_dead_broker_never_breaks_the_caller(monkeypatch, caplog):
    from notifications import tasks

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.deliver_event, "delay", refuse)
    assert delivery.dispatch_event(42, copies=3) is False
    assert "the outbox sweep will" in caplog.text


def test_broker_down_at_commit_leaves_the_expansion_to_the_next_sweep(
    service, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from notifications import tasks

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.expand_event, "delay", refuse)
    SubscriptionFactory(service=service)
    with django_capture_on_commit_callbacks(execute=True):
        event = enqueue_incident_event(
            incident=make_incident(service), kind=EventKind.INCIDENT_UPDATED
        )
    assert "could not publish expansion" in caplog.text
    event.refresh_from_db()
    # Nobody holds it: the next sweep dispatches it without waiting for a lease to run out.
    assert event.expanded_at is None and event.expansion_lease_expires_at is None
    published = []
    monkeypatch.setattr(tasks.expand_event, "delay", published.append)
    monkeypatch.setattr(tasks.deliver_event, "delay", lambda event_id: None)
    assert delivery.sweep_outbox()["expansions"] == 1
    assert published == [event.pk]
    assert delivery.sweep_outbox()["expansions"] == 0  # leased to the expander just dispatched


def test_retry_action_resets_failed_rows(service, dispatched, django_capture_on_commit_callbacks):
    SubscriptionFactory(service=service)
    event = enqueue_incident_event(incident=make_incident(service), kind=EventKind.INCIDENT_UPDATED)
    expand_event(event.pk)
    dispatched.clear()
    Notification.objects.update(status=NotificationStatus.FAILED, attempts=6, last_error="boom")
    with django_capture_on_commit_callbacks(execute=True):
        manager = UserFactory(username="retrier", is_superuser=True)
        assert delivery.retry_notifications(Notification.objects.all(), actor=manager) == 1
    row = Notification.objects.get()
    assert (row.status, row.attempts) == (NotificationStatus.PENDING, 0)
    assert dispatched == [(event.pk, 1)]

"""Delivery rules of issue 17 and issue 15 at unit level, against real PostgreSQL, a real SMTP
server and real HTTP receivers (and raw sockets playing a stalled relay or a trickling
receiver): total deadlines, channel outages, status classes, one mailbox once, one secret per
endpoint, send-time re-checks, Message-IDs, subjects, the SSRF guard at input."""

import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks import Webhook

from incidents.notify import enqueue_incident_event, notify_staff
from notifications import delivery
from notifications.channels import PermanentError, WebhookChannel, check_address
from notifications.models import (
    ChannelCircuit,
    EventKind,
    Installation,
    Notification,
    NotificationStatus,
    install_id,
)
from services.models import Channel, Contact, Subscription
from tests.factories import (
    ContactFactory,
    OrganizationFactory,
    ServiceFactory,
    SubscriptionFactory,
)
from tests.live import ROOT, free_port
from tests.notifications.conftest import _use_smtp, deliver_all, make_incident

pytestmark = pytest.mark.django_db


def publish(service, **kwargs):
    incident = make_incident(service, public_status="investigating", **kwargs)
    return enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)


@contextlib.contextmanager
def raw_server(handle):
    """A TCP server on loopback running ``handle(conn)`` per connection in a thread."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    conns = []

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _addr = listener.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in conns:
            conn.close()
        listener.close()


def never_greets(conn, stop):
    stop.wait(30)


def trickles(conn, stop):
    """An HTTP receiver that reads the request, then answers one byte every 0.2 s."""
    conn.recv(65536)
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
        if stop.wait(0.2):
            return
        try:
            conn.send(bytes([byte]))
        except OSError:
            return


# --- a total deadline per send ----------------------------------------------------------------


def test_a_trickling_receiver_is_cut_at_the_total_deadline(settings, dispatched):
    """Issue 15: one byte every 0.5 s held a worker 18 s past a 2 s timeout."""
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.NOTIFY_WEBHOOK_TIMEOUT = 1.0
    service = ServiceFactory()
    with raw_server(trickles) as port:
        SubscriptionFactory(
            service=service, channel=Channel.WEBHOOK, webhook_url=f"http://127.0.0.1:{port}/h"
        )
        event = publish(service)
        started = time.monotonic()
        deliver_all(event)
        took = time.monotonic() - started
    assert took < 6, took  # the whole answer would take 28 s; the deadline is 1 s
    row = Notification.objects.get(event=event)
    assert row.status == NotificationStatus.PENDING and row.attempts == 1
    assert "within 1 s" in row.last_error


def test_a_relay_that_never_greets_costs_one_deadline_and_the_webhook_goes(
    settings, receiver, dispatched
):
    """Issue 17: a stalled relay held the workers; a webhook in the same batch waited and then
    arrived twice. One send's deadline, then the relay's rows wait (no attempt used)."""
    service = ServiceFactory()
    for _ in range(5):
        SubscriptionFactory(service=service)
    SubscriptionFactory(service=service, channel=Channel.WEBHOOK, webhook_url=receiver.url())
    with raw_server(never_greets) as port:
        _use_smtp(settings, port)
        settings.EMAIL_TIMEOUT = 1
        event = publish(service)
        started = time.monotonic()
        deliver_all(event)
        took = time.monotonic() - started
    assert took < 3, took
    assert len(receiver.requests) == 1
    emails = Notification.objects.filter(event=event, channel=Channel.EMAIL)
    assert {(r.status, r.attempts, r.waiting_for) for r in emails} == {("pending", 0, "email")}
    assert "no answer within 1 s" in emails[0].last_error
    assert ChannelCircuit.objects.get(key="email").retry_at > timezone.now()


def test_email_url_timeout_sets_the_email_timeout():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "itsm.settings",
        "EMAIL_URL": "smtp://relay.example.com:25?timeout=3",
    }
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings;"
         "print(settings.EMAIL_TIMEOUT, getattr(settings, 'OPTIONS', None))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.split()[:2] == ["3.0", "None"]


def test_the_soft_time_limit_is_not_swallowed(service_with_hook, monkeypatch, dispatched):
    def out_of_time(self, notification):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(WebhookChannel, "send", out_of_time)
    with pytest.raises(SoftTimeLimitExceeded):
        deliver_all(service_with_hook)
    row = Notification.objects.get(event=service_with_hook)
    assert (row.status, row.attempts, row.lease_expires_at) == ("pending", 0, None)


@pytest.fixture
def service_with_hook(receiver):
    service = ServiceFactory()
    SubscriptionFactory(service=service, channel=Channel.WEBHOOK, webhook_url=receiver.url())
    return publish(service)


# --- a long outage is not a loss --------------------------------------------------------------


def test_a_relay_outage_waits_without_attempts_and_one_probe_reopens_it(settings, dispatched):
    service = ServiceFactory()
    for _ in range(4):
        SubscriptionFactory(service=service)
    port = free_port()
    _use_smtp(settings, port)  # nothing listens yet: connection refused
    event = publish(service)
    for _ in range(3):  # three sweeps during the outage
        deliver_all(event)
        Notification.objects.filter(event=event).update(next_attempt_at=timezone.now())
        ChannelCircuit.objects.update(retry_at=timezone.now())
    rows = Notification.objects.filter(event=event)
    assert {(r.status, r.attempts) for r in rows} == {("pending", 0)}
    assert ChannelCircuit.objects.get().failures == 3  # one probe each time, not four sends
    with smtp_server_on(port) as sink:
        deliver_all(event)
        assert len(sink.messages) == 4
    assert not ChannelCircuit.objects.exists()
    assert set(rows.values_list("status", flat=True)) == {"sent"}


@contextlib.contextmanager
def smtp_server_on(port):
    from aiosmtpd.controller import Controller

    from tests.live import SmtpSink

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def test_the_backoff_is_capped_and_the_retry_window_lasts_a_day(settings):
    settings.NOTIFY_BACKOFF_BASE = 30.0
    settings.NOTIFY_BACKOFF_MAX = 3600.0
    assert all(delivery.backoff_seconds(200) <= 3600 for _ in range(20))
    assert settings.NOTIFY_RETRY_HOURS >= 24


def test_404_is_permanent(service, receiver, dispatched):
    receiver.status = 404
    SubscriptionFactory(service=service, channel=Channel.WEBHOOK, webhook_url=receiver.url())
    event = publish(service)
    deliver_all(event)
    row = Notification.objects.get(event=event)
    assert (row.status, row.attempts) == ("failed", 1)


@pytest.fixture
def service():
    return ServiceFactory()


def test_an_out_of_range_port_is_permanent(service, settings, dispatched):
    """Issue 15: port 99999 was retried as transient."""
    Subscription.objects.bulk_create(
        [
            Subscription(
                service=service,
                contact=ContactFactory(),
                channel=Channel.WEBHOOK,
                webhook_url="http://203.0.113.7:99999/h",
                webhook_secret="whsec_" + "A" * 32,
            )
        ]
    )
    event = publish(service)
    deliver_all(event)
    row = Notification.objects.get(event=event)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "99999" in row.last_error or "range" in row.last_error


# --- the SSRF guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "fec0::1",  # site-local
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_addresses_embedding_a_private_one_are_refused(address, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(PermanentError):
        check_address(address)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/hook",
        "http://127.0.0.1/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[2002:7f00:1::]/hook",
        "http://[fec0::1]/hook",
        "http://93.184.216.34:99999/hook",
    ],
)
def test_the_subscription_form_refuses_what_could_never_be_sent(url, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    subscription = Subscription(
        service=ServiceFactory(), contact=ContactFactory(), channel="webhook", webhook_url=url
    )
    with pytest.raises(ValidationError) as caught:
        subscription.full_clean()
    assert list(caught.value.message_dict) == ["webhook_url"]


def test_the_subscription_form_honours_the_allowed_networks(settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    Subscription(
        service=ServiceFactory(),
        contact=ContactFactory(),
        channel="webhook",
        webhook_url="http://127.0.0.1:8080/hook",
    ).full_clean()
    Subscription(
        service=ServiceFactory(),
        contact=ContactFactory(),
        channel="webhook",
        webhook_url="https://93.184.216.34/hook",
    ).full_clean()


# --- the right mailbox, once, with the right key ----------------------------------------------


def test_one_message_per_normalised_address(service, smtp, dispatched):
    first, second = OrganizationFactory(), OrganizationFactory()
    Contact.objects.create(organization=first, name="A", email="Ops@Customer.example")
    Contact.objects.create(organization=second, name="B", email="ops@customer.example")
    ContactFactory(organization=first, email="OPS@customer.EXAMPLE")  # same org, other case
    for org in (first, second):
        SubscriptionFactory(service=service, contact=None, organization=org)
    deliver_all(publish(service))
    assert sorted(r[0].lower() for r, _m in smtp.messages) == ["ops@customer.example"]


def test_one_secret_per_endpoint(receiver, dispatched):
    """A URL subscribed for two services is signed with one secret, whatever the incident."""
    payments, shop = ServiceFactory(), ServiceFactory()
    owner = ContactFactory()
    hooks = [
        SubscriptionFactory(
            service=s, contact=owner, channel=Channel.WEBHOOK, webhook_url=receiver.url()
        )
        for s in (payments, shop)
    ]
    assert hooks[0].webhook_secret == hooks[1].webhook_secret
    deliver_all(publish(payments, title="one"))
    deliver_all(publish(shop, title="two"))
    assert len(receiver.requests) == 2
    for _path, headers, body in receiver.requests:
        Webhook(hooks[0].webhook_secret).verify(body, headers)


def test_the_migration_gives_each_endpoint_its_oldest_secret(receiver):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("services.migrations.0006_webhook_endpoint_secret")
    a, b = ServiceFactory(), ServiceFactory()
    rows = Subscription.objects.bulk_create(
        Subscription(
            service=service,
            contact=ContactFactory(),
            channel=Channel.WEBHOOK,
            webhook_url=receiver.url(),
            webhook_secret=secret,
        )
        for service, secret in ((a, "whsec_" + "A" * 32), (b, "whsec_" + "B" * 32))
    )
    migration.share_secrets(apps, None)
    secrets = set(Subscription.objects.values_list("webhook_secret", flat=True))
    assert secrets == {"whsec_" + "A" * 32} and rows[0].pk < rows[1].pk


def test_a_deactivated_organisation_gets_nothing_queued_before(service, smtp, dispatched):
    org = OrganizationFactory()
    ContactFactory(organization=org)
    SubscriptionFactory(service=service, contact=None, organization=org)
    event = publish(service)
    from notifications.outbox import expand_event

    expand_event(event.pk)
    org.is_active = False
    org.save()
    deliver_all(event)
    assert smtp.messages == []
    assert Notification.objects.get(event=event).status == NotificationStatus.CANCELLED


def test_a_contact_whose_only_subscription_is_deactivated_gets_nothing(service, smtp, dispatched):
    from notifications.outbox import expand_event

    leaving, staying = ContactFactory(), ContactFactory()
    gone = SubscriptionFactory(service=service, contact=leaving)
    SubscriptionFactory(service=service, contact=staying)
    other = ServiceFactory()
    SubscriptionFactory(service=other, contact=staying)
    event = publish(service)
    expand_event(event.pk)
    gone.is_active = False
    gone.save()
    deliver_all(event)
    assert [r[0] for r, _m in smtp.messages] == [staying.email]
    assert Notification.objects.get(event=event, contact=leaving).status == "cancelled"


def test_message_ids_change_with_the_install_and_carry_the_site_domain(
    service, smtp, settings, dispatched
):
    settings.SITE_URL = "https://status.example.org"
    SubscriptionFactory(service=service, contact=ContactFactory(language="ro"))
    event = publish(service)
    deliver_all(event)
    ((_r, message),) = smtp.messages
    install = Installation.objects.get().install_id
    assert message["Message-ID"].endswith(f".{install}@status.example.org>")
    assert message["Content-Language"] == "ro"
    # A rebuilt database (another install id) does not reuse the ids.
    row = Notification.objects.get(event=event)
    Installation.objects.update(install_id="another")
    assert row.message_id != message["Message-ID"]


def test_webhook_ids_are_unique_per_install_and_stable_across_retries(
    service_with_hook, receiver, dispatched
):
    """A second install, or a rebuilt database, numbers its events and rows from 1 again: a
    receiver deduping on ``webhook-id`` must not take its events for ones it already has."""
    event = service_with_hook
    deliver_all(event)
    row = Notification.objects.get(event=event)
    install = install_id()
    sent_ids = [headers["webhook-id"] for _p, headers, _b in receiver.requests]
    assert sent_ids == [row.webhook_id] and install in row.webhook_id

    def send_again():
        Notification.objects.filter(pk=row.pk).update(status="pending", sent_at=None)
        delivery.deliver_event(event.pk)
        return receiver.requests[-1][1]["webhook-id"]

    # A retry of the same notification keeps its id (the receiver drops the duplicate) ...
    assert send_again() == sent_ids[0]
    # ... while the same row numbers on another install (a rebuilt database) give another id.
    Installation.objects.update(install_id="rebuilt0install1")
    assert send_again() not in sent_ids
    assert receiver.requests[-1][1]["webhook-id"] == row.webhook_id


def test_subjects_are_not_html_escaped_and_staff_subjects_name_the_reference_once(
    service, smtp, dispatched
):
    SubscriptionFactory(service=service)
    incident = make_incident(service, title="Billing & payments <down>", public_status="identified")
    deliver_all(enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED))
    event = notify_staff(
        kind=EventKind.SLA_BREACH,
        key="breach-1",
        subject=f"{incident.reference} breached its response target",
        body="Tom & Jerry",
        emails=["desk@example.com"],
        incident=incident,
    )
    deliver_all(event)
    subjects = [str(m["Subject"]) for _r, m in smtp.messages]
    assert subjects[0].endswith("Billing & payments <down>")
    assert subjects[1] == f"{incident.reference} breached its response target"


def test_the_lease_is_extended_before_a_send_that_would_outlive_it(
    service, receiver, settings, dispatched
):
    """Issue 17: a batch that outlived its lease was sent twice. Each send starts only under a
    lease that outlasts it; the sweep never takes such a row back."""
    settings.NOTIFY_LEASE_SECONDS = 1
    settings.NOTIFY_WEBHOOK_TIMEOUT = 0.5
    for n in range(4):
        SubscriptionFactory(
            service=service, channel=Channel.WEBHOOK, webhook_url=receiver.url(f"/h{n}")
        )
    event = publish(service)
    from notifications.outbox import expand_event

    expand_event(event.pk)
    ids, lease = delivery.claim_batch(event.pk)
    original = WebhookChannel.send
    reclaimed = []

    def slow_send(self, notification):
        time.sleep(0.6)  # the batch takes 2.4 s under a 1 s lease
        reclaimed.append(delivery.reclaim_expired_leases())  # a sweep runs meanwhile
        return original(self, notification)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WebhookChannel, "send", slow_send)
        assert delivery.send_claimed(ids, lease) == 4
    assert reclaimed == [0, 0, 0, 0]
    assert sorted(p for p, _h, _b in receiver.requests) == ["/h0", "/h1", "/h2", "/h3"]
    assert delivery.claim_batch(event.pk)[0] == []


def test_a_row_taken_back_by_the_sweep_is_not_sent(service, receiver, dispatched):
    SubscriptionFactory(service=service, channel=Channel.WEBHOOK, webhook_url=receiver.url())
    event = publish(service)
    from notifications.outbox import expand_event

    expand_event(event.pk)
    ids, lease = delivery.claim_batch(event.pk)
    Notification.objects.filter(pk__in=ids).update(lease_expires_at=timezone.now())
    delivery.reclaim_expired_leases(timezone.now() + dt.timedelta(seconds=1))
    new_ids, _new_lease = delivery.claim_batch(event.pk)  # another worker has it now
    assert new_ids == ids
    delivery.send_claimed(ids, lease)
    assert receiver.requests == []


# --- a message whose send kills the worker ----------------------------------------------------


def test_a_message_whose_send_kills_the_worker_fails_after_three_deaths(
    receiver, settings, dispatched, admin_client
):
    """A send that kills its worker (segfault, OOM) leaves the row 'sending' under a lease
    that runs out; the sweep gives it back. Played at the SQL level with the real claim: the
    worker sends the rows before the poison in order, then dies (its lease is made to run out)
    whenever it holds the poison. Before, the poison came back forever, and with it the rows
    that shared its batch."""
    settings.NOTIFY_MAX_WORKER_DEATHS = 3
    settings.NOTIFY_BACKOFF_BASE = 0  # a repeat suspect is due again at once
    service = ServiceFactory()
    for path in ("/a", "/poison", "/b", "/c"):
        SubscriptionFactory(
            service=service, channel=Channel.WEBHOOK, webhook_url=receiver.url(path)
        )
    event = publish(service)
    from notifications.outbox import expand_event

    expand_event(event.pk)
    poison = Notification.objects.get(event=event, address=receiver.url("/poison"))
    claims = []
    for _round in range(20):  # bounded: the loop must end by itself
        ids, lease = delivery.claim_batch(event.pk)
        if not ids:
            # Nothing due: the dead workers' leases run out and the sweep reclaims them.
            Notification.objects.filter(status="sending").update(
                lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
            )
            if not delivery.reclaim_expired_leases():
                break
            continue
        claims.append(len(ids))
        if poison.pk in ids:
            delivery.send_claimed([pk for pk in ids if pk < poison.pk], lease)
            continue  # ... and the worker dies sending the poison: nothing marks the rest
        delivery.send_claimed(ids, lease)
    else:
        pytest.fail(f"the poison message was still being retried after 20 claims: {claims}")

    poison.refresh_from_db()
    assert poison.status == NotificationStatus.FAILED
    assert poison.last_error == "worker died while sending, 3 times"
    assert poison.worker_deaths == 3
    # The others went, once each; after the first death each suspect was claimed alone.
    assert sorted(p for p, _h, _b in receiver.requests) == ["/a", "/b", "/c"]
    assert claims[0] == 4 and set(claims[1:]) == {1}, claims
    others = Notification.objects.filter(event=event).exclude(pk=poison.pk)
    assert set(others.values_list("status", flat=True)) == {"sent"}
    assert delivery.sweep_outbox()["events"] == 0
    # Staff see it, and why.
    page = admin_client.get("/admin/notifications/notification/?status__exact=failed")
    assert "worker died while sending, 3 times" in page.content.decode()


def test_staff_see_what_waits_and_why(admin_client, settings, dispatched):
    service = ServiceFactory()
    SubscriptionFactory(service=service)
    _use_smtp(settings, free_port())  # the relay is down
    deliver_all(publish(service))
    page = admin_client.get("/admin/notifications/notification/?waiting=channel")
    text = page.content.decode()
    assert page.status_code == 200 and "waiting for email (down)" in text
    outages = admin_client.get("/admin/notifications/channelcircuit/")
    assert outages.status_code == 200 and "Connection refused" in outages.content.decode()

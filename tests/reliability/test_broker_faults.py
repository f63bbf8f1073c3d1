"""A broker that hangs (Redis SIGSTOPped) or workers held by slow receivers must not hang the
desk: requests answer within a second, the committed outbox rows arrive once the broker is back,
and the sweeps keep their schedule while deliveries crawl."""

import datetime as dt
import http.server
import threading
import time

import pytest
from django.db import transaction
from django.urls import reverse

from incidents import workflow
from incidents.models import EventKind as IncidentEventKind
from incidents.models import IncidentUpdate
from incidents.notify import enqueue_incident_event
from itsm.actors import Actor
from notifications.models import EventKind, Notification, NotificationStatus
from services.management.commands.run_all import worker_commands
from services.models import Channel, Contact, SlaPolicy, Subscription
from tests.factories import OrganizationFactory, ServiceFactory, UserFactory, sla_policy
from tests.live import BIN, wait_for
from tests.notifications.conftest import make_incident
from tests.reliability.conftest import timed

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

POSTS = 3
CONTACTS = 20


def test_frozen_redis_admin_posts_answer_and_arrive_once_after(
    procs, smtp, redis_server, publish_to, client
):
    service = ServiceFactory()
    org = OrganizationFactory()
    Contact.objects.bulk_create(
        Contact(organization=org, name=f"c{i}", email=f"c{i}@frozen.test") for i in range(CONTACTS)
    )
    Subscription.objects.create(organization=org, service=service)
    incident = make_incident(service, public_status="investigating")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:incidents_incident_post_update", args=[incident.pk])
    procs.broker(redis_server.url)
    publish_to(redis_server.url)
    procs.worker("worker")

    redis_server.freeze()
    seconds = []
    for n in range(POSTS):
        incident.refresh_from_db()
        response, took = timed(
            client.post,
            url,
            {
                "version": incident.version,
                "body": f"Update {n}: still looking",
                "is_public": "on",
                "public_status": "investigating",
            },
        )
        assert response.status_code == 302, response.content[:500]
        seconds.append(took)
    ready, ready_took = timed(client.get, "/readyz")
    posts = ", ".join(f"{s:.2f}" for s in seconds)
    print(f"posts with Redis frozen: {posts} s; readyz {ready_took:.2f} s")
    assert max(seconds) < 1, seconds
    assert ready.status_code == 503 and ready.json()["failing"] == ["broker"]
    assert ready_took < 1, ready_took
    assert IncidentUpdate.objects.filter(incident=incident, is_public=True).count() == POSTS

    redis_server.thaw()
    procs.beat()  # the outbox sweep (every second here) dispatches what the posts could not
    expected = POSTS * CONTACTS
    wait_for(
        lambda: Notification.objects.filter(status=NotificationStatus.SENT).count() >= expected,
        60,
        f"all {expected} emails to be sent",
        procs,
    )
    time.sleep(1)  # let a straggling duplicate arrive before counting
    per_mailbox = {rcpt: len(msgs) for rcpt, msgs in smtp.by_recipient().items()}
    assert per_mailbox == {f"c{i}@frozen.test": POSTS for i in range(CONTACTS)}
    ids = smtp.message_ids()
    assert len(ids) == len(set(ids)) == expected
    assert client.get("/readyz").status_code == 200


HANG = 30  # seconds each receiver holds the request (the webhook timeout cuts it at 10)
RECEIVERS = 15


@pytest.fixture
def hanging_receiver():
    """An HTTP receiver that accepts every webhook and answers none for ``HANG`` seconds."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            release.wait(HANG)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    release.set()
    server.shutdown()
    server.server_close()


def test_hanging_webhooks_do_not_delay_the_sla_sweep(
    procs, redis_server, publish_to, hanging_receiver
):
    SlaPolicy.objects.filter(is_default=True).update(is_default=False)
    policy = sla_policy(
        name="Three seconds", targets={1: (dt.timedelta(seconds=3), dt.timedelta(seconds=60))}
    )
    hooked = ServiceFactory(name="Hooked")
    for i in range(RECEIVERS):
        Subscription.objects.create(
            organization=OrganizationFactory(),
            service=hooked,
            channel=Channel.WEBHOOK,
            webhook_url=f"{hanging_receiver}/hook/{i}",
        )
    procs.broker(redis_server.url)
    publish_to(redis_server.url)
    procs.env["SLA_SWEEP_INTERVAL"] = "1"
    for name, argv in worker_commands(str(BIN / "python"), concurrency=2).items():
        procs.start(name, *argv)
    procs.beat()
    # Fill both delivery processes with receivers that hang.
    for n in range(3):
        with transaction.atomic():
            enqueue_incident_event(
                incident=make_incident(hooked, title=f"Hooks {n}", public_status="investigating"),
                kind=EventKind.INCIDENT_PUBLISHED,
            )
    wait_for(
        lambda: Notification.objects.filter(status=NotificationStatus.SENDING).count() >= 2,
        30,
        "the delivery processes to be held by the hanging receivers",
        procs,
    )

    incident = workflow.create_incident(
        actor=Actor.system(),
        title="Checkout down",
        impact=1,
        urgency=1,
        services=[ServiceFactory(name="Checkout", default_sla_policy=policy)],
    )
    deadline = incident.response_due_at
    breach = wait_for(
        lambda: incident.events.filter(kind=IncidentEventKind.SLA_BREACHED).first(),
        30,
        "the breach to be flagged",
        procs,
    )
    late = (breach.at - deadline).total_seconds()
    print(f"breach flagged {late:.2f} s after the deadline while deliveries hang")
    # Within the sweep interval (1 s) + 1 s, while every delivery process is still held.
    assert 0 <= late <= 2, late
    assert Notification.objects.filter(status=NotificationStatus.SENDING).exists()

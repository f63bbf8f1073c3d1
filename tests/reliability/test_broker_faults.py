"""A broker that hangs (Redis SIGSTOPped) or workers held by slow receivers must not hang the
desk: requests answer within a second, the committed outbox rows arrive once the broker is back,
and the sweeps keep their schedule while deliveries crawl."""

import time

import pytest
from django.urls import reverse

from incidents.models import IncidentUpdate
from notifications.models import Notification, NotificationStatus
from services.models import Contact, Subscription
from tests.factories import OrganizationFactory, ServiceFactory, UserFactory
from tests.live import wait_for
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

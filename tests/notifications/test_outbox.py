"""Who hears about what: the fan-out, delivered through a real SMTP server and HTTP receiver."""

import json

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from incidents.models import IncidentUpdate
from notifications.models import EmailOptOut, EventKind, Notification, NotificationStatus
from notifications.outbox import enqueue_incident_event, enqueue_maintenance_event, notify_staff
from services.models import (
    Channel,
    Contact,
    MaintenanceWindow,
    ServiceDependency,
    Subscription,
    Team,
)
from tests.factories import (
    ContactFactory,
    OrganizationFactory,
    ServiceFactory,
    SubscriptionFactory,
    UserFactory,
)
from tests.notifications.conftest import deliver_all, make_incident

pytestmark = pytest.mark.django_db


def depends(service, on):
    ServiceDependency.objects.create(service=service, depends_on=on)


@pytest.fixture
def catalog():
    """payments ← checkout ← shop (public); db (private) ← reports; unrelated."""
    s = {
        name: ServiceFactory(name=name.title(), slug=name)
        for name in ("payments", "checkout", "shop", "unrelated")
    }
    s["db"] = ServiceFactory(name="DB", slug="db", is_public=False)
    s["reports"] = ServiceFactory(name="Reports", slug="reports")
    depends(s["checkout"], s["payments"])
    depends(s["shop"], s["checkout"])
    depends(s["reports"], s["db"])
    return s


@pytest.fixture
def people(catalog):
    org_c = OrganizationFactory(name="Org C")
    reporting = OrganizationFactory(name="Reporter")
    dead_org = OrganizationFactory(name="Gone", is_active=False)
    p = {
        "alice": ContactFactory(email="alice@x.test", language="ro"),
        "bob": ContactFactory(email="bob@x.test"),
        "carol": ContactFactory(email="carol@x.test", organization=org_c),
        "dave": ContactFactory(email="dave@x.test", organization=org_c),
        "erin": ContactFactory(email="erin@x.test"),
        "frank": ContactFactory(email="frank@x.test", is_active=False),
        "gina": ContactFactory(email="gina@x.test"),
        "hank": ContactFactory(email="hank@x.test"),
        "ivan": ContactFactory(email="ivan@x.test", organization=reporting),
        "judy": ContactFactory(email="judy@x.test"),
        "kate": ContactFactory(email="kate@x.test", organization=dead_org),
        "lily": ContactFactory(email="lily@x.test"),
    }
    SubscriptionFactory(contact=p["alice"], service=catalog["checkout"])
    SubscriptionFactory(contact=p["bob"], service=catalog["shop"])
    SubscriptionFactory(contact=p["carol"], service=catalog["payments"])
    SubscriptionFactory(contact=p["carol"], service=catalog["shop"])
    Subscription.objects.create(organization=org_c, service=catalog["checkout"])
    SubscriptionFactory(contact=p["erin"], service=catalog["unrelated"])
    SubscriptionFactory(contact=p["frank"], service=catalog["payments"])
    SubscriptionFactory(contact=p["gina"], service=catalog["reports"])
    SubscriptionFactory(contact=p["hank"], service=catalog["db"])
    SubscriptionFactory(contact=p["judy"], service=catalog["payments"], is_active=False)
    SubscriptionFactory(contact=p["kate"], service=catalog["payments"])
    SubscriptionFactory(contact=p["lily"], service=catalog["payments"])
    EmailOptOut.objects.create(contact=p["lily"])
    p["reporting"] = reporting
    return p


EXPECTED = {"alice", "bob", "carol", "dave", "hank", "ivan"}


def test_each_affected_contact_gets_exactly_one_email(
    catalog, people, smtp, dispatched, django_capture_on_commit_callbacks
):
    incident = make_incident(
        catalog["payments"],
        catalog["db"],
        organization=people["reporting"],
        public_status="investigating",
    )
    update = IncidentUpdate.objects.create(
        incident=incident, is_public=True, public_status="investigating", body="Card payments fail."
    )
    with django_capture_on_commit_callbacks(execute=True):
        event = enqueue_incident_event(
            incident=incident, kind=EventKind.INCIDENT_PUBLISHED, update=update
        )
    assert dispatched == [(event.pk, 1)]
    assert deliver_all(event) == len(EXPECTED)

    received = smtp.by_recipient()
    assert set(received) == {f"{name}@x.test" for name in EXPECTED}
    assert all(len(messages) == 1 for messages in received.values())
    assert Notification.objects.filter(event=event, status=NotificationStatus.SENT).count() == 6

    en = received["bob@x.test"][0]
    assert en["Subject"] == f"[{incident.reference}] Investigating: Payments are slow"
    text = en.get_body(("plain",)).get_content()
    html = en.get_body(("html",)).get_content()
    assert "Card payments fail." in text and "Card payments fail." in html
    assert "Affected services: Payments" in text  # the private DB is not named to the public
    assert "DB" not in text
    assert f"/incidents/{incident.pk}/" in text

    ro = received["alice@x.test"][0]
    assert ro["Subject"] == f"[{incident.reference}] În investigare: Payments are slow"
    ro_text = ro.get_body(("plain",)).get_content()
    assert "Investigăm o problemă" in ro_text and "Servicii afectate" in ro_text
    assert "Affected services" not in ro_text


def test_a_repeated_call_queues_nothing_more(
    catalog, people, dispatched, django_capture_on_commit_callbacks
):
    incident = make_incident(catalog["payments"], public_status="investigating")
    with django_capture_on_commit_callbacks(execute=True):
        first = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
        again = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    assert first is not None and again is None
    assert Notification.objects.count() == 4  # alice, bob, carol, dave
    assert len(dispatched) == 1


def test_private_service_notifies_only_its_own_subscribers(catalog, people, smtp, dispatched):
    incident = make_incident(catalog["db"])
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_UPDATED)
    deliver_all(event)
    assert set(smtp.by_recipient()) == {"hank@x.test"}
    text = smtp.messages[0][1].get_body(("plain",)).get_content()
    assert "Affected services: DB" in text  # nothing public is hurt, so its own name is used


def test_webhook_gets_one_signed_post_per_url(catalog, people, receiver, dispatched):
    from standardwebhooks import Webhook

    url = receiver.url("/status")
    hook = SubscriptionFactory(
        contact=people["bob"], service=catalog["payments"], channel=Channel.WEBHOOK, webhook_url=url
    )
    SubscriptionFactory(
        contact=people["bob"], service=catalog["checkout"], channel=Channel.WEBHOOK, webhook_url=url
    )
    SubscriptionFactory(
        contact=people["erin"],
        service=catalog["unrelated"],
        channel=Channel.WEBHOOK,
        webhook_url=receiver.url("/other"),
    )
    incident = make_incident(catalog["payments"], public_status="identified")
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_UPDATED)
    deliver_all(event)

    assert len(receiver.requests) == 1
    path, headers, body = receiver.requests[0]
    assert path == "/status"
    row = Notification.objects.get(event=event, channel="webhook")
    assert row.status == NotificationStatus.SENT and row.subscription_id == hook.pk
    assert headers["webhook-id"] == row.webhook_id
    data = Webhook(hook.webhook_secret).verify(body, headers)
    assert data["type"] == "incident_updated"
    assert data["data"]["reference"] == incident.reference
    assert data["data"]["public_status"] == "identified"
    # Another secret does not verify.
    other = SubscriptionFactory(
        contact=people["erin"],
        service=catalog["shop"],
        channel=Channel.WEBHOOK,
        webhook_url=receiver.url("/x"),
    )
    with pytest.raises(Exception, match="signature"):
        Webhook(other.webhook_secret).verify(body, headers)
    assert json.loads(body)["event_id"] == event.pk


def test_maintenance_reaches_the_closure(catalog, people, smtp, dispatched):
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        title="Database upgrade",
        scheduled_start=now,
        scheduled_end=now + timezone.timedelta(hours=1),
    )
    window.services.add(catalog["checkout"])
    event = enqueue_maintenance_event(window=window, kind=EventKind.MAINTENANCE_SCHEDULED)
    deliver_all(event)
    # checkout and shop subscribers; payments-only subscribers are not hurt by checkout.
    assert set(smtp.by_recipient()) == {"alice@x.test", "bob@x.test", "carol@x.test", "dave@x.test"}
    subject = smtp.by_recipient()["bob@x.test"][0]["Subject"]
    assert subject == "Maintenance scheduled: Database upgrade"
    assert enqueue_maintenance_event(window=window, kind=EventKind.MAINTENANCE_SCHEDULED) is None


def test_staff_messages_go_once_per_address(smtp, dispatched):
    agent = UserFactory(username="ana", email="ana@desk.test")
    idle = UserFactory(username="ion", email="ion@desk.test", is_active=False)
    team = Group.objects.create(name="Network")
    Team.objects.create(group=team, email="network@desk.test")
    crew = Group.objects.create(name="Crew")
    member = UserFactory(username="mara", email="mara@desk.test")
    member.groups.add(crew)
    agent.groups.add(crew)
    incident = make_incident(ServiceFactory())

    event = notify_staff(
        kind=EventKind.SLA_BREACH,
        key=f"sla:{incident.pk}:resolve:1000",
        subject="Resolution SLA breached",
        body="Nobody resolved it in time.",
        users=[agent, idle],
        groups=[team, crew],
        emails=["ANA@desk.test", "boss@desk.test"],
        incident=incident,
    )
    deliver_all(event)
    received = smtp.by_recipient()
    assert set(received) == {
        "ana@desk.test",
        "network@desk.test",
        "mara@desk.test",
        "boss@desk.test",
    }
    assert all(len(m) == 1 for m in received.values())
    message = received["boss@desk.test"][0]
    assert message["Subject"] == f"[{incident.reference}] Resolution SLA breached"
    assert "List-Unsubscribe" not in message
    again = notify_staff(
        kind=EventKind.SLA_BREACH,
        key=f"sla:{incident.pk}:resolve:1000",
        subject="x",
        body="y",
        users=[agent],
    )
    assert again is None


def test_fan_out_is_a_constant_number_of_queries(
    django_assert_max_num_queries, dispatched, catalog, django_capture_on_commit_callbacks
):
    """20,000 subscribers (through organisation subscriptions and their own) are written in
    one INSERT ... SELECT, not one statement per row."""
    orgs = [OrganizationFactory() for _ in range(4)]
    Contact.objects.bulk_create(
        Contact(organization=orgs[i % 4], name=f"c{i}", email=f"c{i}@bulk.test")
        for i in range(20_000)
    )
    for org in orgs[:2]:
        Subscription.objects.create(organization=org, service=catalog["payments"])
    Subscription.objects.create(organization=orgs[2], service=catalog["shop"])
    direct = Contact.objects.filter(organization=orgs[3]).values_list("pk", flat=True)
    Subscription.objects.bulk_create(
        Subscription(contact_id=pk, service=catalog["checkout"]) for pk in direct
    )
    small = make_incident(catalog["unrelated"], public_status="investigating")
    big = make_incident(catalog["payments"], public_status="investigating")

    with django_assert_max_num_queries(12):
        enqueue_incident_event(incident=small, kind=EventKind.INCIDENT_PUBLISHED)
    with django_assert_max_num_queries(12), django_capture_on_commit_callbacks(execute=True):
        event = enqueue_incident_event(incident=big, kind=EventKind.INCIDENT_PUBLISHED)
    assert Notification.objects.filter(event=event).count() == 20_000
    assert dispatched[-1] == (event.pk, 8)

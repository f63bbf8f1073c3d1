"""Who hears about what: the fan-out, delivered through a real SMTP server and HTTP receiver."""

import datetime as dt
import json
import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.models import IncidentUpdate
from incidents.notify import enqueue_incident_event, notify_staff
from notifications import delivery
from notifications.models import (
    EmailOptOut,
    EventKind,
    Notification,
    NotificationEvent,
    NotificationStatus,
)
from notifications.outbox import discard_unsent, expand_event
from services.announcements import announce_maintenance_status
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
    event = announce_maintenance_status(window)
    assert event.kind == EventKind.MAINTENANCE_SCHEDULED
    deliver_all(event)
    # checkout and shop subscribers; payments-only subscribers are not hurt by checkout.
    assert set(smtp.by_recipient()) == {"alice@x.test", "bob@x.test", "carol@x.test", "dave@x.test"}
    subject = smtp.by_recipient()["bob@x.test"][0]["Subject"]
    assert subject == "Maintenance scheduled: Database upgrade"
    assert announce_maintenance_status(window) is None


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


@pytest.fixture
def crowd(catalog):
    """20,000 contacts reached by payments trouble: two organisations subscribed to payments, one
    to shop, one contact by contact to checkout; a tenth of the first organisation also
    directly to shop, and the second organisation reports (three paths to one contact). 1,000
    more hear only about the unrelated service. Returns the ids that must get a row."""
    orgs = [OrganizationFactory() for _ in range(5)]
    Contact.objects.bulk_create(
        Contact(organization=orgs[i % 4], name=f"c{i}", email=f"c{i}@bulk.test")
        for i in range(20_000)
    )
    Contact.objects.bulk_create(
        Contact(organization=orgs[4], name=f"n{i}", email=f"n{i}@bulk.test") for i in range(1000)
    )
    for org in orgs[:2]:
        Subscription.objects.create(organization=org, service=catalog["payments"])
    Subscription.objects.create(organization=orgs[2], service=catalog["shop"])
    Subscription.objects.create(organization=orgs[4], service=catalog["unrelated"])
    direct = Contact.objects.filter(organization=orgs[3]).values_list("pk", flat=True)
    Subscription.objects.bulk_create(
        Subscription(contact_id=pk, service=catalog["checkout"]) for pk in direct
    )
    twice = Contact.objects.filter(organization=orgs[0]).values_list("pk", flat=True)[:500]
    Subscription.objects.bulk_create(
        Subscription(contact_id=pk, service=catalog["shop"]) for pk in twice
    )
    reached = set(Contact.objects.filter(organization__in=orgs[:4]).values_list("pk", flat=True))
    return {"reporting": orgs[1], "reached": reached}


def test_enqueue_is_a_constant_number_of_queries_and_writes_no_rows(
    dispatched, catalog, crowd, django_capture_on_commit_callbacks
):
    """The caller's transaction writes the event only, in as many queries for 20,000
    subscribers as for none; the workers' expansion then writes one row per contact."""
    small = make_incident(catalog["unrelated"], public_status="investigating")
    big = make_incident(
        catalog["payments"], organization=crowd["reporting"], public_status="investigating"
    )

    with CaptureQueriesContext(connection) as few, django_capture_on_commit_callbacks() as hooks:
        enqueue_incident_event(incident=small, kind=EventKind.INCIDENT_PUBLISHED)
    assert len(hooks) == 1
    with CaptureQueriesContext(connection) as many, django_capture_on_commit_callbacks() as hooks:
        event = enqueue_incident_event(incident=big, kind=EventKind.INCIDENT_PUBLISHED)
    assert len(many) == len(few) <= 8, [q["sql"] for q in many]
    print(f"enqueue: {len(many)} queries for 20,000 subscribers, {len(few)} for none")
    insert_rows = f'INSERT INTO "{Notification._meta.db_table}"'
    assert not any(q["sql"].startswith(insert_rows) for q in many)
    assert not Notification.objects.exists()  # nothing per recipient before the commit
    event.refresh_from_db()
    assert event.expanded_at is None
    assert event.audience == {
        "services": sorted(
            s.pk for s in (catalog["payments"], catalog["checkout"], catalog["shop"])
        ),
        "organization": crowd["reporting"].pk,
    }
    assert dispatched == [] and dispatched.expansions == []

    # Commit: the expansion is dispatched; run as a worker would, chunk by chunk.
    with CaptureQueriesContext(connection) as expansion:
        hooks[0]()
    assert dispatched.expansions == [event.pk]
    rows = Notification.objects.filter(event=event)
    assert rows.count() == 20_000
    assert set(rows.values_list("contact_id", flat=True)) == crowd["reached"]
    assert set(rows.values_list("channel", "status").distinct()) == {("email", "pending")}
    event.refresh_from_db()
    assert event.expanded_at is not None and event.expansion_lease_expires_at is None
    # Four chunks of 5,000 (and one that finds the end), each handed to delivery at once: up to
    # MAX_TASK_COPIES deliverers at first, then one more per chunk.
    assert dispatched == [(event.pk, 5), (event.pk, 3), (event.pk, 1), (event.pk, 1)]
    assert len(expansion) <= 5 * 8, len(expansion)  # a few statements per chunk, none per row


def test_expansion_twice_or_racing_writes_each_row_once(dispatched, catalog, crowd):
    incident = make_incident(
        catalog["payments"], organization=crowd["reporting"], public_status="investigating"
    )
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    assert expand_event(event.pk, chunk_size=3000) == 20_000
    assert expand_event(event.pk) == 0  # expanded: a second run does nothing

    # A second expander that read the cursor before the first one moved it: every chunk it
    # writes is there already, and ON CONFLICT DO NOTHING keeps it so.
    NotificationEvent.objects.filter(pk=event.pk).update(expanded_at=None, expansion_cursor=0)
    assert expand_event(event.pk, chunk_size=7000) == 0
    rows = Notification.objects.filter(event=event)
    assert rows.count() == rows.values("contact_id").distinct().count() == 20_000


def test_an_expansion_killed_half_way_is_finished_by_the_sweep(dispatched, catalog, crowd):
    incident = make_incident(
        catalog["payments"], organization=crowd["reporting"], public_status="investigating"
    )
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    # The worker writes two chunks, then dies.
    assert expand_event(event.pk, chunk_size=4000, max_chunks=2) == 8000
    event.refresh_from_db()
    assert event.expanded_at is None and event.expansion_cursor > 0
    assert dispatched == [(event.pk, 4), (event.pk, 4)]  # sending started meanwhile

    # Its lease still runs: the sweep leaves the event to it.
    assert delivery.sweep_outbox()["expansions"] == 0
    assert dispatched.expansions == []
    # The lease ran out: the sweep hands the event to another worker, which finishes it.
    later = event.expansion_lease_expires_at + dt.timedelta(seconds=1)
    assert delivery.sweep_outbox(now=later)["expansions"] == 1
    assert dispatched.expansions == [event.pk]
    rows = Notification.objects.filter(event=event)
    assert rows.count() == rows.values("contact_id").distinct().count() == 20_000
    assert set(rows.values_list("contact_id", flat=True)) == crowd["reached"]
    event.refresh_from_db()
    assert event.expanded_at is not None
    assert delivery.sweep_outbox(now=later)["expansions"] == 0


def test_discarded_history_is_never_sent(catalog, people, dispatched):
    old = make_incident(catalog["payments"], public_status="resolved", title="Weeks ago")
    queued = enqueue_incident_event(incident=old, kind=EventKind.INCIDENT_PUBLISHED)
    expand_event(queued.pk)  # rows written, none sent yet
    unexpanded = enqueue_incident_event(incident=old, kind=EventKind.INCIDENT_RESOLVED)
    assert (
        discard_unsent(NotificationEvent.objects.filter(subject_kind="incident", subject_id=old.pk))
        == 4
    )
    assert expand_event(unexpanded.pk) == 0  # a late expander writes nothing
    assert not Notification.objects.filter(event=unexpanded).exists()
    assert set(Notification.objects.values_list("status", flat=True)) == {"cancelled"}


def test_nobody_to_find_is_expanded_at_once(dispatched, django_capture_on_commit_callbacks):
    incident = make_incident(public_status="investigating")  # no service, no organisation
    with django_capture_on_commit_callbacks(execute=True) as hooks:
        event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    assert event.expanded_at is not None and hooks == []
    assert not Notification.objects.filter(event=event).exists()


@pytest.mark.django_db(transaction=True)
def test_two_expanders_at_once_on_postgres(on_postgres, catalog, crowd, monkeypatch):
    """Two workers expanding the same event at the same time, each on its own connection."""
    monkeypatch.setattr(delivery, "dispatch_event", lambda *a, **k: True)
    monkeypatch.setattr(delivery, "dispatch_expansion", lambda *a, **k: True)
    incident = make_incident(
        catalog["payments"], organization=crowd["reporting"], public_status="investigating"
    )
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    barrier = threading.Barrier(2)
    written, errors = [], []

    def expander():
        try:
            barrier.wait()
            written.append(expand_event(event.pk, chunk_size=1000))
        except Exception as exc:  # reported below, with the thread's error
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=expander) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(written) == 20_000
    rows = Notification.objects.filter(event=event)
    assert rows.count() == rows.values("contact_id").distinct().count() == 20_000

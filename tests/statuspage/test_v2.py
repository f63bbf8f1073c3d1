"""Statuspage-compatible v2 payloads (``statuspage.v2``), against recorded Statuspage responses."""

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import workflow
from services import workflow as catalog
from services.models import MaintenanceStatus, Service, ServiceGroup, ServiceStatus
from statuspage import v2
from tests.factories import ServiceFactory
from tests.statuspage.conftest import published

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).parent / "statuspage_examples"
PAGE_ID = "itsm-status"
NOW = dt.datetime(2026, 5, 1, 12, 34, 56, 789000, tzinfo=dt.UTC)


def example(name):
    return json.loads((EXAMPLES / name).read_text())


def page(time_zone="Etc/UTC"):
    return {
        "id": PAGE_ID,
        "name": "Example status",
        "url": "https://status.example.com/",
        "time_zone": time_zone,
        "updated_at": NOW,
    }


def maintenance(title, services, start, hours=1, description="We upgrade the database."):
    return catalog.schedule_maintenance(
        title=title,
        services=services,
        scheduled_start=start,
        scheduled_end=start + dt.timedelta(hours=hours),
        public_description=description,
    )


@pytest.fixture
def busy_page(agent):
    """A group with two services, a service outside groups, an open incident, a resolved one,
    an upcoming and an active maintenance window."""
    payments = ServiceGroup.objects.create(name="Payments", display_order=1)
    cards = ServiceFactory(name="Cards", slug="cards", group=payments, description="Card payments")
    ServiceFactory(name="Invoices", slug="invoices", group=payments)
    web = ServiceFactory(name="Website", slug="website")
    published(agent, "Cards declined", {cards: ServiceStatus.MAJOR_OUTAGE})
    old = published(agent, "Slow website", {web: ServiceStatus.DEGRADED_PERFORMANCE})
    workflow.resolve(old, actor=agent, code="fixed", notes="n", public_message="Fixed.")
    now = dt.datetime.now(dt.UTC)
    maintenance("Database upgrade", [web], now + dt.timedelta(days=1))
    running = maintenance("Network work", [web], now - dt.timedelta(minutes=5))
    catalog.move_maintenance(running, to=MaintenanceStatus.IN_PROGRESS)
    return {"cards": cards, "web": web}


def keys(obj):
    return set(obj)


# --- shapes, against Statuspage's own responses ---------------------------------------------


def test_summary_has_statuspage_keys_for_every_object(busy_page):
    ours = v2.payloads(page())["summary.json"]
    theirs = example("summary.json")

    assert keys(ours) == keys(theirs)
    assert keys(ours["page"]) == keys(theirs["page"])
    assert keys(ours["status"]) == keys(theirs["status"])

    their_group, their_component = theirs["components"]
    groups = [c for c in ours["components"] if c["group"]]
    leaves = [c for c in ours["components"] if not c["group"]]
    assert groups and leaves
    for group in groups:
        assert keys(group) == keys(their_group)
    for component in leaves:
        # A component outside a group has no "components" key, as Statuspage writes it.
        assert keys(component) == keys(their_component)

    (their_incident,) = theirs["incidents"]
    (incident,) = ours["incidents"]
    assert keys(incident) == keys(their_incident)
    (their_update,) = their_incident["incident_updates"]
    assert incident["incident_updates"]
    for update in incident["incident_updates"]:
        assert keys(update) == keys(their_update)
    # The recording abbreviates an incident's components as "same shape as top-level".
    assert incident["components"]
    for component in incident["components"]:
        assert keys(component) == keys(their_component)

    (their_maintenance,) = theirs["scheduled_maintenances"]
    assert len(ours["scheduled_maintenances"]) == 2
    for window in ours["scheduled_maintenances"]:
        # Statuspage serves maintenance from its incident model: the recording shows
        # reminder_intervals on the incident and its recorder left it out of the maintenance.
        assert keys(window) == keys(their_maintenance) | {"reminder_intervals"}
        for update in window["incident_updates"]:
            assert keys(update) == keys(their_maintenance["incident_updates"][0])
        for component in window["components"]:
            assert keys(component) == keys(their_component)


def test_components_and_status_match_statuspage_keys(busy_page):
    ours = v2.payloads(page())
    for name in ("components.json", "status.json"):
        theirs = example(name)
        assert keys(ours[name]) == keys(theirs)
        assert keys(ours[name]["page"]) == keys(theirs["page"])
    (their_component,) = example("components.json")["components"]
    for component in ours["components.json"]["components"]:
        if not component["group"]:
            assert keys(component) == keys(their_component)
    assert keys(ours["status.json"]["status"]) == keys(example("status.json")["status"])


def test_every_document_wraps_the_page(busy_page):
    documents = v2.payloads(page())
    assert set(documents) == {
        "summary.json",
        "status.json",
        "components.json",
        "incidents.json",
        "incidents/unresolved.json",
        "scheduled-maintenances.json",
        "scheduled-maintenances/upcoming.json",
        "scheduled-maintenances/active.json",
    }
    for document in documents.values():
        assert document["page"] == {
            "id": PAGE_ID,
            "name": "Example status",
            "url": "https://status.example.com",
            "time_zone": "Etc/UTC",
            "updated_at": "2026-05-01T12:34:56.789Z",
        }
        json.dumps(document)  # plain JSON values only


@pytest.mark.parametrize(
    ("recorded", "time_zone"),
    [
        # cloudflarestatus.com, a UTC page; discordstatus.com, a page in America/Tijuana.
        ("2026-05-17T02:50:03.552Z", "Etc/UTC"),
        ("2022-02-15T13:37:37.407-08:00", "America/Tijuana"),
        ("2015-07-30T18:55:43.739-07:00", "America/Tijuana"),
    ],
)
def test_timestamps_are_written_as_statuspage_writes_them(recorded, time_zone):
    instant = dt.datetime.fromisoformat(recorded.replace("Z", "+00:00"))
    assert v2.timestamp(instant.astimezone(dt.UTC), time_zone) == recorded


def test_payload_timestamps_have_milliseconds_and_z(busy_page):
    text = json.dumps(v2.payloads(page()))
    stamps = re.findall(r'"(\d{4}-\d\d-\d\dT[^"]*)"', text)
    assert stamps
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp


# --- components -----------------------------------------------------------------------------


def test_groups_are_components_listing_their_children(busy_page):
    components = v2.payloads(page())["components.json"]["components"]
    by_name = {c["name"]: c for c in components}
    group, cards, invoices, web = (by_name[n] for n in ("Payments", "Cards", "Invoices", "Website"))
    pk = ServiceGroup.objects.get(name="Payments").pk
    assert group["id"] == f"grp-{pk}"
    assert group["group"] is True
    assert group["components"] == [cards["id"], invoices["id"]]
    assert group["status"] == "major_outage"  # the worst of its components
    assert cards["id"] == f"svc-{busy_page['cards'].pk}"
    assert (cards["group_id"], cards["position"], invoices["position"]) == (group["id"], 1, 2)
    assert cards["status"] == "major_outage"
    assert cards["description"] == "Card payments"
    assert invoices["description"] is None
    assert web["group_id"] is None and "components" not in web
    assert web["status"] == "under_maintenance"
    assert [c["name"] for c in components] == ["Payments", "Cards", "Invoices", "Website"]
    assert {c["page_id"] for c in components} == {PAGE_ID}


# --- status indicator -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "some", "everywhere"),
    [
        ("operational", ("none", "All Systems Operational"), ("none", "All Systems Operational")),
        (
            "degraded_performance",
            ("minor", "Partially Degraded Service"),
            ("minor", "Degraded System Service"),
        ),
        ("partial_outage", ("minor", "Minor Service Outage"), ("major", "Partial System Outage")),
        ("major_outage", ("major", "Partial System Outage"), ("critical", "Major System Outage")),
        (
            "under_maintenance",
            ("maintenance", "Service Under Maintenance"),
            ("maintenance", "Service Under Maintenance"),
        ),
    ],
)
def test_the_indicator_follows_the_worst_public_status(status, some, everywhere):
    one = ServiceFactory(name="One")
    ServiceFactory(name="Two")
    ServiceFactory(name="Hidden", is_public=False, status=ServiceStatus.MAJOR_OUTAGE)

    Service.objects.filter(pk=one.pk).update(status=status)
    found = v2.payloads(page())["status.json"]["status"]
    assert (found["indicator"], found["description"]) == some

    Service.objects.filter(is_public=True).update(status=status)
    found = v2.payloads(page())["summary.json"]["status"]
    assert (found["indicator"], found["description"]) == everywhere


# --- incidents ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caused", "impact"),
    [
        (ServiceStatus.DEGRADED_PERFORMANCE, "minor"),
        (ServiceStatus.PARTIAL_OUTAGE, "major"),
        (ServiceStatus.MAJOR_OUTAGE, "critical"),
    ],
)
def test_incident_impact_is_the_worst_it_caused_on_public_services(agent, caused, impact):
    web = ServiceFactory(name="Website")
    ledger = ServiceFactory(name="Ledger", is_public=False)
    published(agent, "Trouble", {web: caused, ledger: ServiceStatus.MAJOR_OUTAGE})
    published(agent, "Only internal", {ledger: ServiceStatus.MAJOR_OUTAGE})
    incidents = v2.payloads(page())["incidents.json"]["incidents"]
    assert {i["name"]: i["impact"] for i in incidents} == {
        "Trouble": impact,
        "Only internal": "none",
    }


def test_an_incident_reads_as_statuspage_writes_one(agent):
    web = ServiceFactory(name="Website")
    start = NOW - dt.timedelta(hours=2)
    incident = published(
        agent,
        "Website down",
        {web: ServiceStatus.MAJOR_OUTAGE},
        body="Website down: looking.",
        at=start,
    )
    workflow.post_update(
        incident,
        actor=agent,
        body="Watching.",
        is_public=True,
        public_status="monitoring",
        now=start + dt.timedelta(hours=1),
    )
    workflow.post_update(incident, actor=agent, body="restarted pod-7", now=NOW)

    (found,) = v2.payloads(page())["incidents/unresolved.json"]["incidents"]
    assert found["id"] == f"inc-{incident.pk}"
    assert found["status"] == "monitoring"
    assert found["shortlink"] == f"https://status.example.com/incidents/{incident.pk}/"
    assert found["created_at"] == found["started_at"] == v2.timestamp(start, "UTC")
    assert (
        found["monitoring_at"]
        == found["updated_at"]
        == v2.timestamp(start + dt.timedelta(hours=1), "UTC")
    )
    assert found["resolved_at"] is None
    assert [u["status"] for u in found["incident_updates"]] == ["monitoring", "investigating"]
    assert [u["body"] for u in found["incident_updates"]] == ["Watching.", "Website down: looking."]
    assert {u["incident_id"] for u in found["incident_updates"]} == {found["id"]}
    assert all(u["id"].startswith("upd-") for u in found["incident_updates"])
    assert [c["id"] for c in found["components"]] == [f"svc-{web.pk}"]


def test_unresolved_excludes_resolved_incidents(agent):
    web = ServiceFactory(name="Website")
    published(agent, "Still open", {web: ServiceStatus.PARTIAL_OUTAGE})
    done = published(agent, "Done", {web: ServiceStatus.MAJOR_OUTAGE})
    workflow.resolve(done, actor=agent, code="fixed", notes="n", public_message="Fixed.")

    documents = v2.payloads(page())
    assert [i["name"] for i in documents["incidents/unresolved.json"]["incidents"]] == [
        "Still open"
    ]
    assert [i["name"] for i in documents["summary.json"]["incidents"]] == ["Still open"]
    resolved = next(i for i in documents["incidents.json"]["incidents"] if i["name"] == "Done")
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    assert resolved["impact"] == "critical"  # the impact it had, though it has ended


def test_incidents_json_holds_the_50_most_recent(agent):
    web = ServiceFactory(name="Website")
    for n in range(51):
        published(agent, f"Incident {n}", [web], at=NOW - dt.timedelta(hours=51 - n))
    incidents = v2.payloads(page())["incidents.json"]["incidents"]
    assert len(incidents) == 50
    assert incidents[0]["name"] == "Incident 50"
    assert "Incident 0" not in {i["name"] for i in incidents}


def test_nothing_internal_appears(agent, security):
    web = ServiceFactory(name="Website")
    secret_service = ServiceFactory(name="MARKER-private-service", slug="private")
    Service.objects.filter(pk=secret_service.pk).update(is_public=False)
    shown = published(
        agent, "Shown", {web: ServiceStatus.PARTIAL_OUTAGE, secret_service: "major_outage"}
    )
    workflow.post_update(shown, actor=agent, body="MARKER-work-note")
    workflow.create_incident(actor=agent, title="MARKER-unpublished", services=[web])
    secret = workflow.create_incident(
        actor=security, title="MARKER-confidential", services=[web], is_confidential=True
    )
    workflow.post_update(
        secret,
        actor=security,
        body="MARKER-confidential-update",
        is_public=True,
        public_status="identified",
    )
    maintenance(
        "MARKER-private-maintenance-service", [secret_service], NOW + dt.timedelta(days=400)
    )

    text = json.dumps(v2.payloads(page(), now=NOW))
    assert "Shown" in text
    assert "MARKER-private-service" not in text
    assert "MARKER-work-note" not in text
    assert "MARKER-unpublished" not in text
    assert "MARKER-confidential" not in text
    assert f"svc-{secret_service.pk}" not in text


# --- maintenance ----------------------------------------------------------------------------


def test_upcoming_and_active_maintenance(busy_page):
    documents = v2.payloads(page())
    (upcoming,) = documents["scheduled-maintenances/upcoming.json"]["scheduled_maintenances"]
    (active,) = documents["scheduled-maintenances/active.json"]["scheduled_maintenances"]
    assert (upcoming["name"], upcoming["status"]) == ("Database upgrade", "scheduled")
    assert (active["name"], active["status"]) == ("Network work", "in_progress")
    assert upcoming["impact"] == active["impact"] == "maintenance"
    assert [u["status"] for u in active["incident_updates"]] == ["in_progress", "scheduled"]
    assert upcoming["incident_updates"][0]["body"] == "We upgrade the database."
    assert upcoming["id"].startswith("mnt-")
    assert active["components"][0]["status"] == "under_maintenance"
    summary = documents["summary.json"]["scheduled_maintenances"]
    assert [m["name"] for m in summary] == ["Network work", "Database upgrade"]
    every = documents["scheduled-maintenances.json"]["scheduled_maintenances"]
    assert {m["name"] for m in every} == {"Network work", "Database upgrade"}


def test_completed_maintenance_is_listed_but_neither_upcoming_nor_active(busy_page):
    window = maintenance("Finished", [busy_page["web"]], dt.datetime.now(dt.UTC))
    catalog.move_maintenance(window, to=MaintenanceStatus.IN_PROGRESS)
    catalog.move_maintenance(window, to=MaintenanceStatus.COMPLETED)
    documents = v2.payloads(page())
    done = next(
        m
        for m in documents["scheduled-maintenances.json"]["scheduled_maintenances"]
        if m["name"] == "Finished"
    )
    assert done["status"] == "completed"
    assert done["resolved_at"] is not None
    assert [u["status"] for u in done["incident_updates"]] == [
        "completed",
        "in_progress",
        "scheduled",
    ]
    summary = {m["name"] for m in documents["summary.json"]["scheduled_maintenances"]}
    assert "Finished" not in summary


# --- cost -----------------------------------------------------------------------------------


def test_query_count_does_not_grow_with_the_page(busy_page, agent, django_assert_max_num_queries):
    with CaptureQueriesContext(connection) as small:
        v2.payloads(page())
    group = ServiceGroup.objects.create(name="Infrastructure", display_order=2)
    for n in range(6):
        service = ServiceFactory(name=f"Node {n}", group=group)
        incident = published(agent, f"Node {n} down", {service: ServiceStatus.MAJOR_OUTAGE})
        workflow.post_update(
            incident, actor=agent, body="Still looking.", is_public=True, public_status="identified"
        )
        maintenance(f"Node {n} patch", [service], dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    with django_assert_max_num_queries(len(small)):
        documents = v2.payloads(page())
    assert len(documents["incidents/unresolved.json"]["incidents"]) == 7

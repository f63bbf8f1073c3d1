"""The history feeds (Atom, RSS) and the maintenance calendar, read back as clients read them:
feeds through feedparser, the calendar through icalendar."""

import datetime as dt

import feedparser
import icalendar
import pytest
from django.conf import settings

from incidents import workflow
from services.models import MaintenanceStatus, MaintenanceWindow, ServiceStatus
from statuspage import feeds
from tests.factories import ServiceFactory
from tests.statuspage.conftest import published

pytestmark = pytest.mark.django_db

SITE = "https://status.example.com"
T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)
# Strings that exist only on the internal side: none may appear in any feed or calendar.
MARKERS = ("SECRET-CONFIDENTIAL", "SECRET-UNPUBLISHED", "SECRET-WORKNOTE", "SECRET-LEDGER")


@pytest.fixture
def catalog():
    return {
        "web": ServiceFactory(name="Website", slug="website"),
        "mail": ServiceFactory(name="Mail & <Chat>", slug="mail"),
        "ledger": ServiceFactory(name="SECRET-LEDGER", slug="ledger", is_public=False),
    }


@pytest.fixture
def history(agent, security, catalog):
    """Two public incidents (one also hurting a private service, with a work note), one
    unpublished and one confidential incident, and one maintenance window of Mail."""
    web, mail, ledger = catalog["web"], catalog["mail"], catalog["ledger"]
    older = published(
        agent,
        "Website down",
        {web: ServiceStatus.MAJOR_OUTAGE, ledger: ServiceStatus.MAJOR_OUTAGE},
        at=T0,
    )
    workflow.post_update(older, actor=agent, body="SECRET-WORKNOTE pod-7", now=T0)
    workflow.post_update(
        older,
        actor=agent,
        body='Fixed: the <script>alert("x")</script> & co.',
        is_public=True,
        public_status="monitoring",
        now=T0 + dt.timedelta(hours=1),
    )
    newer = published(
        agent, "Mail delayed", [mail], at=T0 + dt.timedelta(days=1), status="identified"
    )
    workflow.create_incident(actor=agent, title="SECRET-UNPUBLISHED", services=[web])
    secret = workflow.create_incident(
        actor=security, title="SECRET-CONFIDENTIAL", services=[web], is_confidential=True
    )
    workflow.post_update(
        secret,
        actor=security,
        body="SECRET-CONFIDENTIAL",
        is_public=True,
        public_status="identified",
    )
    window = MaintenanceWindow.objects.create(
        title="Mail server upgrade",
        scheduled_start=T0 + dt.timedelta(days=3),
        scheduled_end=T0 + dt.timedelta(days=3, hours=2),
        public_description="Mail may queue for a few minutes.",
    )
    window.services.add(mail, ledger)
    MaintenanceWindow.objects.filter(pk=window.pk).update(created_at=T0 + dt.timedelta(days=2))
    called_off = MaintenanceWindow.objects.create(
        title="SECRET-CANCELLED",
        scheduled_start=T0 + dt.timedelta(days=4),
        scheduled_end=T0 + dt.timedelta(days=4, hours=1),
        status=MaintenanceStatus.CANCELLED,
    )
    called_off.services.add(web)
    return {"older": older, "newer": newer, "window": window, "secret": secret}


def parse(kind, **kwargs):
    raw = feeds.history_feed(kind, site_url=SITE, **kwargs)
    parsed = feedparser.parse(raw)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return raw, parsed


@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_the_feed_lists_public_incidents_and_maintenance_newest_first(kind, history):
    raw, parsed = parse(kind)

    assert parsed.version == {"atom": "atom10", "rss": "rss20"}[kind]
    assert [e.title for e in parsed.entries] == [
        "Maintenance: Mail server upgrade",
        "Mail delayed",
        "Website down",
    ]
    assert [e.link for e in parsed.entries] == [
        f"{SITE}/history/#maintenance-{history['window'].pk}",
        f"{SITE}/incidents/{history['newer'].pk}/",
        f"{SITE}/incidents/{history['older'].pk}/",
    ]
    assert parsed.entries[2].published_parsed[:5] == (2025, 3, 1, 8, 0)
    for marker in (*MARKERS, "SECRET-CANCELLED"):
        assert marker.encode() not in raw


@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_an_item_carries_its_public_updates_newest_first_escaped(kind, history):
    _, parsed = parse(kind)
    website = parsed.entries[2]

    summary = website.summary
    assert summary.index("Monitoring") < summary.index("Investigating")
    assert "2025-03-01 09:00 UTC" in summary
    # The body is text in the reader, never markup: the script tag arrives escaped.
    assert "<script>" not in summary
    assert "&lt;script&gt;alert" in summary
    assert [t.term for t in website.tags] == ["Website"]
    assert [t.term for t in parsed.entries[0].tags] == ["Mail & <Chat>"]
    assert "Mail may queue for a few minutes." in parsed.entries[0].summary


def test_item_ids_are_stable_and_unique(history):
    _, first = parse("atom")
    _, second = parse("atom")
    ids = [e.id for e in first.entries]
    assert ids == [e.id for e in second.entries]
    assert len(set(ids)) == 3
    assert ids[2] == f"tag:status.example.com,2025-03-01:incidents/{history['older'].pk}"
    # The item's last public change, not the incident's internal edits.
    assert first.entries[2].updated_parsed[:5] == (2025, 3, 1, 9, 0)


@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_a_service_feed_has_only_what_touched_that_service(kind, history):
    _, website = parse(kind, service="website")
    assert [e.title for e in website.entries] == ["Website down"]
    assert website.feed.title == "Website: incidents and maintenance"

    _, mail = parse(kind, service=history["window"].services.get(slug="mail"))
    assert [e.title for e in mail.entries] == ["Maintenance: Mail server upgrade", "Mail delayed"]


def test_a_private_service_has_no_feed(history):
    with pytest.raises(LookupError):
        feeds.history_feed("atom", site_url=SITE, service="ledger")
    with pytest.raises(LookupError):
        feeds.history_feed("rss", site_url=SITE, service="no-such-service")


def test_the_feed_keeps_the_fifty_most_recent(agent, catalog):
    for n in range(52):
        published(agent, f"Blip {n}", [catalog["web"]], at=T0 + dt.timedelta(minutes=n))
    _, parsed = parse("rss")
    assert len(parsed.entries) == 50
    assert parsed.entries[0].title == "Blip 51"
    assert parsed.entries[-1].title == "Blip 2"


def test_the_feed_reads_a_constant_number_of_queries(agent, catalog, django_assert_num_queries):
    def feed_queries():
        # The service; incidents, their public updates and services; maintenance, its services.
        with django_assert_num_queries(6) as ctx:
            feeds.history_feed("atom", site_url=SITE, service="website")
        return len(ctx.captured_queries)

    published(agent, "Blip", [catalog["web"]], at=T0)
    window("Web work", T0, 1, services=[catalog["web"]])
    few = feed_queries()
    for n in range(20):
        published(agent, f"Blip {n}", [catalog["web"]], at=T0 + dt.timedelta(minutes=n))
    assert feed_queries() == few


# --- the maintenance calendar -------------------------------------------------------------------

NOW = dt.datetime(2025, 6, 15, 12, 0, tzinfo=dt.UTC)


def window(title, start, hours, status=MaintenanceStatus.SCHEDULED, services=(), **fields):
    made = MaintenanceWindow.objects.create(
        title=title,
        scheduled_start=start,
        scheduled_end=start + dt.timedelta(hours=hours),
        status=status,
        **fields,
    )
    made.services.add(*services)
    return made


@pytest.fixture
def maintenance(catalog):
    mail, ledger = catalog["mail"], catalog["ledger"]
    return {
        "upcoming": window(
            "Mail server upgrade",
            NOW + dt.timedelta(days=2),
            2,
            services=[mail, ledger],
            public_description="Mail may queue.",
        ),
        "running": window(
            "Network work", NOW - dt.timedelta(hours=1), 3, MaintenanceStatus.IN_PROGRESS
        ),
        "recent": window("Disk swap", NOW - dt.timedelta(days=10), 1, MaintenanceStatus.COMPLETED),
        "old": window("Old work", NOW - dt.timedelta(days=40), 1, MaintenanceStatus.COMPLETED),
        "cancelled": window(
            "SECRET-CANCELLED", NOW + dt.timedelta(days=1), 1, MaintenanceStatus.CANCELLED
        ),
    }


def events(raw):
    calendar = icalendar.Calendar.from_ical(raw)
    return calendar, calendar.walk("VEVENT")


def test_the_calendar_has_upcoming_running_and_recent_maintenance(maintenance):
    raw = feeds.maintenance_calendar(site_url=SITE + "/", now=NOW)
    calendar, found = events(raw)

    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"]
    assert str(calendar["X-WR-CALNAME"]) == f"{settings.STATUS_PAGE_NAME}: maintenance"
    assert [str(e["SUMMARY"]) for e in found] == [
        "Disk swap",
        "Network work",
        "Mail server upgrade",
    ]
    for marker in (*MARKERS, "SECRET-CANCELLED", "Old work"):
        assert marker.encode() not in raw

    upgrade = found[2]
    pk = maintenance["upcoming"].pk
    assert str(upgrade["UID"]) == f"maintenance-{pk}@status.example.com"
    assert upgrade.decoded("DTSTART") == NOW + dt.timedelta(days=2)
    assert upgrade.decoded("DTSTART").utcoffset() == dt.timedelta(0)
    assert upgrade.decoded("DTEND") == NOW + dt.timedelta(days=2, hours=2)
    assert b"DTSTART:20250617T120000Z" in raw
    assert upgrade.decoded("DTSTAMP").utcoffset() == dt.timedelta(0)
    assert str(upgrade["URL"]) == f"{SITE}/history/#maintenance-{pk}"
    assert str(upgrade["STATUS"]) == "CONFIRMED"
    assert str(upgrade["DESCRIPTION"]) == "Mail may queue.\n\nAffected services: Mail & <Chat>"
    assert int(upgrade["SEQUENCE"]) == 0
    assert "DESCRIPTION" not in found[1]  # nothing public to say about the network work


def test_the_calendar_is_the_same_across_builds(maintenance):
    first = feeds.maintenance_calendar(site_url=SITE, now=NOW)
    second = feeds.maintenance_calendar(site_url=SITE, now=NOW + dt.timedelta(minutes=5))
    assert [str(e["UID"]) for e in events(first)[1]] == [str(e["UID"]) for e in events(second)[1]]
    assert first == second


def test_an_empty_calendar_is_still_a_calendar(db):
    calendar, found = events(feeds.maintenance_calendar(site_url=SITE, now=NOW))
    assert found == []
    assert calendar["VERSION"] == "2.0"

"""The public pages, served from the published snapshot."""

import datetime as dt
import re
from pathlib import Path

import pytest
from django.utils import timezone

from incidents import workflow
from services import workflow as catalog
from services.models import CauseKind, ServiceGroup, ServiceStatus
from statuspage.models import PublishState, Snapshot
from statuspage.publish import publish
from tests.factories import SECURITY_GROUP, ServiceFactory, UserFactory
from tests.statuspage.conftest import published

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_reads(settings, tmp_path):
    settings.STATUS_PAGE_READ_CACHE_SECONDS = 0
    settings.STATUS_PAGE_DIR = str(tmp_path / "public")


def test_the_page_shows_banner_services_by_group_and_active_incidents(client, agent):
    payments = ServiceGroup.objects.create(name="Payments", display_order=1)
    card = ServiceFactory(name="Card payments", slug="card", group=payments)
    ServiceFactory(name="Website", slug="website")
    incident = published(
        agent,
        "Card payments fail",
        {card: ServiceStatus.MAJOR_OUTAGE},
        body="We are investigating.",
    )
    workflow.post_update(incident, actor=agent, body="work note: restarted pod-7")
    publish()

    response = client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Major outage" in page
    assert page.index("Payments") < page.index("Card payments</span>")
    assert "Card payments fail" in page and "We are investigating." in page
    assert "pod-7" not in page
    assert f'href="/incidents/{incident.pk}/"' in page


def test_an_incident_page_and_404s_that_look_alike(client, agent):
    web = ServiceFactory(name="Website", slug="website")
    shown = published(agent, "Website slow", {web: ServiceStatus.DEGRADED_PERFORMANCE})
    hidden = workflow.create_incident(actor=agent, title="Unpublished", services=[web])
    security = UserFactory(username="sec", groups=[SECURITY_GROUP])
    secret = workflow.create_incident(
        actor=security, title="Secret breach", services=[web], is_confidential=True
    )
    workflow.post_update(
        secret, actor=security, body="Trouble.", is_public=True, public_status="identified"
    )
    publish()

    page = client.get(f"/incidents/{shown.pk}/")
    assert page.status_code == 200
    assert "Website slow" in page.content.decode() and "Website" in page.content.decode()
    bodies = {client.get(f"/incidents/{pk}/").content for pk in (hidden.pk, secret.pk, 999999)}
    assert {client.get(f"/incidents/{hidden.pk}/").status_code} == {404}
    assert len(bodies) == 1  # unpublished, confidential and missing look the same
    assert b"Secret breach" not in b"".join(bodies)


def test_readers_get_etag_last_modified_and_a_304(client, agent):
    ServiceFactory(name="Website", slug="website")
    publish()
    first = client.get("/")
    assert first["Cache-Control"].startswith("public, max-age=")
    again = client.get("/", headers={"if-none-match": first["ETag"]})
    assert again.status_code == 304
    since = client.get("/", headers={"if-modified-since": first["Last-Modified"]})
    assert since.status_code == 304


def test_a_reader_runs_one_query_whatever_the_page_holds(client, agent, django_assert_num_queries):
    services = [ServiceFactory(name=f"Service {n}", slug=f"s{n}") for n in range(5)]
    for n in range(3):
        published(agent, f"Trouble {n}", {services[n]: ServiceStatus.PARTIAL_OUTAGE})
    publish()
    with django_assert_num_queries(1):
        assert client.get("/").status_code == 200


def test_a_change_shows_after_the_next_publish_and_unchanged_pages_keep_their_etag(client, agent):
    web = ServiceFactory(name="Website", slug="website")
    incident = published(agent, "Website slow", {web: ServiceStatus.DEGRADED_PERFORMANCE})
    publish()
    before = client.get(f"/incidents/{incident.pk}/")["ETag"]
    index_before = client.get("/")["ETag"]
    publish()
    assert client.get(f"/incidents/{incident.pk}/")["ETag"] == before
    workflow.post_update(
        incident, actor=agent, body="Fixed a cache.", is_public=True, public_status="monitoring"
    )
    publish()
    assert "Fixed a cache." in client.get(f"/incidents/{incident.pk}/").content.decode()
    assert client.get("/")["ETag"] != index_before


def test_an_incident_made_confidential_disappears(client, agent):
    web = ServiceFactory(name="Website", slug="website")
    incident = published(agent, "Website down", {web: ServiceStatus.MAJOR_OUTAGE})
    publish()
    assert client.get(f"/incidents/{incident.pk}/").status_code == 200
    security = UserFactory(username="sec", groups=[SECURITY_GROUP])
    incident.refresh_from_db()
    workflow.edit(
        incident,
        actor=security,
        expected_version=incident.version,
        changes={"is_confidential": True},
    )
    publish()
    assert client.get(f"/incidents/{incident.pk}/").status_code == 404
    assert "Website down" not in client.get("/").content.decode()


def test_a_service_hurt_through_a_dependency_says_so_unless_pinned(client, agent):
    payments = ServiceFactory(name="Payments", slug="payments")
    checkout = ServiceFactory(name="Checkout", slug="checkout")
    ledger = ServiceFactory(name="Ledger", slug="ledger", is_public=False)
    reports = ServiceFactory(name="Reports", slug="reports")
    catalog.add_dependency(service=checkout, depends_on=payments)
    catalog.add_dependency(service=reports, depends_on=ledger)
    published(agent, "Payments down", {payments: ServiceStatus.MAJOR_OUTAGE})
    workflow.create_incident(
        actor=agent, title="Ledger slow", services={ledger: ServiceStatus.PARTIAL_OUTAGE}
    )
    publish()
    page = client.get("/").content.decode()
    assert "Degraded performance: depends on Payments" in page
    assert "depends on a service that is impaired" in page
    assert "Ledger" not in page

    catalog.set_service_status(checkout, status=ServiceStatus.OPERATIONAL, pinned=True)
    publish()
    assert "depends on Payments" not in client.get("/").content.decode()


def test_the_uptime_bar_shows_a_days_outage_minutes_and_incident(client, agent):
    web = ServiceFactory(name="Website", slug="website")
    web.created_at = timezone.now() - dt.timedelta(days=10)
    web.save()
    incident = published(agent, "Website down", {web: ServiceStatus.MAJOR_OUTAGE})
    workflow.resolve(incident, actor=agent, code="fixed", notes="ok")
    yesterday_noon = (timezone.now() - dt.timedelta(days=1)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    cause = (CauseKind.INCIDENT, incident.pk)
    catalog.rebuild_status_history(now=yesterday_noon - dt.timedelta(days=5))
    catalog.set_impacts(cause, {web.pk: ServiceStatus.MAJOR_OUTAGE}, at=yesterday_noon)
    catalog.end_impacts(cause, at=yesterday_noon + dt.timedelta(minutes=30))
    publish(full=True)

    page = client.get("/").content.decode()
    label = re.search(
        r'class="day st-major_outage" tabindex="0"[^>]*><span class="tip"[^>]*>([^<]+)<', page
    )
    assert label, "yesterday is red"
    assert "30 minutes of outage" in label.group(1) and "Website down" in label.group(1)
    assert "uptime" in page
    uptime = client.get("/uptime/website/")
    assert uptime.status_code == 200 and "Uptime by month" in uptime.content.decode()


def test_the_romanian_page(client, agent):
    ServiceFactory(name="Website", slug="website")
    publish()
    page = client.get("/ro/").content.decode()
    assert '<html lang="ro">' in page
    assert "Website" in page


def test_the_history_lists_incidents_by_month(client, agent):
    web = ServiceFactory(name="Website", slug="website")
    incident = published(agent, "Website down", {web: ServiceStatus.MAJOR_OUTAGE})
    publish()
    page = client.get("/history/").content.decode()
    month = timezone.now().strftime("%Y-%m")
    assert "Website down" in page and month in page
    assert "Website down" in client.get(f"/history/{month}/").content.decode()
    assert f"/incidents/{incident.pk}/" in page


def test_every_output_is_written_to_the_folder(settings, agent):
    web = ServiceFactory(name="Website", slug="website")
    incident = published(agent, "Website down", {web: ServiceStatus.MAJOR_OUTAGE})
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        publish()
    folder = Path(settings.STATUS_PAGE_DIR)
    assert "Website down" in (folder / "index.html").read_text()
    assert (folder / f"incidents/{incident.pk}/index.html").exists()
    assert (folder / "ro/index.html").exists()
    assert (folder / "static/statuspage/status.css").exists()
    assert not list(folder.rglob(".tmp-*"))


def test_a_publish_asked_for_before_the_last_one_started_is_skipped(agent):
    ServiceFactory(name="Website", slug="website")
    asked = timezone.now()
    publish()
    assert publish(requested_at=asked) is None
    later = PublishState.objects.get().started_at + dt.timedelta(seconds=1)
    assert publish(requested_at=later) is not None
    assert Snapshot.objects.filter(path="/").count() == 2  # en and ro


def test_the_statuspage_json_is_served_with_cors(client, agent):
    web = ServiceFactory(name="Website", slug="website")
    published(agent, "Website down", {web: ServiceStatus.MAJOR_OUTAGE})
    publish()
    response = client.get("/api/v2/summary.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    summary = response.json()
    assert summary["page"]["name"]
    assert [c["name"] for c in summary["components"]] == ["Website"]
    assert summary["incidents"][0]["name"] == "Website down"
    assert client.get("/api/v2/incidents/unresolved.json").status_code == 200
    assert client.get("/api/v2/nothing.json").status_code == 404


def test_feeds_calendar_and_badges_are_served_from_the_snapshot(client, agent):
    import feedparser
    from icalendar import Calendar

    web = ServiceFactory(name="Website", slug="website")
    published(agent, "Website down", {web: ServiceStatus.MAJOR_OUTAGE})
    publish()
    feed = feedparser.parse(client.get("/history.atom").content)
    assert [e.title for e in feed.entries] == ["Website down"]
    assert feedparser.parse(client.get("/history/website.rss").content).entries
    calendar = client.get("/maintenance.ics")
    assert calendar["Content-Type"].startswith("text/calendar")
    Calendar.from_ical(calendar.content)
    badge = client.get("/badge/website.svg")
    assert badge["Content-Type"] == "image/svg+xml" and b"Website" in badge.content
    assert client.get("/badge/nothing.svg").status_code == 404


def test_under_a_stream_of_changes_the_second_step_waits_its_interval(
    client, agent, settings, monkeypatch
):
    from statuspage import publish as publishing

    settings.STATUS_PAGE_REST_INTERVAL = 60
    later = []
    monkeypatch.setattr(publishing, "_publish_rest_later", later.append)
    web = ServiceFactory(name="Website", slug="website")
    incident = published(agent, "Website slow", {web: ServiceStatus.DEGRADED_PERFORMANCE})
    publish()  # the first publish does both steps
    assert later == []
    workflow.post_update(
        incident,
        actor=agent,
        body="Fixed a cache.",
        body_ro="Am reparat un cache.",
        is_public=True,
        public_status="monitoring",
    )
    asked = timezone.now()
    publish()
    # The English page and the JSON at once; the Romanian page and the feeds wait.
    assert "Fixed a cache." in client.get(f"/incidents/{incident.pk}/").content.decode()
    assert "Fixed a cache." in client.get("/api/v2/summary.json").content.decode()
    assert "Am reparat" not in client.get(f"/ro/incidents/{incident.pk}/").content.decode()
    assert "Fixed a cache." not in client.get("/history.atom").content.decode()
    (countdown,) = later
    assert 0 < countdown <= 60

    publish(rest_only=True, requested_at=asked)  # what the scheduled task does
    assert "Am reparat un cache." in client.get(f"/ro/incidents/{incident.pk}/").content.decode()
    assert "Fixed a cache." in client.get("/history.atom").content.decode()
    assert publish(rest_only=True, requested_at=asked) is None  # covered: one second step

"""The public read model (``statuspage.public``): what any public output may show."""

import datetime as dt

import pytest

from incidents import workflow
from services.models import MaintenanceStatus, MaintenanceWindow, ServiceStatus
from statuspage import public
from tests.factories import ServiceFactory
from tests.statuspage.conftest import published

pytestmark = pytest.mark.django_db


def test_only_published_non_confidential_incidents_are_public(agent, security):
    web = ServiceFactory(name="Website", slug="website")
    shown = published(agent, "Website down", {web: ServiceStatus.MAJOR_OUTAGE})
    workflow.create_incident(actor=agent, title="Unpublished", services=[web])
    secret = workflow.create_incident(
        actor=security, title="Secret", services=[web], is_confidential=True
    )
    workflow.post_update(
        secret, actor=security, body="We see trouble.", is_public=True, public_status="identified"
    )

    assert [i.pk for i in public.public_incidents()] == [shown.pk]
    assert public.public_incident(secret.pk) is None
    assert public.public_incident(shown.pk).title == "Website down"
    assert [i.pk for i in public.active_incidents()] == [shown.pk]


def test_public_incidents_carry_only_public_updates_and_public_services(agent):
    web = ServiceFactory(name="Website", slug="website")
    ledger = ServiceFactory(name="Internal ledger", slug="ledger", is_public=False)
    incident = published(
        agent,
        "Checkout fails",
        {web: ServiceStatus.MAJOR_OUTAGE, ledger: ServiceStatus.DEGRADED_PERFORMANCE},
    )
    workflow.post_update(incident, actor=agent, body="work note: restarted pod-7", is_public=False)

    (found,) = public.public_incidents()
    assert [u.body for u in found.public_updates] == ["Investigating."]
    assert [s.name for s in found.public_services] == ["Website"]
    assert [s.name for s in public.public_services()] == ["Website"]


def test_resolved_incidents_leave_the_active_list(agent):
    web = ServiceFactory(name="Website", slug="website")
    incident = published(agent, "Website down", {web: ServiceStatus.MAJOR_OUTAGE})
    workflow.resolve(incident, actor=agent, code="fixed", notes="n", public_message="Fixed.")
    assert list(public.active_incidents()) == []
    (found,) = public.public_incidents()
    assert found.public_updates[0].body == "Fixed."


def test_cancelled_maintenance_is_not_announced():
    now = dt.datetime.now(dt.UTC)
    web = ServiceFactory(name="Website", slug="website")
    soon = MaintenanceWindow.objects.create(
        title="Database upgrade",
        scheduled_start=now + dt.timedelta(hours=1),
        scheduled_end=now + dt.timedelta(hours=2),
    )
    soon.services.add(web)
    MaintenanceWindow.objects.create(
        title="Called off",
        scheduled_start=now + dt.timedelta(hours=1),
        scheduled_end=now + dt.timedelta(hours=2),
        status=MaintenanceStatus.CANCELLED,
    )
    assert [m.title for m in public.upcoming_maintenance()] == ["Database upgrade"]
    assert [s.slug for s in public.upcoming_maintenance()[0].public_services] == ["website"]


def test_the_overall_status_is_the_worst():
    assert public.overall_status([]) == ServiceStatus.OPERATIONAL
    assert (
        public.overall_status([ServiceStatus.DEGRADED_PERFORMANCE, ServiceStatus.MAJOR_OUTAGE])
        == ServiceStatus.MAJOR_OUTAGE
    )


def test_a_private_service_touches_nothing_public(agent):
    web = ServiceFactory(name="Website", slug="website")
    ledger = ServiceFactory(name="Internal ledger", slug="ledger", is_public=False)
    published(
        agent, "Both down", {web: ServiceStatus.MAJOR_OUTAGE, ledger: ServiceStatus.MAJOR_OUTAGE}
    )
    now = dt.datetime.now(dt.UTC)
    window = MaintenanceWindow.objects.create(
        title="Ledger and web work",
        scheduled_start=now + dt.timedelta(hours=1),
        scheduled_end=now + dt.timedelta(hours=2),
    )
    window.services.add(web, ledger)

    assert public.public_service("ledger") is None
    assert public.public_service("website") == web
    assert list(public.incidents_touching(ledger)) == []
    assert list(public.maintenance_touching(ledger)) == []
    assert [i.title for i in public.incidents_touching(web)] == ["Both down"]
    assert [m.title for m in public.maintenance_touching(web)] == ["Ledger and web work"]


def test_the_calendar_keeps_a_month_of_ended_maintenance():
    now = dt.datetime(2025, 6, 15, 12, tzinfo=dt.UTC)

    def window(title, days_ago, status):
        start = now - dt.timedelta(days=days_ago)
        MaintenanceWindow.objects.create(
            title=title,
            scheduled_start=start,
            scheduled_end=start + dt.timedelta(hours=1),
            status=status,
        )

    window("Ended 29 days ago", 29, MaintenanceStatus.COMPLETED)
    window("Ended 31 days ago", 31, MaintenanceStatus.COMPLETED)
    window("Overrunning", 45, MaintenanceStatus.IN_PROGRESS)
    window("Tomorrow", -1, MaintenanceStatus.SCHEDULED)
    window("Called off", -1, MaintenanceStatus.CANCELLED)
    assert [m.title for m in public.calendar_maintenance(now)] == [
        "Overrunning",
        "Ended 29 days ago",
        "Tomorrow",
    ]

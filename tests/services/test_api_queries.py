"""Every catalog list takes the same number of queries for a page of 10 and of 100 rows, each
row with its related rows (dependencies, targets, hours, services), for a staff token and for
an organisation's token (whose ``visible_to`` adds its WHERE, not a query)."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from itsm import tokens
from services.models import (
    BusinessCalendar,
    BusinessHours,
    Contact,
    Holiday,
    MaintenanceWindow,
    Organization,
    Service,
    ServiceDependency,
    ServiceGroup,
    ServiceStatusInterval,
    SlaPolicy,
    SlaTarget,
    Subscription,
)

pytestmark = pytest.mark.django_db
ROWS = 100


@pytest.fixture
def catalog():
    """100 of each catalog row, in bulk (the query counts, not the writes, are under test)."""
    acme = Organization.objects.create(name="Acme", slug="acme")
    group = ServiceGroup.objects.create(name="Payments")
    team = Group.objects.create(name="Payments team")
    calendars = BusinessCalendar.objects.bulk_create(
        BusinessCalendar(name=f"Calendar {n}", time_zone="Europe/Bucharest") for n in range(ROWS)
    )
    BusinessHours.objects.bulk_create(
        BusinessHours(calendar=c, weekday=d, opens_at=dt.time(9), closes_at=dt.time(17))
        for c in calendars
        for d in range(5)
    )
    Holiday.objects.bulk_create(Holiday(calendar=c, date=dt.date(2026, 12, 25)) for c in calendars)
    policies = SlaPolicy.objects.bulk_create(
        SlaPolicy(name=f"Policy {n}", calendar=c) for n, c in enumerate(calendars)
    )
    SlaTarget.objects.bulk_create(
        SlaTarget(
            policy=p,
            priority=priority,
            response_target=dt.timedelta(minutes=15),
            resolution_target=dt.timedelta(hours=4),
        )
        for p in policies
        for priority in range(1, 6)
    )
    base = Service.objects.bulk_create(
        Service(name=f"Base {n}", slug=f"base-{n}", is_public=n == 0) for n in range(2)
    )
    services = Service.objects.bulk_create(
        Service(
            name=f"Service {n:03}",
            slug=f"service-{n:03}",
            group=group,
            owner_team=team,
            default_sla_policy=policies[n],
        )
        for n in range(ROWS)
    )
    ServiceDependency.objects.bulk_create(
        ServiceDependency(service=s, depends_on=b) for s in services for b in base
    )
    contacts = Contact.objects.bulk_create(
        Contact(organization=acme, name=f"Contact {n}", email=f"c{n}@acme.example.com")
        for n in range(ROWS)
    )
    Subscription.objects.bulk_create(
        Subscription(service=services[n], contact=contacts[n]) for n in range(ROWS)
    )
    Organization.objects.bulk_create(
        Organization(name=f"Customer {n}", slug=f"customer-{n}") for n in range(ROWS)
    )
    start = timezone.now() + dt.timedelta(days=1)
    windows = MaintenanceWindow.objects.bulk_create(
        MaintenanceWindow(
            title=f"Window {n}",
            scheduled_start=start + dt.timedelta(hours=n),
            scheduled_end=start + dt.timedelta(hours=n + 1),
        )
        for n in range(ROWS)
    )
    MaintenanceWindow.services.through.objects.bulk_create(
        MaintenanceWindow.services.through(maintenancewindow=w, service=s)
        for w, s in zip(windows, services, strict=True)
    ) + MaintenanceWindow.services.through.objects.bulk_create(
        MaintenanceWindow.services.through(maintenancewindow=w, service=base[1]) for w in windows
    )
    then = timezone.now() - dt.timedelta(days=ROWS)
    ServiceStatusInterval.objects.bulk_create(
        ServiceStatusInterval(
            service=services[0],
            status="degraded_performance" if n % 2 else "operational",
            cause_kind="incident" if n % 2 else "",
            cause_id=n if n % 2 else None,
            valid_from=then + dt.timedelta(days=n),
            valid_to=then + dt.timedelta(days=n + 1),
        )
        for n in range(ROWS)
    )
    return {"acme": acme, "service": services[0]}


def counts(client, url):
    """The queries of the page of 10 and of 100 (after a first call that stamps the token's
    last use, a write made once a minute)."""
    assert client.get(f"{url}page_size=1").status_code == 200
    found = []
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"{url}page_size={size}")
        assert page.status_code == 200, page.content
        assert len(page.json()["results"]) == size, url
        found.append(len(queries))
    print("QUERIES", url, found)
    return found


LISTS = [
    ("/api/v1/services/?", 4),
    ("/api/v1/organizations/?", 3),
    ("/api/v1/contacts/?", 3),
    ("/api/v1/subscriptions/?", 3),
    ("/api/v1/sla-policies/?", 4),
    ("/api/v1/calendars/?", 5),
    ("/api/v1/maintenance/?", 4),
]


def caller(organization=None):
    _token, secret = tokens.issue(name="t", scopes=["read"], organization=organization)
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.mark.slow
@pytest.mark.parametrize(("url", "most"), LISTS)
def test_a_list_takes_the_same_queries_at_10_and_100_rows(catalog, url, most):
    small, large = counts(caller(), url)
    assert small == large <= most


@pytest.mark.slow
@pytest.mark.parametrize(
    ("url", "most"),
    [(u, m) for u, m in LISTS if "organizations" not in u],  # it sees one organisation
)
def test_an_organisations_token_takes_the_same_queries(catalog, url, most):
    small, large = counts(caller(catalog["acme"]), url)
    assert small == large <= most


@pytest.mark.slow
def test_the_status_history_takes_the_same_queries_at_10_and_100_rows(catalog):
    url = f"/api/v1/services/{catalog['service'].pk}/status-history/?"
    small, large = counts(caller(), url)
    assert small == large <= 4

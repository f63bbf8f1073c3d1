"""incidents.metrics, the dashboard, its CSV and /api/v1/metrics/ against figures computed by
hand for a small fixed data set (24×7 policy: P1 15 min / 1 h, P3 1 h / 8 h; Payments costs 600
an hour in major outage, 300 in partial).

    A  P1, Payments major, group Network, opened 2 March 10:00, acknowledged +10 min,
       resolved +40, reopened +50, resolved +55: MTTA 600 s, MTTR 3,300 s, both targets met
       (the 10 minutes resolved do not count). Downtime 45 min, 450.00.
    B  P3, Payments partial, group Apps, Acme's, opened 11:00, acknowledged +90 min (response
       breached), resolved +5 h: MTTA 5,400 s, MTTR 18,000 s. Downtime 5 h, 1,500.00.
    C  P3, no service, no group, opened 1 April 12:00, still open: counted, no outcome yet.

Range March–April: 3 incidents; MTTA and time to respond 3,000 s; MTTR 10,650 s; compliance
1 of 2 = 50 %; 1 response breach; Payments 2 incidents, 345 min down, 1,950.00.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from incidents import metrics, workflow
from incidents.models import Incident
from itsm import tokens
from services.models import ServiceStatus
from tests.factories import GroupFactory, OrganizationFactory

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
MARCH, MAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def acme(db):
    return OrganizationFactory(name="Acme")


@pytest.fixture
def data_set(agent, service, acme):
    service.cost_major_per_hour = Decimal("600")
    service.cost_partial_per_hour = Decimal("300")
    service.save()
    network, apps = GroupFactory(name="Network"), GroupFactory(name="Apps")
    a = workflow.create_incident(
        actor=agent,
        title="A",
        impact=1,
        urgency=1,
        services={service: ServiceStatus.MAJOR_OUTAGE},
        assignment_group=network,
        now=at(0),
    )
    a = workflow.acknowledge(a, actor=agent, now=at(10))
    a = workflow.resolve(a, actor=agent, code="fixed", notes="ok", now=at(40))
    a = workflow.reopen(a, actor=agent, reason="again", now=at(50))
    a = workflow.resolve(a, actor=agent, code="fixed", notes="ok", now=at(55))
    b = workflow.create_incident(
        actor=agent,
        title="B",
        services={service: ServiceStatus.PARTIAL_OUTAGE},
        assignment_group=apps,
        organization=acme,
        now=at(60),
    )
    b = workflow.acknowledge(b, actor=agent, now=at(150))
    b = workflow.resolve(b, actor=agent, code="fixed", notes="ok", now=at(60 + 300))
    c = workflow.create_incident(
        actor=agent, title="C", now=dt.datetime(2026, 4, 1, 12, 0, tzinfo=dt.UTC)
    )
    return {"a": a, "b": b, "c": c, "network": network, "apps": apps}


NOW = dt.datetime(2026, 5, 10, tzinfo=dt.UTC)
DASHBOARD = "admin:incidents_incidentmetrics_changelist"


def test_figures_by_hand(data_set, service):
    report = metrics.report(start=MARCH, end=MAY, now=NOW)
    total = report.total
    assert total.incidents == 3
    assert total.mtta_seconds == 3000 and total.respond_seconds == 3000
    assert total.mttr_seconds == 10650
    assert (total.decided, total.met, total.compliance) == (2, 1, 0.5)
    assert (total.response_breaches, total.resolution_breaches) == (1, 0)
    assert total.downtime_minutes == 345 and total.cost == Decimal("1950.00")

    march, april = report.by_month
    assert (march.label, march.incidents, march.mttr_seconds) == ("2026-03", 2, 10650)
    assert march.cost == Decimal("1950.00") and march.downtime_seconds == 20700
    assert (april.label, april.incidents, april.mttr_seconds, april.cost) == (
        "2026-04",
        1,
        None,
        0,
    )
    assert april.compliance is None

    assert [(f.label, f.incidents) for f in report.by_priority] == [("P1", 1), ("P3", 2)]
    assert {f.label: f.incidents for f in report.by_group} == {"Apps": 1, "Network": 1, "—": 1}
    assert {f.label: f.mtta_seconds for f in report.by_group}["Apps"] == 5400
    (payments,) = report.by_service
    assert (payments.label, payments.incidents, payments.downtime_minutes) == ("Payments", 2, 345)
    assert payments.cost == Decimal("1950.00") and payments.compliance == 0.5


def test_a_range_clips_downtime_and_counts_what_opened_in_it(data_set):
    # 2 March 12:00–13:00 only: no incident opened then; B's partial outage runs through it.
    start = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    report = metrics.report(start=start, end=start + dt.timedelta(hours=1), now=NOW)
    assert report.total.incidents == 0
    assert report.total.downtime_minutes == 60 and report.total.cost == Decimal("300.00")


def test_constant_number_of_queries(data_set, django_assert_num_queries):
    with django_assert_num_queries(3):
        metrics.report(start=MARCH, end=MAY, now=NOW)


def test_the_api_gives_an_organisation_token_its_own_incidents_only(client, data_set, acme):
    _token, secret = tokens.issue(name="acme", scopes=["read"], organization=acme)
    response = client.get(
        reverse("api-metrics"),
        {"start": "2026-03-01", "end": "2026-04-30"},
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["total"]["incidents"] == 1
    assert body["total"]["cost"] == "1500.00"
    assert body["total"]["mtta_seconds"] == 5400
    assert [s["label"] for s in body["by_service"]] == ["Payments"]


def test_the_api_refuses_a_bad_range_per_field(client, data_set):
    _token, secret = tokens.issue(name="all", scopes=["read"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    response = client.get(reverse("api-metrics"), {"start": "yesterday"}, **auth)
    assert response.status_code == 400
    assert "start" in response.json()
    response = client.get(
        reverse("api-metrics"), {"start": "2026-04-01", "end": "2026-03-01"}, **auth
    )
    assert response.status_code == 400 and "end" in response.json()
    response = client.get(reverse("api-metrics"), {"start": "2026-03-01"}, **auth)
    assert response.status_code == 200
    assert response.json()["total"]["incidents"] == 3
    assert Incident.objects.count() == 3


def test_the_dashboard_shows_charts_with_text_alternatives(admin_client, data_set):
    response = admin_client.get(reverse(DASHBOARD), {"start": "2026-03-01", "end": "2026-04-30"})
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<svg") >= 4
    assert 'role="img"' in page and "<title" in page
    assert "2026-03" in page and "Payments" in page and "1,950.00" in page
    assert reverse(DASHBOARD) in admin_client.get(reverse("admin:index")).content.decode()


def test_the_csv_export_has_a_row_per_group(admin_client, data_set):
    response = admin_client.get(
        reverse(DASHBOARD),
        {"start": "2026-03-01", "end": "2026-04-30", "format": "csv"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("grouping,key,incidents")
    assert any(line.startswith("service,Payments,2,") and "1950.00" in line for line in lines)
    assert any(line.startswith("month,2026-03,2,") for line in lines)

"""The cost of downtime (incidents.cost) against figures computed by hand.

Payments costs 600 an hour in major outage, 300 in partial, 60 degraded; Checkout depends on
Payments and costs 120 an hour degraded. The scripted incident (``scripted``):

    T0      opened, Payments in major outage (Checkout degraded through the dependency)
    T0+30   on hold (the services are still down: the cost runs on)
    T0+45   resumed
    T0+60   resolved: the impacts end
    T0+90   reopened: the impacts start again
    T0+120  resolved

Payments 90 min major = 900.00, Checkout 90 min degraded = 180.00: 1,080.00.
"""

import datetime as dt
from decimal import Decimal

import pytest

from incidents import workflow
from incidents.cost import (
    IncidentCost,
    Rates,
    Span,
    dependents_closure,
    incident_cost,
    running_costs,
)
from incidents.models import ResolutionCode
from services import workflow as catalog
from services.models import CauseKind, Contract, ServiceStatus
from tests.factories import OrganizationFactory, ServiceFactory

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
MAJOR, PARTIAL, DEGRADED = (
    ServiceStatus.MAJOR_OUTAGE,
    ServiceStatus.PARTIAL_OUTAGE,
    ServiceStatus.DEGRADED_PERFORMANCE,
)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def payments(service):
    service.cost_major_per_hour = Decimal("600")
    service.cost_partial_per_hour = Decimal("300")
    service.cost_degraded_per_hour = Decimal("60")
    service.save()
    return service


@pytest.fixture
def checkout(payments):
    checkout = ServiceFactory(name="Checkout", cost_degraded_per_hour=Decimal("120"))
    catalog.add_dependency(service=checkout, depends_on=payments)
    return checkout


def open_incident(agent, payments, organization=None, status=MAJOR, minute=0):
    return workflow.create_incident(
        actor=agent,
        title="Card payments fail",
        impact=1,
        urgency=1,
        services={payments: status},
        organization=organization,
        now=at(minute),
    )


def resolve(incident, agent, minute):
    return workflow.resolve(
        incident, actor=agent, code=ResolutionCode.FIXED, notes="Rolled back", now=at(minute)
    )


@pytest.fixture
def scripted(agent, payments, checkout):
    incident = open_incident(agent, payments)
    incident = workflow.hold(incident, actor=agent, reason="Waiting on the bank", now=at(30))
    incident = workflow.resume(incident, actor=agent, now=at(45))
    incident = resolve(incident, agent, 60)
    incident = workflow.reopen(incident, actor=agent, reason="Failing again", now=at(90))
    return resolve(incident, agent, 120)


def cost_of(incident, minute):
    return running_costs([incident], now=at(minute))[incident.pk]


def test_reopen_hold_and_dependency_by_hand(scripted, payments, checkout):
    cost = cost_of(scripted, 180)
    assert cost.total == Decimal("1080.00")
    assert cost.per_hour_now == 0
    lines = {line.service_id: line for line in cost.services}
    assert lines[payments.pk].seconds == {MAJOR: 90 * 60}
    assert lines[payments.pk].cost == Decimal("900.00") and not lines[payments.pk].derived
    assert lines[checkout.pk].seconds == {DEGRADED: 90 * 60}
    assert lines[checkout.pk].cost == Decimal("180.00") and lines[checkout.pk].derived


def test_running_cost_grows_while_open_and_stops_while_resolved(scripted):
    # Resolved at T0+60, looked at T0+75: 60 min of both, nothing running.
    assert cost_of(scripted, 75).total == Decimal("720.00")
    assert cost_of(scripted, 75).per_hour_now == 0
    # Reopened at T0+90, looked at T0+100: 70 min of both, rising by 600 + 120 an hour.
    during = cost_of(scripted, 100)
    assert during.total == Decimal("840.00")
    assert during.per_hour_now == Decimal("720")


def test_maintenance_on_the_service_costs_nothing(scripted, payments, checkout):
    window = catalog.schedule_maintenance(
        title="Database upgrade",
        services=[payments],
        scheduled_start=at(100),
        scheduled_end=at(110),
    )
    cause = (CauseKind.MAINTENANCE, window.pk)
    catalog.set_impacts(cause, {payments: ServiceStatus.UNDER_MAINTENANCE}, at=at(100))
    catalog.end_impacts(cause, at=at(110))
    cost = cost_of(scripted, 180)
    lines = {line.service_id: line for line in cost.services}
    # Payments loses the 10 maintenance minutes; Checkout was not under maintenance.
    assert lines[payments.pk].seconds == {MAJOR: 80 * 60}
    assert lines[checkout.pk].seconds == {DEGRADED: 90 * 60}
    assert cost.total == Decimal("980.00")


def test_a_contract_sets_the_organisations_own_rates(agent, payments, checkout, policy):
    customer = OrganizationFactory()
    Contract.objects.create(
        organization=customer,
        service=payments,
        sla_policy=policy,
        cost_major_per_hour=Decimal("1200"),
    )
    incident = resolve(open_incident(agent, payments, organization=customer), agent, 30)
    other = resolve(open_incident(agent, payments), agent, 30)
    costs = running_costs([incident, other], now=at(60))
    # 30 min: Payments at the contract's 1,200 (600.00), Checkout at its own 120 (60.00).
    assert costs[incident.pk].total == Decimal("660.00")
    assert costs[other.pk].total == Decimal("360.00")


def test_a_status_change_is_priced_from_when_it_changed(agent, payments, checkout):
    incident = open_incident(agent, payments, status=PARTIAL)
    incident = workflow.set_affected_services(
        incident, actor=agent, services={payments: MAJOR}, now=at(20)
    )
    cost = cost_of(resolve(incident, agent, 30), 40)
    # 20 min partial (100.00) + 10 min major (100.00) + 30 min Checkout degraded (60.00).
    assert cost.total == Decimal("260.00")


def test_no_impact_no_cost(agent, payments):
    incident = workflow.create_incident(actor=agent, title="A question", now=T0)
    assert running_costs([incident], now=at(60)) == {incident.pk: IncidentCost()}


def test_two_hurt_dependencies_count_each_instant_once():
    # Checkout (3) depends on Payments (1) and Sign-in (2), both hurt 10:00-11:00 by one
    # incident; Checkout is degraded for that hour, once, and in major outage itself for the
    # last half hour (worse wins).
    dependents = dependents_closure([(3, 1), (3, 2)])
    impacts = [
        Span(1, MAJOR, at(0), at(60)),
        Span(2, PARTIAL, at(0), at(60)),
        Span(3, MAJOR, at(30), at(60)),
    ]
    rates = {3: Rates(major=Decimal("100"), degraded=Decimal("10"))}
    cost = incident_cost(impacts, rates=rates, dependents=dependents, now=at(120))
    (line,) = [line for line in cost.services if line.service_id == 3]
    assert line.seconds == {DEGRADED: 30 * 60, MAJOR: 30 * 60}
    assert line.cost == Decimal("55.00")


def test_dependents_closure_is_transitive_and_survives_a_cycle():
    assert dependents_closure([(2, 1), (3, 2), (1, 3)]) == {1: {2, 3}, 2: {3, 1}, 3: {1, 2}}


def test_the_queue_and_the_change_page_show_the_cost(admin_client, scripted, agent, payments):
    running = open_incident(agent, payments, minute=-60 * 24 * 365)  # open for a year and more
    queue = admin_client.get("/admin/incidents/incident/").content.decode()
    assert "EUR 1,080.00" in queue
    assert "still rising by EUR 720.00 an hour" in queue  # the open one: 600 + 120 an hour
    page = admin_client.get(f"/admin/incidents/incident/{scripted.pk}/change/").content.decode()
    assert "EUR 1,080.00" in page
    assert "Checkout (through a dependency): Degraded performance 1 h 30 min — EUR 180.00" in page
    page = admin_client.get(f"/admin/incidents/incident/{running.pk}/change/").content.decode()
    assert "so far, rising by EUR 720.00 an hour" in page

"""The catalog's history: impacts as intervals, the status history of each service, pins,
maintenance, and the rebuild used by the migration and the demo."""

import datetime as dt

import pytest
from django.db.models import DurationField, ExpressionWrapper, F, Sum
from django.db.models.functions import Coalesce

from incidents import workflow
from services.history import Impact, Interval, status_intervals
from services.models import (
    CauseKind,
    MaintenanceStatus,
    ServiceImpact,
    ServiceStatus,
    ServiceStatusInterval,
)
from services.workflow import (
    end_impacts,
    move_maintenance,
    rebuild_status_history,
    schedule_maintenance,
    set_impacts,
    set_service_status,
)
from tests.factories import AGENT_GROUP, ServiceFactory, UserFactory

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
MAJOR, PARTIAL = ServiceStatus.MAJOR_OUTAGE, ServiceStatus.PARTIAL_OUTAGE
OPERATIONAL = ServiceStatus.OPERATIONAL


def hours(n):
    return T0 + dt.timedelta(hours=n)


def history(service):
    return list(
        ServiceStatusInterval.objects.filter(service=service)
        .order_by("valid_from", "id")
        .values_list("status", "cause_kind", "cause_id", "valid_from", "valid_to")
    )


@pytest.fixture
def payments(db):
    return ServiceFactory(name="Payments", slug="payments")


@pytest.fixture
def agent(db):
    return UserFactory(username="agent", groups=[AGENT_GROUP])


def test_an_incident_leaves_its_impact_and_the_status_history(payments, agent):
    incident = workflow.create_incident(
        actor=agent, title="Cards fail", services={payments: MAJOR}, now=hours(0)
    )
    workflow.set_affected_services(
        incident, actor=agent, services={payments: PARTIAL}, now=hours(1)
    )
    workflow.resolve(incident, actor=agent, code="fixed", notes="Restarted", now=hours(3))

    impacts = ServiceImpact.objects.filter(cause_kind="incident", cause_id=incident.pk)
    assert list(impacts.values_list("status", "valid_from", "valid_to")) == [
        (MAJOR, hours(0), hours(1)),
        (PARTIAL, hours(1), hours(3)),
    ]
    assert history(payments) == [
        (MAJOR, "incident", incident.pk, hours(0), hours(1)),
        (PARTIAL, "incident", incident.pk, hours(1), hours(3)),
        (OPERATIONAL, "", None, hours(3), None),
    ]


def test_how_long_was_payments_in_major_outage_because_of_an_incident_is_one_query(
    payments, agent, django_assert_num_queries
):
    incident = workflow.create_incident(
        actor=agent, title="Cards fail", services={payments: MAJOR}, now=hours(0)
    )
    workflow.resolve(incident, actor=agent, code="fixed", notes="Restarted", now=hours(2))
    workflow.reopen(incident, actor=agent, reason="Back again", now=hours(5))
    workflow.resolve(incident, actor=agent, code="fixed", notes="For good", now=hours(5.5))

    with django_assert_num_queries(1):
        total = ServiceImpact.objects.filter(
            cause_kind=CauseKind.INCIDENT, cause_id=incident.pk, service=payments, status=MAJOR
        ).aggregate(
            total=Sum(
                ExpressionWrapper(
                    Coalesce(F("valid_to"), hours(24)) - F("valid_from"),
                    output_field=DurationField(),
                )
            )
        )["total"]
    assert total == dt.timedelta(hours=2.5)  # not the 5.5 h from opening to the last resolution


def test_status_of_a_service_over_a_range(payments, agent):
    first = workflow.create_incident(
        actor=agent, title="Slow", services={payments: PARTIAL}, now=hours(0)
    )
    second = workflow.create_incident(
        actor=agent, title="Down", services={payments: MAJOR}, now=hours(1)
    )
    workflow.resolve(second, actor=agent, code="fixed", notes="x", now=hours(2))
    workflow.resolve(first, actor=agent, code="fixed", notes="x", now=hours(4))

    over = ServiceStatusInterval.objects.filter(service=payments).overlapping(hours(1.5), hours(3))
    assert list(over.values_list("status", "cause_id")) == [
        (MAJOR, second.pk),
        (PARTIAL, first.pk),  # the worse incident ended; the first one still hurt
    ]


def test_a_pin_leaves_a_record_and_unpinning_returns_to_the_derived_status(payments, agent):
    workflow.create_incident(actor=agent, title="Down", services={payments: MAJOR}, now=hours(0))
    set_service_status(
        payments, status=ServiceStatus.DEGRADED_PERFORMANCE, pinned=True, at=hours(1)
    )
    payments.refresh_from_db()
    assert payments.status == ServiceStatus.DEGRADED_PERFORMANCE
    set_service_status(payments, status=payments.status, pinned=False, at=hours(2))

    assert [(s, k, f, t) for s, k, _id, f, t in history(payments)] == [
        (MAJOR, "incident", hours(0), hours(1)),
        (ServiceStatus.DEGRADED_PERFORMANCE, "pin", hours(1), hours(2)),
        (MAJOR, "incident", hours(2), None),
    ]


def test_maintenance_is_a_cause_like_an_incident(payments):
    window = schedule_maintenance(
        title="Upgrade", services=[payments], scheduled_start=hours(0), scheduled_end=hours(2)
    )
    move_maintenance(window, to=MaintenanceStatus.IN_PROGRESS)
    payments.refresh_from_db()
    assert payments.status == ServiceStatus.UNDER_MAINTENANCE
    move_maintenance(window, to=MaintenanceStatus.COMPLETED)
    payments.refresh_from_db()
    assert payments.status == OPERATIONAL
    # (Before it, the service was operational since it was created.)
    assert [(s, k, i, t is None) for s, k, i, _f, t in history(payments)] == [
        (OPERATIONAL, "", None, False),
        (ServiceStatus.UNDER_MAINTENANCE, "maintenance", window.pk, False),
        (OPERATIONAL, "", None, True),
    ]


def test_set_impacts_writes_only_what_changed(payments):
    other = ServiceFactory()
    set_impacts(("incident", 7), {payments: MAJOR, other: PARTIAL}, at=hours(0))
    set_impacts(("incident", 7), {payments: MAJOR}, at=hours(1))
    end_impacts(("incident", 7), at=hours(2))
    assert list(
        ServiceImpact.objects.order_by("service_id").values_list("service_id", "valid_to")
    ) == sorted([(payments.pk, hours(2)), (other.pk, hours(1))])


def test_status_intervals_takes_the_worst_open_impact():
    impacts = [
        Impact(PARTIAL, "incident", 1, hours(0), hours(4)),
        Impact(MAJOR, "incident", 2, hours(1), hours(2)),
        Impact(ServiceStatus.UNDER_MAINTENANCE, "maintenance", 3, hours(3), None),
    ]
    assert status_intervals(impacts, hours(-1)) == [
        Interval(OPERATIONAL, "", None, hours(-1), hours(0)),
        Interval(PARTIAL, "incident", 1, hours(0), hours(1)),
        Interval(MAJOR, "incident", 2, hours(1), hours(2)),
        Interval(PARTIAL, "incident", 1, hours(2), hours(4)),  # outage beats maintenance
        Interval(ServiceStatus.UNDER_MAINTENANCE, "maintenance", 3, hours(4), None),
    ]


def test_rebuild_orders_a_history_written_out_of_time_order(payments, agent):
    """The demo plays each incident's life to the end before the next one, though they overlap."""
    first = workflow.create_incident(
        actor=agent, title="A", services={payments: PARTIAL}, now=hours(0)
    )
    workflow.resolve(first, actor=agent, code="fixed", notes="x", now=hours(3))
    second = workflow.create_incident(
        actor=agent, title="B", services={payments: MAJOR}, now=hours(1)
    )
    workflow.resolve(second, actor=agent, code="fixed", notes="x", now=hours(2))

    rebuild_status_history(now=hours(10))
    assert [(s, i, f, t) for s, _k, i, f, t in history(payments) if f >= hours(0)] == [
        (PARTIAL, first.pk, hours(0), hours(1)),
        (MAJOR, second.pk, hours(1), hours(2)),
        (PARTIAL, first.pk, hours(2), hours(3)),
        (OPERATIONAL, None, hours(3), None),
    ]


def test_the_demo_history_carries_the_demo_times(db, monkeypatch):
    """The demo's incidents span 90 days: so do the history rows, each service's intervals
    follow one another without gap or overlap, and the open one is the current status."""
    import io

    from django.core.management import call_command
    from django.utils import timezone

    import incidents.demo
    from services.models import Service

    monkeypatch.setattr(incidents.demo, "HISTORY_SIZE", 40)
    call_command("load_demo", stdout=io.StringIO(), stderr=io.StringIO())

    now = timezone.now()
    assert ServiceImpact.objects.filter(valid_from__lt=now - dt.timedelta(days=30)).exists()
    assert ServiceImpact.objects.filter(cause_kind=CauseKind.MAINTENANCE).exists()
    for service in Service.objects.all():
        rows = history(service)
        assert all(a[4] == b[3] for a, b in zip(rows, rows[1:], strict=False)), service
        assert rows[-1][4] is None
        assert rows[-1][0] == service.status
    hurt = ServiceStatusInterval.objects.exclude(status=OPERATIONAL)
    assert hurt.filter(valid_to__lt=now - dt.timedelta(days=30)).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_racing_incidents_on_one_service_leave_the_worst_status(on_postgres):
    """Incidents opened and resolved at once on the same service: each writer locks the service
    before it derives the status, so the last one to commit sees every impact and the status
    (and the open interval) is the worst open one, never a writer's stale view."""
    import threading

    from django.db import connections

    agent = UserFactory(username="racer", groups=[AGENT_GROUP])
    payments = ServiceFactory(name="Payments", slug="payments")
    keep = workflow.create_incident(
        actor=agent, title="Stays open", services={payments: PARTIAL}, now=hours(0)
    )
    barrier = threading.Barrier(4)
    errors = []

    def churn(n):
        try:
            barrier.wait()
            for k in range(3):
                incident = workflow.create_incident(
                    actor=agent, title=f"Race {n}.{k}", services={payments: MAJOR}
                )
                workflow.resolve(incident, actor=agent, code="fixed", notes="x")
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    payments.refresh_from_db()
    assert payments.status == PARTIAL  # only "Stays open" still hurts it
    current = ServiceStatusInterval.objects.get(service=payments, valid_to__isnull=True)
    assert (current.status, current.cause_id) == (PARTIAL, keep.pk)

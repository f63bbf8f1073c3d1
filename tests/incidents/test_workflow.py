"""Every transition of incidents/workflow.py, the illegal ones, the timeline and the deadlines."""

import datetime as dt

import pytest
from django.db import connection

from incidents import workflow
from incidents.models import (
    EventKind,
    IncidentState,
    PriorityMatrixEntry,
    PublicStatus,
    ResolutionCode,
)
from notifications.models import EventKind as NotificationKind
from notifications.models import NotificationEvent
from services.models import ServiceStatus
from tests.factories import ContactFactory, OrganizationFactory, ServiceFactory, sla_policy

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)  # a Monday


def minutes(n):
    return dt.timedelta(minutes=n)


@pytest.fixture
def incident(agent, service):
    return workflow.create_incident(
        actor=agent, title="Card payments fail", impact=1, urgency=1, services=[service], now=T0
    )


def kinds(incident):
    return list(incident.events.order_by("at", "id").values_list("kind", flat=True))


def test_create_derives_priority_deadlines_and_timeline(incident, service):
    assert incident.reference == f"INC-{incident.pk:06d}"
    assert incident.state == IncidentState.NEW
    assert incident.priority == 1
    assert incident.response_due_at == T0 + minutes(15)
    assert incident.resolve_due_at == T0 + dt.timedelta(hours=1)
    # The first checkpoint is the 75% response warning.
    assert incident.next_sla_check_at == T0 + dt.timedelta(seconds=675)
    assert kinds(incident) == [EventKind.CREATED]
    service.refresh_from_db()
    assert service.status == ServiceStatus.PARTIAL_OUTAGE


def test_priority_follows_the_matrix_staff_can_change(agent, service):
    PriorityMatrixEntry.objects.filter(impact=2, urgency=2).update(priority=1)
    incident = workflow.create_incident(
        actor=agent, title="x", impact=2, urgency=2, services=[service], now=T0
    )
    assert incident.priority == 1


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        (1, 1, 1),
        (1, 2, 2),
        (2, 1, 2),
        (1, 3, 3),
        (2, 2, 3),
        (3, 1, 3),
        (2, 3, 4),
        (3, 2, 4),
        (3, 3, 5),
    ],
)
def test_default_matrix(agent, service, impact, urgency, priority):
    incident = workflow.create_incident(
        actor=agent, title="x", impact=impact, urgency=urgency, services=[service], now=T0
    )
    assert incident.priority == priority


def test_acknowledge_meets_response_and_assigns_the_actor(incident, agent):
    incident = workflow.acknowledge(incident, actor=agent, now=T0 + minutes(5))
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.acknowledged_at == T0 + minutes(5)
    assert incident.assignee == agent
    assert incident.version == 2
    event = incident.events.get(kind=EventKind.ACKNOWLEDGED)
    assert (event.actor, event.old_value, event.new_value) == (agent, "new", "acknowledged")
    # Response met: the next checkpoint is the resolution warning at 75% of 1 h.
    assert incident.next_sla_check_at == T0 + minutes(45)


def test_change_priority_moves_deadlines(incident, agent):
    incident = workflow.change_priority(
        incident, actor=agent, impact=2, urgency=2, now=T0 + minutes(1)
    )
    assert incident.priority == 3
    assert incident.response_due_at == T0 + dt.timedelta(hours=1)
    assert incident.resolve_due_at == T0 + dt.timedelta(hours=8)
    event = incident.events.get(kind=EventKind.PRIORITY_CHANGED)
    assert event.old_value["priority"] == 1 and event.new_value["priority"] == 3


def test_hold_pauses_the_clock_and_resume_extends_deadlines(incident, agent):
    incident = workflow.acknowledge(incident, actor=agent, now=T0 + minutes(5))
    incident = workflow.hold(
        incident, actor=agent, reason="Waiting for the bank", now=T0 + minutes(10)
    )
    assert incident.state == IncidentState.ON_HOLD
    assert incident.resolve_due_at is None and incident.next_sla_check_at is None
    incident = workflow.resume(incident, actor=agent, now=T0 + minutes(40))
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.resolve_due_at == T0 + dt.timedelta(hours=1) + minutes(30)
    assert kinds(incident)[-2:] == [EventKind.HELD, EventKind.RESUMED]


def test_hold_needs_a_reason(incident, agent):
    with pytest.raises(workflow.WorkflowError, match="why"):
        workflow.hold(incident, actor=agent, reason="  ")
    incident.refresh_from_db()
    assert incident.state == IncidentState.NEW and incident.version == 1


def test_resume_before_acknowledge_returns_to_new(incident, agent):
    workflow.hold(incident, actor=agent, reason="Caller away", now=T0 + minutes(1))
    incident = workflow.resume(incident, actor=agent, now=T0 + minutes(11))
    assert incident.state == IncidentState.NEW
    assert incident.response_due_at == T0 + minutes(25)


def test_resolve_close_and_service_recovery(incident, agent, service):
    incident = workflow.resolve(
        incident,
        actor=agent,
        code=ResolutionCode.FIXED,
        notes="Rolled back the release",
        now=T0 + minutes(30),
    )
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolved_at == T0 + minutes(30)
    # Resolving meets the response target (responded) but is no acknowledgement (MTTA).
    assert incident.responded_at == T0 + minutes(30)
    assert incident.acknowledged_at is None
    assert incident.next_sla_check_at is None
    service.refresh_from_db()
    assert service.status == ServiceStatus.OPERATIONAL
    incident = workflow.close(incident, actor=agent, now=T0 + minutes(60))
    assert incident.state == IncidentState.CLOSED and incident.closed_at == T0 + minutes(60)


def test_resolve_needs_code_and_notes(incident, agent):
    with pytest.raises(workflow.WorkflowError, match="code"):
        workflow.resolve(incident, actor=agent, code="", notes="x")
    with pytest.raises(workflow.WorkflowError, match="notes"):
        workflow.resolve(incident, actor=agent, code=ResolutionCode.FIXED, notes=" ")


def test_reopen_returns_to_acknowledged_and_does_not_count_resolved_time(incident, agent, service):
    incident = workflow.resolve(
        incident, actor=agent, code=ResolutionCode.FIXED, notes="ok", now=T0 + minutes(20)
    )
    incident = workflow.reopen(incident, actor=agent, reason="Still failing", now=T0 + minutes(50))
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.resolved_at is None
    # 20 minutes used before resolution; the 30 minutes resolved do not count.
    assert incident.resolve_due_at == T0 + dt.timedelta(hours=1) + minutes(30)
    service.refresh_from_db()
    assert service.status == ServiceStatus.PARTIAL_OUTAGE


ILLEGAL = [
    ("acknowledge", IncidentState.ACKNOWLEDGED, {}),
    ("resume", IncidentState.NEW, {}),
    ("close", IncidentState.NEW, {}),
    ("reopen", IncidentState.NEW, {}),
    ("hold", IncidentState.ON_HOLD, {"reason": "again"}),
    ("resolve", IncidentState.RESOLVED, {"code": "fixed", "notes": "x"}),
    ("acknowledge", IncidentState.CLOSED, {}),
    ("reopen", IncidentState.CLOSED, {}),
    ("post_update", IncidentState.CLOSED, {"body": "late"}),
    ("assign", IncidentState.RESOLVED, {}),
]


def _bring_to(incident, state, agent):
    steps = {
        IncidentState.NEW: [],
        IncidentState.ACKNOWLEDGED: [lambda i: workflow.acknowledge(i, actor=agent)],
        IncidentState.ON_HOLD: [lambda i: workflow.hold(i, actor=agent, reason="r")],
        IncidentState.RESOLVED: [
            lambda i: workflow.resolve(i, actor=agent, code="fixed", notes="n")
        ],
        IncidentState.CLOSED: [
            lambda i: workflow.resolve(i, actor=agent, code="fixed", notes="n"),
            lambda i: workflow.close(i, actor=agent),
        ],
    }[state]
    for step in steps:
        incident = step(incident)
    return incident


@pytest.mark.parametrize(("action", "state", "kwargs"), ILLEGAL)
def test_illegal_transitions_are_refused_and_change_nothing(incident, agent, action, state, kwargs):
    incident = _bring_to(incident, state, agent)
    version, events = incident.version, incident.events.count()
    with pytest.raises(workflow.IllegalTransition, match="Cannot"):
        getattr(workflow, action)(incident, actor=agent, **kwargs)
    incident.refresh_from_db()
    assert incident.state == state
    assert incident.version == version
    assert incident.events.count() == events


def test_legal_actions_per_state(incident, agent):
    assert workflow.legal_actions(incident) >= {"acknowledge", "hold", "resolve"}
    assert "close" not in workflow.legal_actions(incident)
    incident = _bring_to(incident, IncidentState.RESOLVED, agent)
    assert {"close", "reopen"} <= workflow.legal_actions(incident)
    assert "acknowledge" not in workflow.legal_actions(incident)


def test_stale_version_is_refused_naming_who_changed_what(incident, agent, teammate):
    stale_version = incident.version
    workflow.change_priority(incident, actor=teammate, impact=2, urgency=2)
    with pytest.raises(workflow.StaleVersion) as caught:
        workflow.change_priority(
            incident, actor=agent, impact=1, urgency=1, expected_version=stale_version
        )
    assert "teammate" in str(caught.value)
    assert "priority changed" in str(caught.value)
    assert caught.value.fields == {"impact", "urgency"}
    incident.refresh_from_db()
    assert (incident.impact, incident.urgency) == (2, 2)


def test_assign_records_old_and_new(incident, agent, teammate, team):
    incident = workflow.assign(incident, actor=agent, assignee=teammate, group=team)
    assert incident.assignee == teammate and incident.assignment_group == team
    event = incident.events.get(kind=EventKind.ASSIGNED)
    assert event.old_value == {"assignee": None, "group": None}
    assert event.new_value == {
        "assignee": {"id": teammate.pk, "label": "teammate"},
        "group": {"id": team.pk, "label": team.name},
    }
    # The new assignee hears of it (an outbox row), the actor does not mail themselves.
    assert NotificationEvent.objects.filter(
        subject_kind="incident", subject_id=incident.pk, kind=NotificationKind.ASSIGNMENT
    ).exists()


def test_assign_none_clears_and_omitted_keeps(incident, agent, teammate, team):
    incident = workflow.assign(incident, actor=agent, assignee=teammate, group=team)
    incident = workflow.assign(incident, actor=agent, assignee=None)
    assert incident.assignee is None and incident.assignment_group == team
    incident = workflow.edit(
        incident, actor=agent, expected_version=incident.version, changes={"assignment_group": None}
    )
    assert incident.assignment_group is None


def test_edit_refuses_a_contact_of_another_organisation(incident, agent):
    with pytest.raises(workflow.WorkflowError, match="does not belong"):
        workflow.edit(
            incident,
            actor=agent,
            expected_version=incident.version,
            changes={"organization": OrganizationFactory(), "contact": ContactFactory()},
        )


def test_work_note_is_private_and_public_update_publishes(incident, agent):
    note = workflow.post_update(incident, actor=agent, body="Checking the logs")
    assert not note.is_public
    incident.refresh_from_db()
    assert incident.published_at is None
    assert (
        not NotificationEvent.objects.filter(subject_kind="incident", subject_id=incident.pk)
        .exclude(kind=NotificationKind.ASSIGNMENT)
        .exists()
    )

    workflow.post_update(
        incident,
        actor=agent,
        body="We are investigating",
        is_public=True,
        public_status=PublicStatus.INVESTIGATING,
    )
    workflow.post_update(
        incident,
        actor=agent,
        body="Cause found",
        is_public=True,
        public_status=PublicStatus.IDENTIFIED,
    )
    incident.refresh_from_db()
    assert incident.public_status == PublicStatus.IDENTIFIED
    assert incident.published_at is not None
    assert list(
        NotificationEvent.objects.filter(subject_kind="incident", subject_id=incident.pk)
        .order_by("id")
        .values_list("kind", flat=True)
    ) == [NotificationKind.INCIDENT_PUBLISHED, NotificationKind.INCIDENT_UPDATED]


def test_public_update_needs_a_public_status(incident, agent):
    with pytest.raises(workflow.WorkflowError, match="public status"):
        workflow.post_update(incident, actor=agent, body="x", is_public=True)


def test_resolving_a_published_incident_tells_customers(incident, agent):
    workflow.post_update(
        incident,
        actor=agent,
        body="Investigating",
        is_public=True,
        public_status=PublicStatus.INVESTIGATING,
    )
    workflow.resolve(
        incident, actor=agent, code="fixed", notes="n", public_message="Payments work again."
    )
    incident.refresh_from_db()
    assert incident.public_status == PublicStatus.RESOLVED
    assert NotificationEvent.objects.filter(
        subject_kind="incident", subject_id=incident.pk, kind=NotificationKind.INCIDENT_RESOLVED
    ).exists()
    assert incident.updates.filter(is_public=True, public_status="resolved").count() == 1


def test_service_shows_worst_open_incident_and_pin_wins(agent, service):
    first = workflow.create_incident(
        actor=agent, title="slow", services={service: ServiceStatus.DEGRADED_PERFORMANCE}
    )
    second = workflow.create_incident(
        actor=agent, title="down", services={service: ServiceStatus.MAJOR_OUTAGE}
    )
    service.refresh_from_db()
    assert service.status == ServiceStatus.MAJOR_OUTAGE
    workflow.resolve(second, actor=agent, code="fixed", notes="n")
    service.refresh_from_db()
    assert service.status == ServiceStatus.DEGRADED_PERFORMANCE
    from services.workflow import set_service_status

    set_service_status(service, status=ServiceStatus.PARTIAL_OUTAGE, pinned=True)
    workflow.resolve(first, actor=agent, code="fixed", notes="n")
    service.refresh_from_db()
    assert service.status == ServiceStatus.PARTIAL_OUTAGE  # pinned by staff
    set_service_status(service, status=ServiceStatus.PARTIAL_OUTAGE, pinned=False)
    service.refresh_from_db()
    assert service.status == ServiceStatus.OPERATIONAL


def test_contract_policy_overrides_service_default(agent, service, policy):
    customer = OrganizationFactory()
    strict = sla_policy(name="Gold", targets={1: (minutes(5), minutes(30))})
    customer.contracts.create(service=service, sla_policy=strict)
    incident = workflow.create_incident(
        actor=agent,
        title="x",
        impact=1,
        urgency=1,
        services=[service],
        organization=customer,
        now=T0,
    )
    assert incident.sla_policy == strict
    assert incident.response_due_at == T0 + minutes(5)
    other = workflow.create_incident(
        actor=agent, title="y", impact=1, urgency=1, services=[service], now=T0
    )
    assert other.sla_policy == policy


def test_business_hours_policy_counts_only_office_time(agent):
    from tests.factories import office_calendar

    calendar = office_calendar(holidays=[dt.date(2026, 3, 9)])
    office = sla_policy(
        name="Office",
        calendar=calendar,
        targets={3: (dt.timedelta(hours=1), dt.timedelta(hours=4))},
    )
    svc = ServiceFactory(default_sla_policy=office)
    friday_1630 = dt.datetime(2026, 3, 6, 14, 30, tzinfo=dt.UTC)  # 16:30 in Bucharest
    incident = workflow.create_incident(actor=agent, title="x", services=[svc], now=friday_1630)
    # Monday 9 March is a holiday: response due Tuesday 09:30 local (07:30 UTC).
    assert incident.response_due_at == dt.datetime(2026, 3, 10, 7, 30, tzinfo=dt.UTC)


def test_contact_must_belong_to_the_organisation(agent, service):
    contact = ContactFactory()
    with pytest.raises(workflow.WorkflowError, match="does not belong"):
        workflow.create_incident(
            actor=agent,
            title="x",
            services=[service],
            contact=contact,
            organization=OrganizationFactory(),
        )


def test_edit_applies_fields_priority_and_services_in_one_version(incident, agent, service):
    other = ServiceFactory()
    incident = workflow.edit(
        incident,
        actor=agent,
        expected_version=incident.version,
        changes={
            "title": "Card payments fail in EU",
            "impact": 2,
            "urgency": 2,
            "services": {service: ServiceStatus.MAJOR_OUTAGE, other: ServiceStatus.PARTIAL_OUTAGE},
            "is_major": True,
        },
    )
    assert incident.version == 2
    assert incident.priority == 3
    assert incident.title == "Card payments fail in EU"
    assert set(kinds(incident)) >= {
        EventKind.EDITED,
        EventKind.PRIORITY_CHANGED,
        EventKind.SERVICES_CHANGED,
        EventKind.MAJOR_CHANGED,
    }
    other.refresh_from_db()
    assert other.status == ServiceStatus.PARTIAL_OUTAGE


def test_a_transition_is_one_transaction(incident, agent, service):
    """A failure late in a transition (here: the outbox write) rolls back the row, the
    timeline event and the service status with it."""
    from unittest import mock

    workflow.post_update(
        incident,
        actor=agent,
        body="Looking",
        is_public=True,
        public_status=PublicStatus.INVESTIGATING,
    )
    incident.refresh_from_db()
    with (
        mock.patch("incidents.workflow.enqueue_incident_event", side_effect=RuntimeError),
        pytest.raises(RuntimeError),
    ):
        workflow.resolve(incident, actor=agent, code="fixed", notes="n")
    incident.refresh_from_db()
    assert incident.state == IncidentState.NEW
    service.refresh_from_db()
    assert service.status == ServiceStatus.PARTIAL_OUTAGE
    assert kinds(incident) == [EventKind.CREATED, EventKind.UPDATE_POSTED]


def test_calendar_changes_reach_the_next_recompute(agent):
    """The SLA engine keeps calendars in memory; a holiday added in the admin still counts at
    the very next change."""
    from tests.factories import office_calendar

    calendar = office_calendar()
    office = sla_policy(
        name="Office",
        calendar=calendar,
        targets={3: (dt.timedelta(hours=1), dt.timedelta(hours=4))},
    )
    svc = ServiceFactory(default_sla_policy=office)
    friday_1630 = dt.datetime(2026, 3, 6, 14, 30, tzinfo=dt.UTC)  # 16:30 in Bucharest
    incident = workflow.create_incident(actor=agent, title="x", services=[svc], now=friday_1630)
    assert incident.response_due_at == dt.datetime(2026, 3, 9, 7, 30, tzinfo=dt.UTC)  # Monday
    calendar.holidays.create(date=dt.date(2026, 3, 9))
    incident = workflow.hold(incident, actor=agent, reason="r", now=friday_1630)
    incident = workflow.resume(incident, actor=agent, now=friday_1630)
    assert incident.response_due_at == dt.datetime(2026, 3, 10, 7, 30, tzinfo=dt.UTC)  # Tuesday


@pytest.mark.parametrize("services", [1, 5])
def test_statements_per_transition_are_few_and_constant(
    agent, policy, services, django_assert_num_queries
):
    """C4: each transition of a published incident takes a fixed, small number of statements,
    whatever the number of services (counted inside the test's transaction: each transition's
    SAVEPOINT and RELEASE are two of them). Resolve: lock, timeline, public update, row,
    six for the services' status and history, three for the outbox event. On PostgreSQL the
    timeline event is inserted by the statement that saves the row (one statement fewer), and
    resolve's public update too (one fewer); the services' new status, the end of their
    intervals and the new ones are one statement (two fewer); the end of the incident's
    impacts locks their services and the read of what still hurts them rides in its round trip
    (two fewer); a hold's or resume's pause is written with the row (one fewer); the reads of
    the clock (and of the policies, for a change of priority) ride in the round trip of the
    row lock (one fewer, three for a change of priority), and so do a resolve's reads of the
    outbox event's services and their dependants (two fewer)."""
    merged = 1 if connection.vendor == "postgresql" else 0
    one_move = 4 if connection.vendor == "postgresql" else 0
    affected = [ServiceFactory(default_sla_policy=policy) for _ in range(services)]
    incident = workflow.create_incident(
        actor=agent, title="Checkout down", impact=2, urgency=2, services=affected
    )
    workflow.post_update(
        incident, actor=agent, body="Looking.", is_public=True, public_status="investigating"
    )
    with django_assert_num_queries(2 + 4 - merged - merged):
        incident = workflow.acknowledge(incident, actor=agent)
    with django_assert_num_queries(2 + 6 - merged - 3 * merged):
        incident = workflow.change_priority(incident, actor=agent, impact=1, urgency=1)
    with django_assert_num_queries(2 + 5 - merged - merged - merged):
        incident = workflow.hold(incident, actor=agent, reason="Waiting on the customer")
    with django_assert_num_queries(2 + 5 - merged - merged - merged):
        incident = workflow.resume(incident, actor=agent)
    with django_assert_num_queries(2 + 13 - 4 * merged - one_move):
        workflow.resolve(incident, actor=agent, code="fixed", notes="Restarted the nodes.")

"""Recurring incidents propose a problem once per cluster: the task run twice, two runs at once
on PostgreSQL, the window and threshold, what is not counted, and what problem managers do."""

import datetime as dt
import threading

import pytest
from django.db import connections
from django.utils import timezone

from incidents import recurrence, tasks
from incidents import workflow as incident_workflow
from notifications.models import EventKind as NotificationKind
from notifications.models import Notification, NotificationEvent
from problems import workflow
from problems.models import ProposalState, RecurrenceProposal
from tests.factories import PROBLEM_MANAGER_GROUP, UserFactory


def days(n):
    return dt.timedelta(days=n)


@pytest.fixture
def open_at(agent, service):
    def make(when, services=None, **kwargs):
        return incident_workflow.create_incident(
            actor=agent, title="Payments slow", services=services or [service], now=when, **kwargs
        )

    return make


@pytest.fixture
def manager_with_email(manager):
    manager.email = "pm@desk.example.com"
    manager.save()
    return manager


def proposal_events():
    return NotificationEvent.objects.filter(kind=NotificationKind.PROBLEM_PROPOSED)


def test_three_incidents_in_a_week_propose_once(open_at, service, manager_with_email):
    now = timezone.now()
    first, second, third = (open_at(now - days(d)) for d in (6, 3, 1))
    assert tasks.propose_problems_task.apply().get() == 1
    assert tasks.propose_problems_task.apply().get() == 0
    (proposal,) = RecurrenceProposal.objects.all()
    assert proposal.service == service
    assert proposal.incident_count == 3
    assert proposal.incident_ids == [first.pk, second.pk, third.pk]
    assert (proposal.window_start, proposal.window_end) == (first.opened_at, third.opened_at)
    assert proposal.state == ProposalState.OPEN
    # The problem managers are told, once, through the outbox.
    (event,) = proposal_events()
    assert "3 incidents on Payments" in event.payload["subject"]
    assert first.reference in event.payload["body"]
    assert list(Notification.objects.filter(event=event).values_list("address", flat=True)) == [
        "pm@desk.example.com"
    ]


def test_below_the_threshold_or_outside_the_window_nothing(open_at, settings):
    now = timezone.now()
    open_at(now - days(8))  # outside the 7 days
    open_at(now - days(2))
    open_at(now - days(1))
    assert recurrence.propose_problems() == []
    settings.PROBLEM_RECURRENCE_COUNT = 2
    assert len(recurrence.propose_problems()) == 1


def test_a_new_cluster_counts_only_later_incidents(open_at):
    now = timezone.now()
    for d in (5, 4, 3):
        open_at(now - days(d))
    assert len(recurrence.propose_problems(now=now)) == 1
    open_at(now - days(2))
    open_at(now - days(1))
    assert recurrence.propose_problems(now=now) == []  # two new ones: below the threshold
    open_at(now - dt.timedelta(hours=1))
    (second,) = recurrence.propose_problems(now=now)
    assert second.incident_count == 3
    assert RecurrenceProposal.objects.count() == 2


def test_linked_and_confidential_incidents_do_not_count(open_at, manager, agent):
    now = timezone.now()
    problem = workflow.create_problem(actor=manager, title="Known")
    linked = open_at(now - days(3))
    incident_workflow.link_problem(linked, actor=agent, problem=problem)
    open_at(now - days(2))
    open_at(now - days(1))
    boss = UserFactory(username="sec", is_superuser=True)
    incident_workflow.create_incident(
        actor=boss, title="secret", services=list(linked.services.all()), is_confidential=True
    )
    assert recurrence.propose_problems() == []


def test_each_service_is_its_own_cluster(open_at, service, other_service):
    now = timezone.now()
    for d in (3, 2, 1):
        open_at(now - days(d), services=[service, other_service])
    made = recurrence.propose_problems()
    assert {p.service for p in made} == {service, other_service}


def test_a_cluster_proposed_meanwhile_is_not_proposed_again(open_at, service):
    # Another sweep wrote this cluster's row between our read and our insert: the unique key
    # (service, first opening) refuses ours, and no second message is queued.
    now = timezone.now()
    first = open_at(now - days(3))
    open_at(now - days(2))
    open_at(now - days(1))
    RecurrenceProposal.objects.create(
        service=service,
        window_start=first.opened_at,
        window_end=first.opened_at - dt.timedelta(seconds=1),
        incident_count=3,
    )
    assert recurrence.propose_problems() == []
    assert RecurrenceProposal.objects.count() == 1
    assert not proposal_events().exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_propose_once(on_postgres, service, agent, manager_with_email):
    now = timezone.now()
    for d in (3, 2, 1):
        incident_workflow.create_incident(
            actor=agent, title="x", services=[service], now=now - days(d)
        )
    barrier = threading.Barrier(4)
    errors = []

    def sweep():
        try:
            barrier.wait()
            for _ in range(3):
                recurrence.propose_problems(now=now)
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert RecurrenceProposal.objects.count() == 1
    assert proposal_events().count() == 1


def test_accepting_opens_a_problem_for_its_incidents(open_at, manager, service, agent):
    now = timezone.now()
    incidents = [open_at(now - days(d)) for d in (3, 2, 1)]
    (proposal,) = recurrence.propose_problems()
    problem = recurrence.accept_proposal(proposal, actor=manager)
    assert set(problem.incidents.all()) == set(incidents)
    assert list(problem.services.all()) == [service]
    proposal.refresh_from_db()
    assert (proposal.state, proposal.problem) == (ProposalState.ACCEPTED, problem)
    with pytest.raises(incident_workflow.WorkflowError):
        recurrence.accept_proposal(proposal, actor=manager)
    # An agent may not open problems.
    (again,) = [
        RecurrenceProposal.objects.create(
            service=service,
            window_start=now,
            window_end=now,
            incident_count=3,
            incident_ids=[i.pk for i in incidents],
        )
    ]
    with pytest.raises(incident_workflow.WorkflowError):
        recurrence.accept_proposal(again, actor=agent)


def test_problem_managers_see_and_settle_proposals_in_the_admin(client, open_at, manager):
    now = timezone.now()
    for d in (3, 2, 1):
        open_at(now - days(d))
    (proposal,) = recurrence.propose_problems()
    client.force_login(manager)
    url = "/admin/problems/recurrenceproposal/"
    response = client.get(url, {"state__exact": "open"})
    assert response.status_code == 200
    assert [p.pk for p in response.context["cl"].result_list] == [proposal.pk]
    response = client.post(
        url, {"action": "open_problems", "_selected_action": [proposal.pk]}, follow=True
    )
    proposal.refresh_from_db()
    assert proposal.state == ProposalState.ACCEPTED
    assert proposal.problem.incidents.count() == 3
    assert PROBLEM_MANAGER_GROUP in {g.name for g in manager.groups.all()}

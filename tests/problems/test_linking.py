"""Linking incidents to problems (both timelines), known-error suggestions and the one-click
link quoting the workaround, and a problem opened from selected incidents."""

import pytest

from incidents import problem_links
from incidents import workflow as incident_workflow
from incidents.models import EventKind, IncidentState, ResolutionCode
from problems import workflow
from problems.models import ProblemEventKind, ProblemState
from tests.problems.conftest import T0


@pytest.fixture
def known_error(manager, service):
    problem = workflow.create_problem(
        actor=manager, title="Gateway leaks sockets", services=[service]
    )
    return workflow.record_known_error(
        problem, actor=manager, workaround="Restart the gateway pod", root_cause="socket leak"
    )


def test_link_and_unlink_are_on_both_timelines(agent, problem, make_incident, manager):
    incident = make_incident()
    incident = incident_workflow.link_problem(incident, actor=agent, problem=problem)
    assert incident.problem == problem
    linked = problem.events.get(kind=ProblemEventKind.INCIDENT_LINKED)
    assert linked.new_value == {"id": incident.pk, "label": str(incident)}
    assert linked.actor == agent
    # A link bumps no version of the problem: nobody's problem form goes stale for it.
    problem.refresh_from_db()
    assert problem.version == 1
    incident = incident_workflow.link_problem(incident, actor=agent, problem=None)
    assert incident.problem is None
    unlinked = problem.events.get(kind=ProblemEventKind.INCIDENT_UNLINKED)
    assert unlinked.old_value["id"] == incident.pk
    events = incident.events.filter(kind=EventKind.PROBLEM_LINKED).order_by("id")
    assert [(e.old_value, e.new_value) for e in events] == [
        (None, {"id": problem.pk, "label": str(problem)}),
        ({"id": problem.pk, "label": str(problem)}, None),
    ]


def test_moving_an_incident_to_another_problem_tells_both(agent, manager, problem, make_incident):
    other = workflow.create_problem(actor=manager, title="Other")
    incident = incident_workflow.link_problem(make_incident(), actor=agent, problem=problem)
    incident_workflow.edit(
        incident, actor=agent, expected_version=incident.version, changes={"problem": other}
    )
    assert problem.events.filter(kind=ProblemEventKind.INCIDENT_UNLINKED).count() == 1
    assert other.events.filter(kind=ProblemEventKind.INCIDENT_LINKED).count() == 1


def test_a_closed_problem_takes_no_incident(agent, manager, problem, make_incident):
    workflow.resolve(problem, actor=manager, permanent_fix="fixed")
    workflow.close(problem, actor=manager)
    problem.refresh_from_db()
    incident = make_incident()
    with pytest.raises(incident_workflow.IllegalTransition, match="closed"):
        incident_workflow.link_problem(incident, actor=agent, problem=problem)
    incident.refresh_from_db()
    assert incident.problem is None
    assert not problem.events.filter(kind=ProblemEventKind.INCIDENT_LINKED).exists()


def test_known_errors_on_the_affected_services_are_suggested(
    agent, known_error, problem, make_incident, manager, other_service
):
    elsewhere = workflow.create_problem(actor=manager, title="Mail", services=[other_service])
    workflow.record_known_error(elsewhere, actor=manager, workaround="Use webmail")
    incident = make_incident()
    # The plain problem (not a known error) and the other service's known error are not offered.
    assert problem_links.known_error_suggestions(incident, agent) == [known_error]
    incident_workflow.link_problem(incident, actor=agent, problem=known_error)
    incident.refresh_from_db()
    assert problem_links.known_error_suggestions(incident, agent) == []


def test_the_one_click_link_quotes_the_workaround(agent, known_error, make_incident):
    incident = make_incident()
    incident_workflow.link_problem(
        incident, actor=agent, problem=known_error, quote_workaround=True
    )
    event = incident.events.get(kind=EventKind.PROBLEM_LINKED)
    assert known_error.reference in event.note
    assert "Restart the gateway pod" in event.note
    assert (
        "Restart the gateway pod"
        in known_error.events.get(kind=ProblemEventKind.INCIDENT_LINKED).note
    )


def test_known_errors_are_searchable(agent, known_error, problem):
    assert problem_links.search_known_errors("gateway", agent) == [known_error]
    assert problem_links.search_known_errors("restart pod", agent) == [known_error]
    assert problem_links.search_known_errors(known_error.reference, agent) == [known_error]
    # Not a known error: not found, even by its reference.
    assert problem_links.search_known_errors(problem.reference, agent) == []
    assert problem_links.search_known_errors("", agent) == []


def test_a_problem_from_selected_incidents(manager, make_incident, service, other_service):
    first = make_incident(title="Payments slow", impact=2, urgency=2)
    second = make_incident(title="Mail bounces", services=[other_service], impact=1, urgency=1)
    problem = problem_links.create_problem_from_incidents(
        [first, second], actor=manager, title="Shared storage saturates"
    )
    assert problem.state == ProblemState.NEW
    assert problem.priority == 1  # the highest of theirs
    assert set(problem.services.all()) == {service, other_service}
    assert set(problem.incidents.all()) == {first, second}
    assert problem.events.filter(kind=ProblemEventKind.INCIDENT_LINKED).count() == 2


def test_a_problem_from_incidents_is_refused_whole(agent, make_incident):
    incident = make_incident()
    # An agent may not create problems: nothing is created, nothing linked.
    with pytest.raises(incident_workflow.WorkflowError):
        problem_links.create_problem_from_incidents([incident], actor=agent, title="x")
    incident.refresh_from_db()
    assert incident.problem is None


def test_resolving_the_linked_open_incidents(manager, problem, make_incident):
    first, second, done = make_incident(), make_incident(), make_incident()
    for incident in (first, second, done):
        incident_workflow.link_problem(incident, actor=manager, problem=problem)
    incident_workflow.resolve(done, actor=manager, code=ResolutionCode.FIXED, notes="n")
    assert list(problem_links.open_linked_incidents(problem, manager)) == [first, second]
    resolved, refused = problem_links.resolve_linked_incidents(
        problem,
        actor=manager,
        incident_ids=[first.pk],
        code=ResolutionCode.FIXED,
        notes="Fixed by the problem's permanent fix",
    )
    assert resolved == [first.reference] and refused == []
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (IncidentState.RESOLVED, IncidentState.NEW)
    assert first.resolved_at > T0

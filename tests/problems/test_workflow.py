"""Every transition of problems/workflow.py, the illegal ones, stale versions and the timeline."""

import datetime as dt

import pytest

from itsm.actors import Actor
from problems import workflow
from problems.models import Problem, ProblemEventKind, ProblemState
from tests.problems.conftest import T0

S = ProblemState


def later(minutes):
    return T0 + dt.timedelta(minutes=minutes)


def kinds(problem):
    return list(problem.events.order_by("at", "id").values_list("kind", flat=True))


def test_create_gives_a_reference_and_a_timeline(problem, service, manager):
    assert problem.reference == f"PRB-{problem.pk:06d}"
    assert str(problem).startswith("PRB-")
    assert problem.state == S.NEW
    assert problem.priority == 3
    assert list(problem.services.all()) == [service]
    event = problem.events.get()
    assert event.kind == ProblemEventKind.CREATED
    assert event.actor == manager and event.actor_label == "pm"
    assert event.new_value["services"] == [{"id": service.pk, "label": "Payments"}]
    assert event.version == 1


def test_the_whole_life_of_a_problem(problem, manager):
    problem = workflow.start_investigation(problem, actor=manager, expected_version=1, now=later(1))
    assert (problem.state, problem.version, problem.owner) == (S.INVESTIGATING, 2, manager)
    assert problem.investigating_at == later(1)
    problem = workflow.record_known_error(
        problem,
        actor=manager,
        workaround="Restart the payment gateway pod",
        root_cause="TLS session cache too small",
        expected_version=2,
        now=later(2),
    )
    assert problem.state == S.KNOWN_ERROR and problem.known_error_at == later(2)
    assert problem.workaround == "Restart the payment gateway pod"
    problem = workflow.resolve(
        problem, actor=manager, permanent_fix="Cache sized to 10k", expected_version=3, now=later(3)
    )
    assert problem.state == S.RESOLVED and problem.resolved_at == later(3)
    problem = workflow.close(problem, actor=manager, expected_version=4, now=later(4))
    assert problem.state == S.CLOSED and problem.closed_at == later(4)
    problem = workflow.reopen(problem, actor=manager, reason="Came back", now=later(5))
    assert problem.state == S.INVESTIGATING
    assert (problem.resolved_at, problem.closed_at) == (None, None)
    assert kinds(problem) == [
        ProblemEventKind.CREATED,
        ProblemEventKind.INVESTIGATING,
        ProblemEventKind.KNOWN_ERROR,
        ProblemEventKind.RESOLVED,
        ProblemEventKind.CLOSED,
        ProblemEventKind.REOPENED,
    ]
    events = list(problem.events.order_by("at", "id"))
    assert [(e.old_value, e.new_value) for e in events[1:]] == [
        ("new", "investigating"),
        ("investigating", "known_error"),
        ("known_error", "resolved"),
        ("resolved", "closed"),
        ("closed", "investigating"),
    ]
    assert [e.version for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1].note == "Came back"
    stored = Problem.objects.get(pk=problem.pk)
    assert (stored.state, stored.version) == (S.INVESTIGATING, 6)


def test_known_error_straight_from_new_and_resolve_from_any_open_state(problem, manager):
    problem = workflow.record_known_error(problem, actor=manager, workaround="Retry")
    assert problem.state == S.KNOWN_ERROR and problem.investigating_at is not None
    problem = workflow.resolve(problem, actor=manager, permanent_fix="Patched")
    assert problem.state == S.RESOLVED
    problem = workflow.reopen(problem, actor=manager, reason="Not patched everywhere")
    assert workflow.resolve(problem, actor=manager, permanent_fix="Patched all").state == S.RESOLVED


@pytest.mark.parametrize(
    ("state", "action", "kwargs"),
    [
        (S.INVESTIGATING, "start_investigation", {}),
        (S.KNOWN_ERROR, "start_investigation", {}),
        (S.KNOWN_ERROR, "record_known_error", {"workaround": "x"}),
        (S.RESOLVED, "record_known_error", {"workaround": "x"}),
        (S.RESOLVED, "resolve", {"permanent_fix": "x"}),
        (S.CLOSED, "resolve", {"permanent_fix": "x"}),
        (S.NEW, "close", {}),
        (S.KNOWN_ERROR, "close", {}),
        (S.NEW, "reopen", {"reason": "x"}),
        (S.INVESTIGATING, "reopen", {"reason": "x"}),
        (S.CLOSED, "edit", {"changes": {"title": "x"}}),
    ],
)
def test_illegal_moves_are_refused_and_change_nothing(problem, manager, state, action, kwargs):
    Problem.objects.filter(pk=problem.pk).update(state=state, workaround="w")
    with pytest.raises(workflow.IllegalTransition, match="Cannot"):
        getattr(workflow, action)(problem, actor=manager, expected_version=1, **kwargs)
    stored = Problem.objects.get(pk=problem.pk)
    assert (stored.state, stored.version) == (state, 1)
    assert kinds(stored) == [ProblemEventKind.CREATED]
    assert issubclass(workflow.IllegalTransition, workflow.WorkflowError)


def test_a_stale_version_is_refused(problem, manager):
    workflow.edit(problem, actor=manager, expected_version=1, changes={"title": "Renamed"})
    with pytest.raises(workflow.StaleVersion) as refused:
        workflow.start_investigation(problem, actor=manager, expected_version=1)
    assert refused.value.current_version == 2
    assert "Reload" in str(refused.value)
    assert Problem.objects.get(pk=problem.pk).state == S.NEW


@pytest.mark.parametrize(
    ("action", "kwargs", "field"),
    [
        ("record_known_error", {"workaround": "  "}, "workaround"),
        ("resolve", {"permanent_fix": ""}, "permanent_fix"),
    ],
)
def test_required_texts(problem, manager, action, kwargs, field):
    with pytest.raises(workflow.WorkflowError) as refused:
        getattr(workflow, action)(problem, actor=manager, **kwargs)
    assert refused.value.field == field
    assert Problem.objects.get(pk=problem.pk).state == S.NEW


def test_reopen_needs_a_reason(problem, manager):
    workflow.resolve(problem, actor=manager, permanent_fix="Patched")
    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.reopen(problem, actor=manager, reason="")
    assert refused.value.field == "reason"


def test_edit_records_what_changed_once(problem, manager, other_service, service):
    problem = workflow.edit(
        problem,
        actor=manager,
        expected_version=1,
        changes={"title": "TLS", "priority": 1, "owner": manager, "services": [other_service]},
    )
    assert (problem.title, problem.priority, problem.version) == ("TLS", 1, 2)
    assert list(problem.services.all()) == [other_service]
    edited, services = problem.events.order_by("id")[1:]
    assert edited.kind == ProblemEventKind.EDITED
    assert edited.new_value == {
        "title": "TLS",
        "priority": 1,
        "owner": {"id": manager.pk, "label": "pm"},
    }
    assert services.old_value == [{"id": service.pk, "label": "Payments"}]
    # Saved as it is: nothing written, no version bump.
    workflow.edit(problem, actor=manager, expected_version=2, changes={"title": "TLS"})
    assert Problem.objects.get(pk=problem.pk).version == 2
    assert problem.events.count() == 3


def test_edit_refuses_bad_input(problem, manager):
    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.edit(problem, actor=manager, expected_version=1, changes={"priority": 9})
    assert refused.value.field == "priority"
    with pytest.raises(workflow.WorkflowError):
        workflow.edit(problem, actor=manager, expected_version=1, changes={"state": "closed"})
    workflow.record_known_error(problem, actor=manager, workaround="Retry")
    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.edit(problem, actor=manager, expected_version=2, changes={"workaround": ""})
    assert refused.value.field == "workaround"
    assert Problem.objects.get(pk=problem.pk).workaround == "Retry"


def test_who_may_act(problem, agent):
    # An agent reads problems but does not work them.
    with pytest.raises(workflow.NotPermitted):
        workflow.start_investigation(problem, actor=agent)
    with pytest.raises(workflow.NotPermitted):
        workflow.create_problem(actor=agent, title="x")
    bound = Actor.token(ref=1, label="t", organization_id=5, permissions={"problems.work_problem"})
    with pytest.raises(workflow.ProblemNotFound):
        workflow.start_investigation(problem, actor=bound)
    assert not Problem.objects.visible_to(bound).exists()
    assert Problem.objects.visible_to(agent).exists()
    system = Actor.system()
    assert workflow.start_investigation(problem, actor=system).state == S.INVESTIGATING
    with pytest.raises(TypeError):
        workflow.close(problem, actor=None)


def test_create_refuses_a_blank_title(manager):
    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.create_problem(actor=manager, title="  ")
    assert refused.value.field == "title"
    assert not Problem.objects.exists()


def test_the_old_open_state_becomes_new(problem):
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    Problem.objects.filter(pk=problem.pk).update(state="open")
    migration = importlib.import_module("problems.migrations.0003_open_is_new_and_problem_manager")
    migration.forwards(apps, None)
    assert Problem.objects.get(pk=problem.pk).state == S.NEW
    perms = set(
        Group.objects.get(name="Problem manager").permissions.values_list("codename", flat=True)
    )
    assert {"work_problem", "change_problem", "work_incident"} <= perms

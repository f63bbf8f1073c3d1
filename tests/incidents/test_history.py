"""The incident side of the history: the truths of the write path (no-op changes, commit order,
the stale-version message) and the migration that fills the catalog's history."""

import datetime as dt
import importlib
import threading

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.db import connections

from incidents import workflow
from incidents.models import EventKind, Incident, IncidentEvent
from incidents.sweep import sweep_sla
from services.models import ServiceImpact, ServiceStatus, ServiceStatusInterval
from tests.factories import AGENT_GROUP, ServiceFactory, UserFactory

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def minutes(n):
    return T0 + dt.timedelta(minutes=n)


@pytest.fixture
def incident(agent, service):
    return workflow.create_incident(
        actor=agent, title="Card payments fail", impact=1, urgency=1, services=[service], now=T0
    )


def test_assigning_to_the_same_person_changes_nothing(incident, agent, teammate):
    incident = workflow.assign(incident, actor=agent, assignee=teammate, now=minutes(1))
    version, events = incident.version, incident.events.count()
    incident = workflow.assign(
        incident, actor=agent, assignee=teammate, expected_version=version, now=minutes(2)
    )
    incident.refresh_from_db()
    assert (incident.version, incident.events.count()) == (version, events)


def test_other_no_op_changes_make_no_form_stale(incident, agent, service):
    version = incident.version
    workflow.change_priority(incident, actor=agent, impact=1, urgency=1)
    workflow.set_affected_services(incident, actor=agent, services=[service])
    workflow.edit(
        incident, actor=agent, expected_version=version, changes={"title": incident.title}
    )
    incident.refresh_from_db()
    assert incident.version == version
    assert list(incident.events.values_list("kind", flat=True)) == [EventKind.CREATED]


def test_bulk_assign_to_me_on_an_incident_already_mine(client, service):
    me = UserFactory(username="desk")
    me.groups.add(Group.objects.get(name="Service desk agent"))
    mine = workflow.create_incident(actor=me, title="Mine", services=[service], assignee=me)
    client.force_login(me)
    response = client.post(
        "/admin/incidents/incident/",
        {"action": "assign_to_me", "_selected_action": [mine.pk]},
        follow=True,
    )
    assert response.status_code == 200
    mine.refresh_from_db()
    assert mine.version == 1
    assert list(mine.events.values_list("kind", flat=True)) == [EventKind.CREATED]


def test_stale_version_names_the_last_change_not_an_sla_signal(incident, agent, teammate):
    stale = incident.version
    workflow.change_priority(incident, actor=teammate, impact=2, urgency=2, now=minutes(1))
    sweep_sla(now=minutes(70))  # raises the response warnings and breach after the change
    assert incident.events.filter(kind=EventKind.SLA_BREACHED).exists()
    with pytest.raises(workflow.StaleVersion) as caught:
        workflow.change_priority(incident, actor=agent, impact=1, urgency=1, expected_version=stale)
    assert "teammate" in str(caught.value)
    assert "priority changed" in str(caught.value)
    assert "sla" not in str(caught.value).lower()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_racing_writes_stamp_the_timeline_in_commit_order(on_postgres):
    """Eight writers post notes to one incident at once: each event's time is taken once the
    row is locked, so the timeline's times follow the order the writes committed in."""
    agent = UserFactory(username="racer", groups=[AGENT_GROUP])
    incident = workflow.create_incident(actor=agent, title="Race", services=[ServiceFactory()])
    barrier = threading.Barrier(8)
    errors = []

    def write(n):
        try:
            barrier.wait()
            for k in range(10):
                workflow.post_update(incident, actor=agent, body=f"note {n}.{k}")
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Ids are handed out in the order the inserts ran, which the row lock makes commit order.
    times = list(incident.events.order_by("id").values_list("at", flat=True))
    assert len(times) == 81
    out_of_order = sum(1 for a, b in zip(times, times[1:], strict=False) if b < a)
    assert out_of_order == 0


def test_the_migration_fills_the_history_the_workflow_writes(agent, service, teammate):
    """Played on data written by the workflow (with the history then emptied), the migration
    recovers the same impacts and status history: reopened incidents and changed services
    included."""
    other = ServiceFactory()
    first = workflow.create_incident(
        actor=agent, title="A", services={service: ServiceStatus.MAJOR_OUTAGE}, now=minutes(0)
    )
    workflow.set_affected_services(
        first,
        actor=agent,
        services={service: ServiceStatus.PARTIAL_OUTAGE, other: ServiceStatus.MAJOR_OUTAGE},
        now=minutes(10),
    )
    workflow.resolve(first, actor=agent, code="fixed", notes="x", now=minutes(20))
    workflow.reopen(first, actor=agent, reason="again", now=minutes(30))
    second = workflow.create_incident(actor=teammate, title="B", services=[other], now=minutes(35))
    workflow.resolve(first, actor=agent, code="fixed", notes="x", now=minutes(40))

    def impacts():
        return sorted(
            ServiceImpact.objects.values_list(
                "service_id", "cause_kind", "cause_id", "status", "valid_from", "valid_to"
            )
        )

    def intervals():
        return sorted(
            ServiceStatusInterval.objects.filter(valid_from__gte=minutes(0)).values_list(
                "service_id", "status", "cause_kind", "cause_id", "valid_from", "valid_to"
            )
        )

    written = impacts(), intervals()
    assert second.pk in {row[2] for row in written[0]}
    ServiceImpact.objects.all().delete()
    ServiceStatusInterval.objects.all().delete()
    migration = importlib.import_module("incidents.migrations.0005_fill_history")
    migration.fill(apps, None)
    assert (impacts(), intervals()) == written


def test_every_writer_leaves_an_incident_impact(incident, service):
    assert Incident.objects.count() == 1
    assert IncidentEvent.objects.count() == 1
    assert list(
        ServiceImpact.objects.values_list("cause_kind", "cause_id", "service_id", "valid_to")
    ) == [("incident", incident.pk, service.pk, None)]


def test_timeline_values_are_typed(incident, agent, teammate, team, service):
    """Who, which group, which services and which problem, by id and label: a review or a
    metric reads them from the timeline alone, and the admin still shows words."""
    from incidents.admin import describe_change
    from problems.models import Problem

    workflow.assign(incident, actor=agent, assignee=teammate, group=team)
    other = ServiceFactory(name="Checkout")
    workflow.set_affected_services(
        incident,
        actor=agent,
        services={service: ServiceStatus.MAJOR_OUTAGE, other: "partial_outage"},
    )
    problem = Problem.objects.create(title="Acquirer timeouts")
    workflow.link_problem(incident, actor=agent, problem=problem)
    events = {e.kind: e for e in incident.events.all()}

    assert events[EventKind.CREATED].new_value["services"] == [
        {"id": service.pk, "label": "Payments", "status": "partial_outage"}
    ]
    assigned = events[EventKind.ASSIGNED]
    assert assigned.new_value == {
        "assignee": {"id": teammate.pk, "label": "teammate"},
        "group": {"id": team.pk, "label": team.name},
    }
    changed = events[EventKind.SERVICES_CHANGED]
    assert [v["id"] for v in changed.new_value] == [other.pk, service.pk]  # by name
    assert events[EventKind.PROBLEM_LINKED].new_value == {"id": problem.pk, "label": str(problem)}

    assert describe_change(assigned.old_value, assigned.new_value) == (
        f"assignee: — → teammate; group: — → {team.name}"
    )
    assert describe_change(changed.old_value, changed.new_value) == (
        "Payments (partial outage) → Checkout (partial outage), Payments (major outage)"
    )


def test_the_migration_types_the_values_of_older_events(incident, agent, teammate, team, service):
    from problems.models import Problem

    problem = Problem.objects.create(title="Acquirer timeouts")
    old_style = [
        ("created", None, {"priority": 1, "services": [service.pk], "assignee": "agent"}),
        (
            "assigned",
            {"assignee": None, "group": None},
            {"assignee": "teammate", "group": team.name},
        ),
        (
            "services_changed",
            {str(service.pk): "partial_outage"},
            {str(service.pk): "major_outage"},
        ),
        ("problem_linked", None, problem.pk),
        ("edited", {"commander": None}, {"commander": "agent"}),
    ]
    IncidentEvent.objects.filter(incident=incident).delete()
    for kind, old, new in old_style:
        IncidentEvent.objects.create(incident=incident, kind=kind, old_value=old, new_value=new)
    migration = importlib.import_module("incidents.migrations.0007_typed_timeline_values")
    migration.forwards(apps, None)

    values = {e.kind: (e.old_value, e.new_value) for e in incident.events.all()}
    assert values["created"][1]["services"] == [
        {"id": service.pk, "label": "Payments", "status": "partial_outage"}
    ]
    assert values["created"][1]["assignee"] == {"id": agent.pk, "label": "agent"}
    assert values["assigned"][1] == {
        "assignee": {"id": teammate.pk, "label": "teammate"},
        "group": {"id": team.pk, "label": team.name},
    }
    assert values["services_changed"] == (
        [{"id": service.pk, "label": "Payments", "status": "partial_outage"}],
        [{"id": service.pk, "label": "Payments", "status": "major_outage"}],
    )
    assert values["problem_linked"][1] == {"id": problem.pk, "label": str(problem)}
    assert values["edited"][1] == {"commander": {"id": agent.pk, "label": "agent"}}

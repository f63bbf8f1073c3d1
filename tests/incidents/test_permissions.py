"""The workflow checks who acts: the seeded groups' permissions for people, issued permissions
for tokens and integrations, everything for the system; a refusal changes nothing. Every
timeline event records its actor as such."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission

from incidents import workflow
from incidents.models import Incident, IncidentEvent
from itsm.actors import Actor
from tests.factories import (
    AGENT_GROUP,
    MANAGER_GROUP,
    READ_ONLY_GROUP,
    SECURITY_GROUP,
    UserFactory,
)


@pytest.fixture
def reader(db):
    return UserFactory(username="reader", groups=[READ_ONLY_GROUP])


@pytest.fixture
def incident(agent, service):
    return workflow.create_incident(actor=agent, title="Card payments fail", services=[service])


def unchanged(incident):
    stored = Incident.objects.get(pk=incident.pk)
    return stored.version == incident.version and stored.state == incident.state


def test_read_only_may_do_nothing_and_nothing_changes(incident, reader):
    events = IncidentEvent.objects.count()
    calls = [
        lambda: workflow.acknowledge(incident, actor=reader),
        lambda: workflow.assign(incident, actor=reader, assignee=reader),
        lambda: workflow.hold(incident, actor=reader, reason="waiting"),
        lambda: workflow.post_update(incident, actor=reader, body="hello"),
        lambda: workflow.resolve(incident, actor=reader, code="fixed", notes="done"),
        lambda: workflow.edit(
            incident, actor=reader, expected_version=incident.version, changes={"title": "x"}
        ),
        lambda: workflow.create_incident(actor=reader, title="mine"),
    ]
    for call in calls:
        with pytest.raises(workflow.NotPermitted):
            call()
    assert unchanged(incident)
    assert IncidentEvent.objects.count() == events
    assert Incident.objects.count() == 1


def test_agent_works_incidents(incident, agent):
    assert workflow.may(agent, "acknowledge", incident)
    assert workflow.acknowledge(incident, actor=agent).state == "acknowledged"


def test_only_managers_and_security_mark_confidential(incident, agent, service):
    with pytest.raises(workflow.NotPermitted):
        workflow.create_incident(actor=agent, title="x", services=[service], is_confidential=True)
    with pytest.raises(workflow.NotPermitted):
        workflow.edit(
            incident,
            actor=agent,
            expected_version=incident.version,
            changes={"is_confidential": True},
        )
    assert unchanged(incident)
    for group in (MANAGER_GROUP, SECURITY_GROUP):
        person = UserFactory(groups=[group])
        incident = Incident.objects.get(pk=incident.pk)
        incident = workflow.edit(
            incident,
            actor=person,
            expected_version=incident.version,
            changes={"is_confidential": not incident.is_confidential},
        )
    assert not Incident.objects.get(pk=incident.pk).is_confidential  # on, then off again


def test_an_outsider_is_told_it_does_not_exist_even_with_a_stale_version(service, agent):
    security = UserFactory(groups=[SECURITY_GROUP])
    secret = workflow.create_incident(
        actor=security, title="breach", services=[service], is_confidential=True
    )
    workflow.post_update(secret, actor=security, body="note")  # the version moves on
    with pytest.raises(workflow.IncidentNotFound) as refused:
        workflow.acknowledge(secret, actor=agent, expected_version=1)
    assert "breach" not in str(refused.value) and security.username not in str(refused.value)
    assert not workflow.may(agent, "acknowledge", secret)


def test_the_system_may_do_everything_and_must_be_named(incident):
    with pytest.raises(TypeError):
        workflow.acknowledge(incident, actor=None)
    done = workflow.acknowledge(incident, actor=Actor.system())
    assert done.state == "acknowledged" and done.assignee is None


def test_tokens_and_integrations_have_what_they_were_issued(incident):
    bare = Actor.token(ref=3, label="status-bot")
    with pytest.raises(workflow.NotPermitted):
        workflow.acknowledge(incident, actor=bare)
    worker = Actor.integration(
        ref="alertmanager", label="Alertmanager", permissions={"incidents.work_incident"}
    )
    workflow.acknowledge(incident, actor=worker)
    event = IncidentEvent.objects.filter(incident=incident).last()
    assert (event.actor_kind, event.actor_id, event.actor_label, event.actor_ref) == (
        "integration",
        None,
        "Alertmanager",
        "alertmanager",
    )


def test_every_event_records_its_actor(incident, agent):
    created = IncidentEvent.objects.get(incident=incident, kind="created")
    assert (created.actor_kind, created.actor, created.actor_label, created.actor_ref) == (
        "user",
        agent,
        agent.username,
        str(agent.pk),
    )
    workflow.acknowledge(incident, actor=Actor.system("sweep"))
    event = IncidentEvent.objects.get(incident=incident, kind="acknowledged")
    assert (event.actor_kind, event.actor, event.actor_label) == ("system", None, "sweep")


def test_migration_fills_existing_events(incident, agent):
    IncidentEvent.objects.filter(incident=incident).update(
        actor_kind="system", actor_label="", actor_ref=""
    )
    IncidentEvent.objects.create(incident=incident, kind="edited")  # nobody: the system
    migration = importlib.import_module("incidents.migrations.0009_confidential_and_actors")
    migration.fill_actors(django_apps, None)
    rows = set(IncidentEvent.objects.values_list("actor_kind", "actor_label", "actor_ref"))
    assert rows == {("user", agent.username, str(agent.pk)), ("system", "system", "")}


def test_security_group_is_seeded_with_the_permission(db):
    security = Group.objects.get(name=SECURITY_GROUP)
    manager = Group.objects.get(name=MANAGER_GROUP)
    permission = Permission.objects.get(codename="access_confidential")
    assert permission in security.permissions.all()
    assert permission in manager.permissions.all()
    assert security.permissions.filter(codename="work_incident").exists()


def test_change_permission_alone_offers_no_workflow_and_does_none(client, incident):
    """May open the change form (change_incident) but was never given work_incident: the page
    offers no workflow button (the workflow would refuse it) and a posted one is forbidden."""
    editor = UserFactory(username="editor", is_staff=True)
    editor.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_incident", "change_incident"])
    )
    client.force_login(editor)
    page = client.get(f"/admin/incidents/incident/{incident.pk}/change/")
    assert page.status_code == 200
    assert page.context["workflow_buttons"] == [] and not page.context["can_post_update"]
    response = client.post(
        f"/admin/incidents/incident/{incident.pk}/act/acknowledge/", {"version": incident.version}
    )
    assert response.status_code == 403
    assert unchanged(incident)


def test_managers_may_retry_notifications_and_manage_subscriptions(db):
    """Seeded by migration: without it only superusers could retry a failed message or see a
    webhook's signing secret; agents and the read-only group still may not."""
    manager = UserFactory(username="lead", groups=[MANAGER_GROUP])
    agent = UserFactory(username="desk", groups=[AGENT_GROUP])
    reader = UserFactory(username="ro", groups=[READ_ONLY_GROUP])
    wanted = ["notifications.change_notification", "services.change_subscription"]
    assert all(manager.has_perm(p) for p in wanted)
    assert not any(agent.has_perm(p) or reader.has_perm(p) for p in wanted)

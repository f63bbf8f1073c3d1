"""Escalation policies: levels paged in turn until someone acknowledges, exactly once per level
and round (also with two sweeps at once), and the one-click acknowledge link."""

import base64
import datetime as dt
import json
import threading

import pytest
from django.db import connections
from django.test import Client

from incidents import workflow
from incidents.escalation import sweep_escalations
from incidents.models import EventKind, Incident, IncidentState
from itsm.actors import Actor
from notifications.models import EventKind as NotificationKind
from notifications.models import Notification, NotificationEvent
from oncall.models import (
    EscalationLevel,
    EscalationPolicy,
    Layer,
    LayerMember,
    Page,
    Schedule,
    ShiftKind,
    TargetKind,
)
from services.models import Team
from tests.factories import AGENT_GROUP, UserFactory

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def people(db):
    return {
        name: UserFactory(username=name, email=f"{name}@desk.example.com", groups=[AGENT_GROUP])
        for name in ("ann", "bob", "boss")
    }


@pytest.fixture
def desk(db, team, people):
    return Team.objects.create(
        group=team, email="desk@example.com", escalation_contact=people["boss"]
    )


@pytest.fixture
def schedule(desk, people):
    schedule = Schedule.objects.create(team=desk, name="Primary")
    layer = Layer.objects.create(
        schedule=schedule,
        start=T0 - dt.timedelta(days=1),
        zone="Europe/Bucharest",
        shift_kind=ShiftKind.WEEKLY,
    )
    LayerMember.objects.create(layer=layer, user=people["ann"], position=0)
    return schedule


@pytest.fixture
def escalation_policy(schedule, people, service):
    policy = EscalationPolicy.objects.create(name="Payments", repeat=1)
    policy.services.add(service)
    EscalationLevel.objects.create(
        policy=policy, position=0, target=TargetKind.SCHEDULE, schedule=schedule, wait_minutes=5
    )
    EscalationLevel.objects.create(
        policy=policy, position=1, target=TargetKind.USER, user=people["bob"], wait_minutes=10
    )
    return policy


def open_p1(service, team, **kwargs):
    return workflow.create_incident(
        actor=Actor.system(),
        title="Checkout down",
        impact=1,
        urgency=1,
        services=[service],
        assignment_group=team,
        now=T0,
        **kwargs,
    )


def paged_addresses(incident):
    return sorted(
        Notification.objects.filter(
            event__subject_kind="incident",
            event__subject_id=incident.pk,
            event__kind=NotificationKind.ESCALATION,
        ).values_list("address", flat=True)
    )


def ack_link(incident, address):
    n = Notification.objects.get(
        event__subject_id=incident.pk, event__kind=NotificationKind.ESCALATION, address=address
    )
    body = n.event.payload["body"]
    url = next(word for word in body.split() if "/oncall/ack/" in word)
    return url[url.index("/oncall/ack/") :]


def test_nobody_acknowledges_so_level_two_is_paged_then_the_policy_repeats(
    escalation_policy, service, team, people
):
    incident = open_p1(service, team)
    assert incident.next_escalation_at == T0
    assert sweep_escalations(now=at(0)) == 1
    assert paged_addresses(incident) == ["ann@desk.example.com"]
    assert sweep_escalations(now=at(4)) == 0  # level 1 waits 5 minutes
    assert sweep_escalations(now=at(5)) == 1
    assert paged_addresses(incident) == ["ann@desk.example.com", "bob@desk.example.com"]
    assert sweep_escalations(now=at(15)) == 1  # round 2, level 1
    assert sweep_escalations(now=at(20)) == 1  # round 2, level 2: the last
    assert sweep_escalations(now=at(999)) == 0
    incident.refresh_from_db()
    assert incident.next_escalation_at is None
    pages = incident.events.filter(kind=EventKind.PAGED).order_by("at")
    assert [(e.new_value["round"], e.new_value["level"]) for e in pages] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    assert pages[1].new_value["recipients"] == ["bob"]


def test_acknowledging_at_level_one_stops_the_escalation(escalation_policy, service, team, people):
    incident = open_p1(service, team)
    sweep_escalations(now=at(0))
    workflow.acknowledge(Incident.objects.get(pk=incident.pk), actor=people["ann"], now=at(2))
    assert sweep_escalations(now=at(60)) == 0
    assert paged_addresses(incident) == ["ann@desk.example.com"]
    assert Incident.objects.get(pk=incident.pk).next_escalation_at is None


def test_a_p3_incident_does_not_escalate(escalation_policy, service, team):
    incident = workflow.create_incident(
        actor=Actor.system(), title="slow", impact=3, urgency=1, services=[service], now=T0
    )
    assert incident.next_escalation_at is None


def test_the_migrated_default_policy_does_not_page_on_new_incidents(service, team, desk):
    assert EscalationPolicy.objects.get(is_default=True).starts_on_urgent is False
    incident = open_p1(service, team)
    assert incident.next_escalation_at is None


def test_the_override_is_paged_instead_of_the_rotation(
    escalation_policy, schedule, service, team, people
):
    from oncall import workflow as oncall

    oncall.add_override(
        schedule, actor=Actor.system(), user=people["boss"], start=at(-60), end=at(60)
    )
    incident = open_p1(service, team)
    sweep_escalations(now=at(0))
    assert paged_addresses(incident) == ["boss@desk.example.com"]


# --- the acknowledge link -----------------------------------------------------------------


def test_the_link_get_does_not_acknowledge_the_post_does_once(
    escalation_policy, service, team, people
):
    incident = open_p1(service, team)
    sweep_escalations(now=at(0))
    link = ack_link(incident, "ann@desk.example.com")
    client = Client()
    page = client.get(link)  # what a mail scanner does
    assert page.status_code == 200 and b'<form method="post">' in page.content
    assert Incident.objects.get(pk=incident.pk).state == IncidentState.NEW
    done = client.post(link)
    assert done.status_code == 200
    incident.refresh_from_db()
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.assignee == people["ann"]
    assert incident.next_escalation_at is None
    ack = incident.events.get(kind=EventKind.ACKNOWLEDGED)
    assert ack.actor == people["ann"] and "page link" in ack.note
    again = client.post(link)
    assert again.status_code == 410 and b"used already" in again.content
    assert incident.events.filter(kind=EventKind.ACKNOWLEDGED).count() == 1


def test_a_forged_link_is_refused(escalation_policy, service, team):
    incident = open_p1(service, team)
    sweep_escalations(now=at(0))
    link = ack_link(incident, "ann@desk.example.com")
    forged = link[:-3] + ("abc" if not link.endswith("abc/") else "xyz") + "/"
    response = Client().post(forged)
    assert response.status_code == 410 and b"not valid" in response.content
    # Someone else's page under a valid signature of another payload: refused too.
    token = link.removeprefix("/oncall/ack/").removesuffix("/")
    payload, _sep, signature = token.partition(":")
    value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    value["p"] = Page.objects.get().pk + 1
    swapped = base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode())
    tampered = f"/oncall/ack/{swapped.decode().rstrip('=')}:{signature}/"
    assert Client().post(tampered).status_code == 410
    assert Incident.objects.get(pk=incident.pk).state == IncidentState.NEW


def test_an_expired_link_is_refused(escalation_policy, service, team, settings):
    incident = open_p1(service, team)
    sweep_escalations(now=at(0))
    link = ack_link(incident, "ann@desk.example.com")
    settings.ONCALL_ACK_LINK_MAX_AGE = -1
    response = Client().post(link)
    assert response.status_code == 410 and b"expired" in response.content
    assert Incident.objects.get(pk=incident.pk).state == IncidentState.NEW


# --- exactly once ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_page_each_level_once(on_postgres, django_db_setup):
    people = [
        UserFactory(username=f"p{n}", email=f"p{n}@desk.example.com", groups=[AGENT_GROUP])
        for n in range(2)
    ]
    from tests.factories import GroupFactory, ServiceFactory

    group = GroupFactory(name="Racers")
    desk = Team.objects.create(group=group, escalation_contact=people[1])
    service = ServiceFactory()
    policy = EscalationPolicy.objects.create(name="Race")
    policy.teams.add(desk)
    EscalationLevel.objects.create(
        policy=policy, position=0, target=TargetKind.USER, user=people[0], wait_minutes=1
    )
    EscalationLevel.objects.create(policy=policy, position=1, target=TargetKind.TEAM_CONTACT)
    incidents = [
        workflow.create_incident(
            actor=Actor.system(),
            title=f"race {n}",
            impact=1,
            urgency=2,
            services=[service],
            assignment_group=group,
            now=T0,
        )
        for n in range(40)
    ]
    for now in (at(0), at(1)):
        barrier = threading.Barrier(2)
        results, errors = [], []

        def run(now=now, barrier=barrier, results=results, errors=errors):
            try:
                barrier.wait()
                results.append(sweep_escalations(now=now, batch_size=7))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sum(results) == len(incidents)
    assert Page.objects.count() == 2 * len(incidents)
    assert NotificationEvent.objects.filter(kind=NotificationKind.ESCALATION).count() == 80
    addresses = list(
        Notification.objects.filter(event__kind=NotificationKind.ESCALATION).values_list(
            "address", flat=True
        )
    )
    assert sorted(set(addresses)) == ["p0@desk.example.com", "p1@desk.example.com"]
    assert len(addresses) == 80
    assert Incident.objects.filter(next_escalation_at__isnull=False).count() == 0

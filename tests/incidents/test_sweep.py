"""The SLA sweep: warnings and breaches, each exactly once, to the right people."""

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from incidents import workflow
from incidents.models import EventKind, Incident, IncidentEvent, SlaSignal
from incidents.sweep import catch_up_sla_inputs, due_incidents, sweep_sla
from itsm.actors import Actor
from notifications.models import EventKind as NotificationKind
from notifications.models import Notification, NotificationEvent
from services.models import Team
from tests.factories import ServiceFactory, UserFactory

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def incident(agent, team, service):
    """P1 on a 24×7 policy: response 15 min, resolution 1 h; assigned to agent and team."""
    return workflow.create_incident(
        actor=Actor.system(),
        title="Checkout down",
        impact=1,
        urgency=1,
        services=[service],
        assignee=agent,
        assignment_group=team,
        now=T0,
    )


def signals(incident):
    return sorted(SlaSignal.objects.filter(incident=incident).values_list("target", "threshold"))


def staff_events(incident, kind):
    return NotificationEvent.objects.filter(
        subject_kind="incident", subject_id=incident.pk, kind=kind
    )


def test_nothing_happens_before_the_first_threshold(incident):
    assert sweep_sla(now=at(11)) == 0
    assert signals(incident) == []


def test_warnings_then_breach_each_once(incident, agent):
    assert sweep_sla(now=at(11.25)) == 1  # 75% of 15 min
    assert signals(incident) == [("response", 750)]
    warning = staff_events(incident, NotificationKind.SLA_WARNING).get()
    assert set(warning.notifications.values_list("address", flat=True)) == {agent.email}

    assert sweep_sla(now=at(13.5)) == 1  # 90%
    assert sweep_sla(now=at(13.5)) == 0  # a second sweep at the same instant adds nothing
    assert sweep_sla(now=at(15)) == 1  # the breach, at the deadline itself
    incident.refresh_from_db()
    assert incident.response_breached_at == at(15)
    assert incident.resolve_breached_at is None
    breach_event = incident.events.get(kind=EventKind.SLA_BREACHED)
    assert breach_event.new_value["target"] == "response"
    assert staff_events(incident, NotificationKind.SLA_BREACH).count() == 1
    # Next: the resolution warning at 45 minutes.
    assert incident.next_sla_check_at == at(45)


def test_breach_reaches_assignee_group_and_escalation_contact(incident, agent, team):
    boss = UserFactory(username="boss")
    Team.objects.create(group=team, email="desk@example.com", escalation_contact=boss)
    sweep_sla(now=at(16))
    breach = staff_events(incident, NotificationKind.SLA_BREACH).get()
    assert set(breach.notifications.values_list("address", flat=True)) == {
        agent.email,
        "desk@example.com",
    }
    # The escalation contact is paged by the default escalation policy (issue 21), in the
    # same sweep, with an acknowledge link.
    page = staff_events(incident, NotificationKind.ESCALATION).get()
    assert set(page.notifications.values_list("address", flat=True)) == {boss.email}
    assert "/oncall/ack/" in page.payload["body"]


def test_warning_goes_to_the_group_when_nobody_is_assigned(team, service):
    Team.objects.create(group=team, email="desk@example.com")
    incident = workflow.create_incident(
        actor=Actor.system(),
        title="x",
        impact=1,
        urgency=1,
        services=[service],
        assignment_group=team,
        now=T0,
    )
    sweep_sla(now=at(12))
    warning = staff_events(incident, NotificationKind.SLA_WARNING).get()
    assert list(warning.notifications.values_list("address", flat=True)) == ["desk@example.com"]


def test_a_late_sweep_tells_only_the_worst_but_records_all(incident):
    """After a restart the sweep finds both warnings and the breach due: it records all
    three (so none is sent later) and sends only the breach."""
    assert sweep_sla(now=at(20)) == 3
    assert signals(incident) == [("response", 750), ("response", 900), ("response", 1000)]
    assert staff_events(incident, NotificationKind.SLA_WARNING).count() == 0
    assert staff_events(incident, NotificationKind.SLA_BREACH).count() == 1


def test_resolution_breach_recorded_separately(incident, agent):
    workflow.acknowledge(incident, actor=agent, now=at(5))
    sweep_sla(now=at(61))
    incident.refresh_from_db()
    assert incident.response_breached_at is None
    assert incident.resolve_breached_at == at(60)
    assert incident.next_sla_check_at is None


def test_on_hold_incidents_are_not_swept_and_the_pause_moves_the_breach(incident, agent):
    workflow.hold(incident, actor=agent, reason="Waiting for the customer", now=at(5))
    assert sweep_sla(now=at(30)) == 0
    workflow.resume(incident, actor=agent, now=at(35))  # 30 min paused
    assert sweep_sla(now=at(41)) == 0  # 11 min of running time
    assert sweep_sla(now=at(44)) == 2  # 14 min: both warnings (11.25 and 13.5 min) are due
    assert sweep_sla(now=at(45)) == 1  # 15 min of running time: the response breach
    incident.refresh_from_db()
    assert incident.response_breached_at == at(45)


def test_met_targets_raise_nothing(incident, agent):
    workflow.acknowledge(incident, actor=agent, now=at(1))
    workflow.resolve(incident, actor=agent, code="fixed", notes="ok", now=at(2))
    assert sweep_sla(now=at(600)) == 0
    assert not SlaSignal.objects.filter(incident=incident).exists()


def _row(instance, *left_out):
    return {k: v for k, v in model_to_dict(instance).items() if k not in {"id", *left_out}}


def test_a_batch_writes_the_rows_that_one_at_a_time_writes(agent, team, service):
    """A batch's signals, timeline events and staff messages go in a few statements (from
    arrays on PostgreSQL); an incident checked on its own (a stale one, recomputed first)
    writes through the ORM one row at a time. Whichever way, the rows are the same: nothing
    the timeline, the outbox or the admin reads goes missing or differs."""
    Team.objects.create(group=team, email="desk@example.com")
    batch, alone = (
        workflow.create_incident(
            actor=Actor.system(),
            title="Checkout down",
            impact=1,
            urgency=1,
            services=[service],
            assignee=agent,
            assignment_group=team,
            now=T0,
        )
        for _ in range(2)
    )
    Incident.objects.filter(pk=alone.pk).update(sla_stale=True)
    assert sweep_sla(now=at(20)) == 6

    def timeline(incident):
        events = incident.events.filter(kind__in=[EventKind.SLA_WARNING, EventKind.SLA_BREACHED])
        return [_row(e, "incident") for e in events.order_by("at", "id")]

    def signal_rows(incident):
        return [_row(s, "incident") for s in incident.sla_signals.order_by("threshold")]

    def told(incident):
        (event,) = staff_events(incident, NotificationKind.SLA_BREACH)
        payload = {
            k: str(v)
            .replace(incident.reference, "REF")
            .replace(f"/incident/{incident.pk}/", "/incident/ID/")
            for k, v in event.payload.items()
            if k != "incident_id"
        }
        rows = [
            _row(n, "event", "created_at", "next_attempt_at") for n in event.notifications.all()
        ]
        return (
            _row(
                event,
                "key",
                "subject_id",
                "payload",
                "created_at",
                "expanded_at",
                "delivery_dispatched_at",
            ),
            payload,
            sorted(rows, key=lambda r: r["recipient_key"]),
        )

    assert len(timeline(batch)) == 3 and timeline(batch) == timeline(alone)
    assert len(signal_rows(batch)) == 3 and signal_rows(batch) == signal_rows(alone)
    assert told(batch) == told(alone)
    # And the same as what the ORM writes for an event and a notification created one by one.
    event = staff_events(batch, NotificationKind.SLA_BREACH).get()
    by_orm = NotificationEvent.objects.create(
        kind=event.kind,
        key="by the ORM",
        payload=event.payload,
        subject_kind=event.subject_kind,
        subject_id=event.subject_id,
        created_at=event.created_at,
        expanded_at=event.expanded_at,
        delivery_dispatched_at=event.delivery_dispatched_at,
    )
    assert _row(by_orm, "key") == _row(event, "key")
    sent = event.notifications.get(user=agent)
    orm_row = Notification.objects.create(
        event=event,
        channel=sent.channel,
        recipient_key="by the ORM",
        user=agent,
        address=sent.address,
        language=sent.language,
        status=sent.status,
    )
    ignored = ("recipient_key", "created_at", "next_attempt_at")
    assert _row(orm_row, *ignored) == _row(sent, *ignored)


def test_sweep_cost_does_not_grow_with_open_incidents_not_due(agent, service):
    def sweep_queries():
        with CaptureQueriesContext(connection) as ctx:
            sweep_sla(now=at(12))
        return len(ctx.captured_queries)

    def one_due_incident():
        return workflow.create_incident(
            actor=Actor.system(),
            title="due",
            impact=1,
            urgency=1,
            services=[service],
            assignee=agent,
            now=T0,
        )

    def not_due(count):
        for n in range(count):
            workflow.create_incident(
                actor=Actor.system(),
                title=f"later {n}",
                impact=3,
                urgency=3,
                services=[service],
                now=at(10),
            )

    catch_up_sla_inputs(at(0))  # the fixtures' catalog notes, consumed before measuring
    one_due_incident()
    not_due(5)
    few = sweep_queries()
    one_due_incident()  # the first one's next check (90%) is not due at 12 min
    not_due(40)
    assert sweep_queries() == few


def test_due_query_uses_the_partial_index(on_postgres, incident):
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        sql, params = due_incidents(at(20)).values("pk").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "incident_sla_due_idx" in plan


@pytest.mark.parametrize(
    "index, rows",
    [
        ("unique_sla_signal", lambda incident, user: SlaSignal.objects.filter(incident=incident)),
        (
            "incident_event_idx",
            lambda incident, user: IncidentEvent.objects.filter(incident=incident),
        ),
        # A user's deletion sets their events' actor to NULL, found through the partial index.
        (
            "incident_event_actor_idx",
            lambda incident, user: IncidentEvent.objects.filter(actor_id__in=[user.pk]),
        ),
    ],
)
def test_reads_of_what_the_sweep_writes_keep_an_index(on_postgres, incident, agent, index, rows):
    """The sweep's tables lost the indexes that only cost it inserts (migration 0011); the
    reads those indexes served still find one."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        sql, params = rows(incident, agent).values("pk").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert index in plan


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_raise_each_signal_once(on_postgres):
    """Two sweeps (two workers, or two beats by mistake) race over the same due incidents:
    SKIP LOCKED splits them, the unique signal row guards the rest."""
    agent = UserFactory(username="racer")
    service = ServiceFactory()
    from tests.factories import sla_policy

    sla_policy(
        name="race", is_default=True, targets={1: (dt.timedelta(minutes=15), dt.timedelta(hours=1))}
    )
    incidents = [
        workflow.create_incident(
            actor=Actor.system(),
            title=f"race {n}",
            impact=1,
            urgency=1,
            services=[service],
            assignee=agent,
            now=T0,
        )
        for n in range(60)
    ]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(sweep_sla(now=at(30), batch_size=7))
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Each incident: response 75/90/100 and resolution 75 (45 min > 30? no) -> 3 signals.
    assert sum(results) == 3 * len(incidents)
    assert SlaSignal.objects.count() == 3 * len(incidents)
    assert NotificationEvent.objects.filter(kind=NotificationKind.SLA_BREACH).count() == 60
    assert Notification.objects.filter(event__kind=NotificationKind.SLA_BREACH).count() == 60
    assert Incident.objects.filter(response_breached_at=at(15)).count() == len(incidents)

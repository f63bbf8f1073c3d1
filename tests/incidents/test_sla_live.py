"""The SLA engine end to end: a real Celery worker and beat on Redis flag a breach and the
email reaches a real SMTP server."""

import datetime as dt

import pytest

from incidents import workflow
from incidents.models import EventKind, Incident, SlaSignal
from itsm.actors import Actor
from services.models import SlaPolicy
from tests.factories import ServiceFactory, UserFactory, sla_policy
from tests.live import Processes, smtp_server, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_worker_and_beat_flag_a_two_second_breach_and_mail_it(on_postgres, redis_db, tmp_path):
    SlaPolicy.objects.filter(is_default=True).update(is_default=False)
    policy = sla_policy(
        name="Two seconds",
        targets={1: (dt.timedelta(seconds=2), dt.timedelta(seconds=60))},
    )
    service = ServiceFactory(default_sla_policy=policy)
    agent = UserFactory(username="oncall", email="oncall@desk.example.com")
    with smtp_server() as sink:
        procs = Processes(tmp_path, sink.port)
        procs.broker(redis_db)
        procs.env["SLA_SWEEP_INTERVAL"] = "1"
        try:
            procs.worker("worker")
            procs.beat()
            incident = workflow.create_incident(
                actor=Actor.system(),
                title="Checkout down",
                impact=1,
                urgency=1,
                services=[service],
                assignee=agent,
            )
            deadline = incident.response_due_at

            def breach_mail():
                mails = sink.by_recipient().get(agent.email, [])
                return [m for m in mails if "breached" in m["Subject"]]

            mails = wait_for(breach_mail, 45, "the breach email", procs)
            incident = Incident.objects.get(pk=incident.pk)
            assert incident.response_breached_at == deadline
            breach = incident.events.get(kind=EventKind.SLA_BREACHED)
            # Flagged within the sweep interval (1 s) plus the worker's scheduling slack.
            assert dt.timedelta(0) <= breach.at - deadline < dt.timedelta(seconds=5)
            assert incident.reference in mails[0]["Subject"]
            assert len(mails) == 1
            # Beat keeps sweeping: still exactly one breach of the response target.
            wait_for(
                lambda: SlaSignal.objects.filter(incident=incident).count() >= 3,
                10,
                "the response warnings",
                procs,
            )
            assert (
                SlaSignal.objects.filter(
                    incident=incident, threshold=1000, target="response"
                ).count()
                == 1
            )
        finally:
            procs.stop_all()

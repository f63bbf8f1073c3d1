"""Escalation end to end: a real Celery worker and beat on Redis page through a real SMTP
server; the incident nobody acknowledges reaches level 2, the one acknowledged through its
page's link stops at level 1."""

import re

import pytest
from django.conf import settings
from django.test import Client

from incidents import workflow
from incidents.models import EventKind, Incident, IncidentState
from itsm.actors import Actor
from oncall.models import EscalationLevel, EscalationPolicy, TargetKind
from tests.factories import AGENT_GROUP, ServiceFactory, UserFactory
from tests.live import Processes, smtp_server, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_level_two_when_nobody_acknowledges_and_level_one_stops_on_acknowledge(
    on_postgres, redis_db, tmp_path
):
    first = UserFactory(username="first", email="first@desk.example.com", groups=[AGENT_GROUP])
    second = UserFactory(username="second", email="second@desk.example.com", groups=[AGENT_GROUP])
    quiet, loud = ServiceFactory(name="Quiet"), ServiceFactory(name="Loud")
    policy = EscalationPolicy.objects.create(name="Live")
    policy.services.add(quiet, loud)
    EscalationLevel.objects.create(
        policy=policy, position=0, target=TargetKind.USER, user=first, wait_minutes=1
    )
    EscalationLevel.objects.create(
        policy=policy, position=1, target=TargetKind.USER, user=second, wait_minutes=1
    )
    with smtp_server() as sink:
        procs = Processes(tmp_path, sink.port)
        procs.broker(redis_db)
        procs.env["SLA_SWEEP_INTERVAL"] = "1"
        # The worker signs the links this process checks: one key, as one deployment has.
        procs.env["SECRET_KEY"] = settings.SECRET_KEY
        try:
            procs.worker("worker")
            procs.beat()
            acked, ignored = (
                workflow.create_incident(
                    actor=Actor.system(), title=title, impact=1, urgency=1, services=[service]
                )
                for title, service in (("Acked", quiet), ("Ignored", loud))
            )

            def pages(address, incident):
                mails = sink.by_recipient().get(address, [])
                return [m for m in mails if incident.reference in m["Subject"]]

            mails = wait_for(lambda: pages(first.email, acked), 45, "the level 1 page", procs)
            body = mails[0].get_body(preferencelist=("plain",)).get_content()
            link = re.search(r"https?://[^\s]+(/oncall/ack/[^\s]+/)", body).group(1)
            client = Client()
            assert client.get(link).status_code == 200  # a scanner's GET changes nothing
            assert Incident.objects.get(pk=acked.pk).state == IncidentState.NEW
            assert client.post(link).status_code == 200
            assert Incident.objects.get(pk=acked.pk).state == IncidentState.ACKNOWLEDGED

            wait_for(lambda: pages(second.email, ignored), 100, "the level 2 page", procs)
            assert len(pages(first.email, ignored)) == 1
            assert pages(second.email, acked) == []
            assert len(pages(first.email, acked)) == 1
            levels = [
                e.new_value["level"]
                for e in Incident.objects.get(pk=ignored.pk).events.filter(kind=EventKind.PAGED)
            ]
            assert levels == [1, 2]
            assert (
                Incident.objects.get(pk=acked.pk).events.filter(kind=EventKind.PAGED).count() == 1
            )
        finally:
            procs.stop_all()

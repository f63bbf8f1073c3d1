"""The timeline reads as sentences in the agent's language, update texts inline, one time
format with the zone shown: no "services: [6]" or "acknowledged → on_hold"."""

import pytest
from django.urls import reverse
from django.utils import translation

from incidents import workflow
from incidents.models import Incident, IncidentEvent
from incidents.timeline_text import sentence, with_update_text
from services.models import ServiceStatus


@pytest.fixture
def worked(agent, teammate, service):
    incident = workflow.create_incident(
        actor=agent, title="Card payments fail", services={service: ServiceStatus.MAJOR_OUTAGE}
    )
    incident = workflow.acknowledge(incident, actor=agent)
    incident = workflow.assign(incident, actor=agent, assignee=teammate)
    workflow.post_update(
        incident,
        actor=agent,
        body="Declines at the acquirer.",
        is_public=True,
        public_status="identified",
    )
    workflow.post_update(incident, actor=agent, body="restarted pod-7")
    incident = Incident.objects.get(pk=incident.pk)
    incident = workflow.hold(incident, actor=agent, reason="waiting on the acquirer")
    incident = workflow.resume(incident, actor=agent)
    incident = workflow.resolve(incident, actor=agent, code="fixed", notes="Acquirer fixed it")
    return incident


def sentences(incident):
    events = with_update_text(IncidentEvent.objects.filter(incident=incident).order_by("at", "id"))
    return [sentence(event) for event in events]


def test_each_event_is_a_sentence_with_its_text(worked):
    assert sentences(worked) == [
        "agent opened the incident at P3 on Payments (major outage).",
        "agent acknowledged the incident.",
        "agent assigned the incident to teammate (group: —).",
        "agent posted a public update (identified): “Declines at the acquirer.”",
        "agent added a work note: “restarted pod-7”",
        "agent put the incident on hold: waiting on the acquirer",
        "agent resumed work; the incident is acknowledged again.",
        "agent resolved the incident: Acquirer fixed it",
    ]


def test_the_sentences_are_in_romanian_on_a_romanian_page(worked):
    with translation.override("ro"):
        text = " ".join(sentences(worked))
    assert "acknowledged the incident" not in text and "put the incident on hold" not in text
    assert "waiting on the acquirer" in text  # what the agent typed stays as typed


def test_the_change_page_shows_the_sentences_once_with_one_time_format(admin_client, worked):
    content = admin_client.get(
        reverse("admin:incidents_incident_change", args=[worked.pk])
    ).content.decode()
    assert "agent put the incident on hold: waiting on the acquirer" in content
    assert "“Declines at the acquirer.”" in content
    assert content.count("restarted pod-7") == 1  # no second table of updates
    assert "acknowledged → on_hold" not in content and "services: [" not in content
    timeline = content[content.index('id="events-group"') :]
    assert " UTC</time>" in timeline

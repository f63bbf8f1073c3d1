"""The SLA in words on the incident page: each target named, met early or late by how much,
what is left and when it is due (in the desk's time zone, zone shown), and what is left while
the clock is paused."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents import workflow
from incidents.deadlines import left_on_hold
from incidents.models import Incident, IncidentState, SlaTargetKind
from incidents.sla_text import precise_duration, target_lines

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "minutes, text",
    [(0, "<1 min"), (12, "12 min"), (60, "1 h"), (130, "2 h 10 min"), (3 * 1440 + 240, "3 d 4 h")],
)
def test_precise_duration(minutes, text):
    assert precise_duration(dt.timedelta(minutes=minutes)) == text


def test_met_early_and_time_left_with_the_due_time_and_its_zone(settings):
    settings.TIME_ZONE = "Europe/Bucharest"
    incident = Incident(
        state=IncidentState.ACKNOWLEDGED,
        response_target=dt.timedelta(minutes=30),
        response_due_at=NOW + dt.timedelta(minutes=12),
        responded_at=NOW,
        resolution_target=dt.timedelta(hours=8),
        resolve_due_at=NOW + dt.timedelta(hours=2, minutes=10),
    )
    with timezone.override("Europe/Bucharest"):
        lines = target_lines(incident, NOW)
    assert lines == [
        ("met", "Response: met 12 min early"),
        ("ok", "Resolution: 2 h 10 min left (due 2 Mar 2026, 16:10 EET)"),
    ]


def test_met_late_and_breached():
    incident = Incident(
        state=IncidentState.ACKNOWLEDGED,
        response_target=dt.timedelta(minutes=30),
        response_due_at=NOW - dt.timedelta(hours=1),
        responded_at=NOW - dt.timedelta(minutes=55),
        resolution_target=dt.timedelta(hours=1),
        resolve_due_at=NOW - dt.timedelta(minutes=20),
        resolve_breached_at=NOW - dt.timedelta(minutes=20),
    )
    with timezone.override("UTC"):
        assert target_lines(incident, NOW) == [
            ("breached", "Response: met 5 min late"),
            ("breached", "Resolution: breached 20 min ago (due 2 Mar 2026, 11:40 UTC)"),
        ]


def test_in_the_last_quarter_the_line_warns():
    incident = Incident(
        state=IncidentState.NEW,
        response_target=dt.timedelta(hours=1),
        response_due_at=NOW + dt.timedelta(minutes=10),
    )
    assert target_lines(incident, NOW)[0][0] == "warning"


def test_on_hold_says_what_is_left_when_work_resumes():
    incident = Incident(
        state=IncidentState.ON_HOLD,
        resolution_target=dt.timedelta(hours=8),
        resolve_due_at=None,
    )
    left = {SlaTargetKind.RESOLUTION: dt.timedelta(hours=5, minutes=5)}
    assert target_lines(incident, NOW, left) == [
        ("paused", "Resolution: paused, 5 h 5 min left when work resumes"),
    ]


def test_left_on_hold_counts_the_clock_up_to_the_hold(agent, service):
    opened = timezone.now() - dt.timedelta(hours=3)
    incident = workflow.create_incident(
        actor=agent, title="Card payments fail", services=[service], now=opened
    )  # P3 on the 24×7 policy: 1 h response, 8 h resolution
    incident = workflow.acknowledge(incident, actor=agent, now=opened + dt.timedelta(minutes=5))
    incident = workflow.hold(
        incident, actor=agent, reason="waiting on the acquirer", now=opened + dt.timedelta(hours=2)
    )
    left = left_on_hold(incident, now=timezone.now())
    # Two hours ran before the hold; the hour since does not count.
    assert left == {SlaTargetKind.RESOLUTION: dt.timedelta(hours=6)}


def test_the_change_page_opens_with_state_priority_sla_and_actions(admin_client, agent, service):
    incident = workflow.create_incident(actor=agent, title="Card payments fail", services=[service])
    content = admin_client.get(
        reverse("admin:incidents_incident_change", args=[incident.pk])
    ).content.decode()
    header = content[content.index('id="incident-header"') :]
    header = header[: header.index("</section>")]
    assert incident.reference in header and "New" in header
    assert "Response: " in header and "left (due " in header
    assert "Resolution: " in header
    assert 'name="_acknowledge"' in header
    # The update form comes right after the header, before the long form.
    assert content.index('id="updates"') < content.index('id="incident_form"')


def test_the_change_page_lists_related_open_incidents(admin_client, agent, service):
    from tests.factories import ServiceFactory

    first = workflow.create_incident(actor=agent, title="Card payments fail", services=[service])
    same = workflow.create_incident(actor=agent, title="Checkout slow", services=[service])
    elsewhere = workflow.create_incident(
        actor=agent, title="Mail down", services=[ServiceFactory(name="Mail", slug="mail")]
    )
    closed = workflow.create_incident(actor=agent, title="Old one", services=[service])
    workflow.resolve(closed, actor=agent, code="fixed", notes="ok")
    content = admin_client.get(
        reverse("admin:incidents_incident_change", args=[first.pk])
    ).content.decode()
    related = content[content.index('id="related"') :]
    related = related[: related.index("</div>")]
    assert same.reference in related
    assert elsewhere.reference not in related and closed.reference not in related
    assert first.reference not in related

"""A stale version is a conflict only where the changes meet (issue 15, "what the agent types is
never lost"): a colleague's work note does not make a resolve stale; two changes of the same
thing still conflict, and the refusal names what clashed."""

import pytest

from incidents import workflow
from incidents.models import EventKind, IncidentEvent, IncidentState
from incidents.workflow import Change, conflicting


@pytest.fixture
def incident(agent, service):
    return workflow.create_incident(
        actor=agent, title="Card payments fail", impact=2, urgency=2, services=[service]
    )


def test_resolve_after_a_colleagues_work_note_goes_through(incident, agent, teammate):
    opened = incident.version
    workflow.post_update(incident, actor=teammate, body="Looking at the gateway logs")
    resolved = workflow.resolve(
        incident, actor=agent, code="fixed", notes="Restarted it", expected_version=opened
    )
    assert resolved.state == IncidentState.RESOLVED
    assert resolved.resolution_notes == "Restarted it"
    assert list(resolved.events.values_list("kind", flat=True)) == [
        EventKind.CREATED,
        EventKind.UPDATE_POSTED,
        EventKind.RESOLVED,
    ]


def test_resolve_after_a_colleagues_hold_is_refused(incident, agent, teammate):
    opened = incident.version
    workflow.hold(incident, actor=teammate, reason="Waiting on the bank")
    with pytest.raises(workflow.StaleVersion) as caught:
        workflow.resolve(incident, actor=agent, code="fixed", notes="x", expected_version=opened)
    assert "teammate" in str(caught.value) and "put on hold" in str(caught.value)
    assert caught.value.fields == {"state"}
    incident.refresh_from_db()
    assert incident.state == IncidentState.ON_HOLD


def test_title_edit_after_a_colleagues_priority_change_keeps_both(incident, agent, teammate):
    opened = incident.version
    workflow.change_priority(incident, actor=teammate, impact=1, urgency=1)
    workflow.edit(
        incident, actor=agent, expected_version=opened, changes={"title": "Visa payments fail"}
    )
    incident.refresh_from_db()
    assert incident.title == "Visa payments fail"
    assert (incident.impact, incident.urgency, incident.priority) == (1, 1, 1)


def test_priority_edit_after_a_colleagues_priority_change_is_refused(incident, agent, teammate):
    opened = incident.version
    workflow.change_priority(incident, actor=teammate, impact=1, urgency=1)
    with pytest.raises(workflow.StaleVersion):
        workflow.edit(incident, actor=agent, expected_version=opened, changes={"urgency": 3})
    incident.refresh_from_db()
    assert (incident.impact, incident.urgency) == (1, 1)


def test_a_public_update_clashes_with_a_state_change_a_work_note_does_not(
    incident, agent, teammate
):
    opened = incident.version
    workflow.acknowledge(incident, actor=teammate)
    with pytest.raises(workflow.StaleVersion):
        workflow.post_update(
            incident,
            actor=agent,
            body="We are investigating",
            is_public=True,
            public_status="investigating",
            expected_version=opened,
        )
    note = workflow.post_update(
        incident, actor=agent, body="Noted", is_public=False, expected_version=opened
    )
    assert note.pk is not None


def test_a_version_with_no_recorded_change_is_a_conflict(incident, agent, teammate):
    """Events older than the version column say nothing of what they touched: refuse."""
    opened = incident.version
    workflow.post_update(incident, actor=teammate, body="A note")
    IncidentEvent.objects.filter(incident=incident).update(version=None)
    with pytest.raises(workflow.StaleVersion):
        workflow.resolve(incident, actor=agent, code="fixed", notes="x", expected_version=opened)


def test_every_change_records_the_version_it_produced(incident, agent):
    workflow.acknowledge(incident, actor=agent)
    workflow.change_priority(incident, actor=agent, impact=1, urgency=2)
    workflow.post_update(incident, actor=agent, body="note")
    incident.refresh_from_db()
    versions = list(incident.events.order_by("id").values_list("kind", "version"))
    assert versions == [
        (EventKind.CREATED, 1),
        (EventKind.ACKNOWLEDGED, 2),
        (EventKind.PRIORITY_CHANGED, 3),
        (EventKind.UPDATE_POSTED, 4),
    ]
    assert incident.version == 4


@pytest.mark.parametrize(
    ("since", "touches", "clash"),
    [
        ([Change(2, EventKind.UPDATE_POSTED, frozenset())], {"state"}, False),
        ([Change(2, EventKind.HELD, frozenset({"state"}))], {"state"}, True),
        ([Change(2, EventKind.EDITED, frozenset({"title"}))], {"impact", "urgency"}, False),
        ([Change(2, EventKind.EDITED, frozenset({"title"}))], {"title"}, True),
        ([Change(2, None, frozenset({"*"}))], set(), True),
        ([], {"state"}, True),  # version 2 has no recorded change
    ],
)
def test_conflicting_is_where_the_changes_meet(since, touches, clash):
    assert bool(conflicting(since, 1, 2, frozenset(touches))) is clash


def test_a_caller_ahead_of_the_row_is_a_conflict():
    assert conflicting([], 5, 3, frozenset())

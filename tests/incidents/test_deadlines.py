"""Which deadlines an incident gets (SLA.md, "Which deadlines an incident gets", rules 1-7):
the glue between the clock (``incidents.sla``, tested in test_sla.py) and the incident."""

import datetime as dt
import logging

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from incidents import workflow
from incidents.models import EventKind, Incident, SlaSignal
from incidents.sweep import sweep_sla
from itsm.actors import Actor
from services.models import (
    BusinessCalendar,
    BusinessHours,
    Contract,
    Holiday,
    SlaTarget,
)
from tests.factories import (
    AGENT_GROUP,
    CalendarFactory,
    OrganizationFactory,
    ServiceFactory,
    UserFactory,
    office_calendar,
    sla_policy,
)

H = dt.timedelta(hours=1)
MIN = dt.timedelta(minutes=1)
UTC = dt.UTC


def utc(day, hour, minute=0):
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


# impact × urgency giving P3 (the matrix's 2×2).
P3 = {"impact": 2, "urgency": 2}


@pytest.fixture
def default_24x7(db):
    """The global default, 24×7: P3 1 h / 4 h."""
    return sla_policy(name="Default 24x7", targets={3: (H, 4 * H)}, is_default=True)


def reload(incident):
    return Incident.objects.get(pk=incident.pk)


# --- rule 4: resolving from hold keeps the deadlines ----------------------------------------------


def test_resolving_from_hold_keeps_both_deadlines_and_a_reopen_keeps_the_response_one(
    default_24x7,
):
    service = ServiceFactory(default_sla_policy=default_24x7)
    incident = workflow.create_incident(
        actor=Actor.system(), title="x", services=[service], now=utc(2, 8), **P3
    )
    workflow.hold(incident, actor=Actor.system(), reason="waiting on the bank", now=utc(2, 8, 10))
    incident = workflow.resolve(
        incident, actor=Actor.system(), code="fixed", notes="ok", now=utc(2, 8, 20)
    )
    incident = reload(incident)
    # The hold ended at the resolution: 10 minutes paused.
    assert incident.response_due_at == utc(2, 9, 10)
    assert incident.resolve_due_at == utc(2, 12, 10)

    workflow.reopen(incident, actor=Actor.system(), reason="back", now=utc(2, 9, 0))
    incident = reload(incident)
    assert incident.response_due_at == utc(2, 9, 10)  # met at the resolution: kept
    # The resolved 40 minutes are a pause too: 12:10 + 40 min.
    assert incident.resolve_due_at == utc(2, 12, 50)


def test_a_reopen_keeps_the_first_resolution(default_24x7):
    service = ServiceFactory(default_sla_policy=default_24x7)
    incident = workflow.create_incident(
        actor=Actor.system(), title="x", services=[service], now=utc(2, 8), **P3
    )
    workflow.acknowledge(incident, actor=Actor.system(), now=utc(2, 8, 5))
    workflow.resolve(incident, actor=Actor.system(), code="fixed", notes="ok", now=utc(2, 9))
    workflow.reopen(incident, actor=Actor.system(), now=utc(2, 10))
    workflow.resolve(incident, actor=Actor.system(), code="fixed", notes="again", now=utc(2, 11))
    incident = reload(incident)
    assert incident.first_resolved_at == utc(2, 9)
    assert incident.resolved_at == utc(2, 11)


def test_resolving_without_acknowledgement_is_a_response_not_an_acknowledgement(default_24x7):
    service = ServiceFactory(default_sla_policy=default_24x7)
    incident = workflow.create_incident(
        actor=Actor.system(), title="x", services=[service], now=utc(2, 8), **P3
    )
    workflow.resolve(incident, actor=Actor.system(), code="fixed", notes="ok", now=utc(2, 8, 30))
    incident = reload(incident)
    assert incident.acknowledged_at is None  # MTTA counts only acknowledgements
    assert incident.responded_at == utc(2, 8, 30)


# --- rules 1-2: per target, the earliest, each on its own calendar --------------------------------


@pytest.fixture
def two_services(default_24x7):
    """Fast: 24×7, P3 15 min / 3 days. Office: Mon–Fri 09–17 Bucharest, P3 1 h / 4 h."""
    fast_policy = sla_policy(
        name="Fast 24x7", calendar=CalendarFactory(name="Always"), targets={3: (15 * MIN, 72 * H)}
    )
    office_policy = sla_policy(
        name="Office", calendar=office_calendar(name="Bucharest office"), targets={3: (H, 4 * H)}
    )
    fast = ServiceFactory(name="Fast", default_sla_policy=fast_policy)
    office = ServiceFactory(name="Office", default_sla_policy=office_policy)
    return fast, office


def test_each_target_takes_the_earliest_policy_on_its_own_calendar(two_services):
    fast, office = two_services
    # Friday 6 March 2026, 16:30 in Bucharest (14:30Z).
    incident = workflow.create_incident(
        actor=Actor.system(), title="x", services=[fast, office], now=utc(6, 14, 30), **P3
    )
    incident = reload(incident)
    # Response: 24×7 15 min → Friday 14:45Z (office hours would say Monday).
    assert incident.response_due_at == utc(6, 14, 45)
    assert incident.response_target == 15 * MIN
    # Resolution: office 30 min on Friday + 3.5 h on Monday → Monday 12:30 local = 10:30Z,
    # earlier than 3 days of 24×7 (Monday 14:30Z).
    assert incident.resolve_due_at == utc(9, 10, 30)
    assert incident.resolution_target == 4 * H
    explain = incident.sla_explain
    assert (explain["response"]["policy_name"], explain["response"]["service_name"]) == (
        "Fast 24x7",
        "Fast",
    )
    assert explain["response"]["calendar_name"] == "Always"
    assert (explain["resolution"]["policy_name"], explain["resolution"]["service_name"]) == (
        "Office",
        "Office",
    )
    assert explain["resolution"]["calendar_name"] == "Bucharest office"


def test_a_service_without_policy_counts_under_the_global_default(default_24x7):
    slow = sla_policy(name="Slow", targets={3: (8 * H, 40 * H)})
    incident = workflow.create_incident(
        actor=Actor.system(),
        title="x",
        services=[ServiceFactory(default_sla_policy=slow), ServiceFactory(name="No policy")],
        now=utc(2, 8),
        **P3,
    )
    incident = reload(incident)
    assert incident.response_due_at == utc(2, 9)  # the default's 1 h, not Slow's 8 h
    assert incident.resolve_due_at == utc(2, 12)
    assert incident.sla_explain["response"]["service_name"] == "No policy"


def test_a_policy_without_the_priority_falls_back_to_the_global_default_target(default_24x7):
    only_p1 = sla_policy(name="Only P1", targets={1: (5 * MIN, H)})
    SlaTarget.objects.filter(policy=only_p1).exclude(priority=1).delete()
    incident = workflow.create_incident(
        actor=Actor.system(),
        title="x",
        services=[ServiceFactory(default_sla_policy=only_p1)],
        now=utc(2, 8),
        **P3,
    )
    incident = reload(incident)
    assert (incident.response_due_at, incident.resolve_due_at) == (utc(2, 9), utc(2, 12))
    assert incident.sla_explain["resolution"]["policy_name"] == "Default 24x7"


def test_the_change_page_says_which_policy_service_and_calendar_set_each_deadline(
    two_services, admin_client
):
    fast, office = two_services
    incident = workflow.create_incident(
        actor=Actor.system(), title="x", services=[fast, office], now=utc(6, 14, 30), **P3
    )
    page = admin_client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    text = page.content.decode()
    assert (
        "Response: 0:15:00 from policy Fast 24x7 (through Fast), counted on calendar Always."
        in text
    )
    assert (
        "Resolution: 4:00:00 from policy Office (through Office), counted on calendar "
        "Bucharest office." in text
    )


# --- rule 5: a breach is a fact about time --------------------------------------------------------


def test_acknowledging_after_an_unswept_breach_records_it_once(default_24x7):
    service = ServiceFactory(default_sla_policy=default_24x7)
    incident = workflow.create_incident(
        actor=Actor.system(), title="x", services=[service], now=utc(2, 8), **P3
    )
    # Response due 09:00; no sweep ran; acknowledged at 09:05.
    workflow.acknowledge(incident, actor=UserFactory(groups=[AGENT_GROUP]), now=utc(2, 9, 5))
    incident = reload(incident)
    assert incident.response_breached_at == utc(2, 9)
    breach = SlaSignal.objects.get(incident=incident, target="response", threshold=1000)
    assert breach.due_at == utc(2, 9)
    assert incident.events.filter(kind=EventKind.SLA_BREACHED).count() == 1
    # The acknowledgement is still a change the stale check knows (the version it produced),
    # and the breach follows it on the timeline.
    timeline = list(incident.events.order_by("at", "id"))
    assert [e.kind for e in timeline[-2:]] == [EventKind.ACKNOWLEDGED, EventKind.SLA_BREACHED]
    assert timeline[-2].version == incident.version
    # A sweep coming later records nothing more about the response.
    sweep_sla(now=utc(2, 9, 30))
    assert SlaSignal.objects.filter(incident=incident, target="response").count() == 1
    assert incident.events.filter(kind=EventKind.SLA_BREACHED).count() == 1


def test_resolving_after_an_unswept_breach_records_both_once(default_24x7):
    service = ServiceFactory(default_sla_policy=default_24x7)
    incident = workflow.create_incident(
        actor=Actor.system(), title="x", services=[service], now=utc(2, 8), **P3
    )
    sweep_sla(now=utc(2, 9, 1))  # the sweep saw the response breach
    workflow.resolve(incident, actor=Actor.system(), code="fixed", notes="ok", now=utc(2, 13))
    incident = reload(incident)
    assert incident.response_breached_at == utc(2, 9)
    assert incident.resolve_breached_at == utc(2, 12)
    breaches = SlaSignal.objects.filter(incident=incident, threshold=1000)
    assert sorted(breaches.values_list("target", "due_at")) == [
        ("resolution", utc(2, 12)),
        ("response", utc(2, 9)),
    ]
    assert incident.events.filter(kind=EventKind.SLA_BREACHED).count() == 2


# --- rule 6: edits move open deadlines ------------------------------------------------------------


@pytest.fixture
def office_incident(db):
    """Office hours Mon–Fri 09–17 Bucharest, 1 h / 8 h as the global default, opened Thursday
    5 March 2026 16:00 local (14:00Z): response due 17:00 local Thursday, resolution 1 h on
    Thursday + 7 h on Friday → Friday 16:00 local (14:00Z)."""
    calendar = office_calendar(name="Office")
    policy = sla_policy(name="Office", calendar=calendar, targets={3: (H, 8 * H)}, is_default=True)
    service = ServiceFactory(default_sla_policy=policy)
    incident = workflow.create_incident(
        actor=Actor.system(), title="x", services=[service], now=utc(5, 14), **P3
    )
    incident = reload(incident)
    assert incident.resolve_due_at == utc(6, 14)
    return incident


def test_a_holiday_added_after_opening_moves_the_deadline_and_the_next_check(office_incident):
    calendar = BusinessCalendar.objects.get(name="Office")
    Holiday.objects.create(calendar=calendar, date=dt.date(2026, 3, 6), name="Bridge day")
    sweep_sla(now=utc(5, 14, 1))
    incident = reload(office_incident)
    # Friday is now a holiday: 1 h on Thursday + 7 h on Monday → Monday 16:00 local.
    assert incident.resolve_due_at == utc(9, 14)
    moved = incident.events.get(kind=EventKind.SLA_MOVED)
    assert moved.old_value["resolve_due_at"] == utc(6, 14).isoformat()
    assert moved.new_value["resolve_due_at"] == utc(9, 14).isoformat()
    # The next check follows: the response warning at 75% of 1 h (Thursday 16:45 local).
    assert incident.next_sla_check_at == utc(5, 14, 45)


def test_a_holiday_removed_in_bulk_moves_the_breach_to_its_true_instant(db):
    calendar = office_calendar(name="Office", holidays=[dt.date(2026, 3, 6)])
    policy = sla_policy(name="Office", calendar=calendar, targets={3: (H, 8 * H)}, is_default=True)
    incident = workflow.create_incident(
        actor=Actor.system(),
        title="x",
        services=[ServiceFactory(default_sla_policy=policy)],
        now=utc(5, 14),
        **P3,
    )
    workflow.acknowledge(incident, actor=Actor.system(), now=utc(5, 14, 10))
    assert reload(incident).resolve_due_at == utc(9, 14)
    # The admin's "delete selected" is a bulk delete: it skips Holiday.delete().
    Holiday.objects.filter(calendar=calendar).delete()
    sweep_sla(now=utc(6, 15))
    incident = reload(incident)
    assert incident.resolve_due_at == utc(6, 14)
    assert incident.resolve_breached_at == utc(6, 14)  # not Monday's: the breach is on time


def test_bulk_edit_of_hours_is_seen_by_a_worker_holding_the_calendar_in_memory(office_incident):
    calendar = BusinessCalendar.objects.get(name="Office")
    sweep_sla(now=utc(5, 14, 1))  # the calendar is now in this process's memory
    # Friday closes at 12:00 instead of 17:00, edited in bulk (no save(), no signal).
    BusinessHours.objects.filter(calendar=calendar, weekday=4).update(closes_at=dt.time(12))
    sweep_sla(now=utc(5, 14, 2))
    incident = reload(office_incident)
    # 1 h Thursday + 3 h Friday + 4 h Monday → Monday 13:00 local.
    assert incident.resolve_due_at == utc(9, 11)


def test_a_target_edit_and_a_new_contract_move_open_deadlines(office_incident):
    SlaTarget.objects.filter(policy__name="Office", priority=3).update(resolution_target=2 * H)
    sweep_sla(now=utc(5, 14, 1))
    incident = reload(office_incident)
    # 1 h Thursday + 1 h Friday → Friday 10:00 local.
    assert incident.resolve_due_at == utc(6, 8)

    organization = OrganizationFactory()
    fast = sla_policy(name="Premium", targets={3: (10 * MIN, H)})
    Incident.objects.filter(pk=incident.pk).update(organization=organization)
    Contract.objects.create(
        organization=organization, service=incident.services.get(), sla_policy=fast
    )
    sweep_sla(now=utc(5, 14, 2))
    incident = reload(office_incident)
    assert incident.resolve_due_at == utc(5, 15)  # Premium, 24×7: 1 h after opening
    assert incident.sla_explain["resolution"]["policy_name"] == "Premium"
    assert incident.events.filter(kind=EventKind.SLA_MOVED).count() == 2


def test_warnings_and_breaches_already_recorded_stay_after_a_move(office_incident):
    sweep_sla(now=utc(5, 15))  # response breached at 17:00 local Thursday
    calendar = BusinessCalendar.objects.get(name="Office")
    Holiday.objects.create(calendar=calendar, date=dt.date(2026, 3, 5))
    sweep_sla(now=utc(5, 15, 1))
    incident = reload(office_incident)
    assert incident.response_breached_at == utc(5, 15)
    assert SlaSignal.objects.filter(incident=incident, target="response", threshold=1000).exists()


# --- rule 7: valid inputs only --------------------------------------------------------------------


def test_overlapping_windows_of_one_weekday_are_refused(db):
    calendar = office_calendar(name="Office")
    overlapping = BusinessHours(
        calendar=calendar, weekday=0, opens_at=dt.time(16), closes_at=dt.time(18)
    )
    with pytest.raises(ValidationError, match="overlap"):
        overlapping.full_clean()
    touching = BusinessHours(
        calendar=calendar, weekday=0, opens_at=dt.time(17), closes_at=dt.time(0)
    )
    touching.full_clean()  # 17:00–24:00 touches 09–17: fine


def test_the_calendar_admin_refuses_overlapping_new_windows(admin_client):
    url = reverse("admin:services_businesscalendar_add")
    data = {
        "name": "Shifts",
        "time_zone": "Europe/Bucharest",
        "hours-TOTAL_FORMS": "2",
        "hours-INITIAL_FORMS": "0",
        "hours-0-weekday": "0",
        "hours-0-opens_at": "08:00",
        "hours-0-closes_at": "16:00",
        "hours-1-weekday": "0",
        "hours-1-opens_at": "15:00",
        "hours-1-closes_at": "23:00",
        "holidays-TOTAL_FORMS": "0",
        "holidays-INITIAL_FORMS": "0",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "overlap" in response.content.decode()
    assert not BusinessCalendar.objects.filter(name="Shifts").exists()


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Mars/Olympus", ""])
def test_a_time_zone_must_be_a_real_iana_name(db, zone):
    with pytest.raises(ValidationError) as refused:
        BusinessCalendar(name="x", time_zone=zone).full_clean()
    assert "time_zone" in refused.value.message_dict


def test_a_target_longer_than_a_year_is_refused(db):
    policy = sla_policy(name="P")
    target = SlaTarget(
        policy=policy, priority=1, response_target=H, resolution_target=dt.timedelta(days=80_000)
    )
    with pytest.raises(ValidationError) as refused:
        target.validate_unique = lambda *a, **k: None  # the policy already has a P1 target
        target.clean_fields()
    assert "resolution_target" in refused.value.message_dict


def test_one_broken_incident_does_not_starve_the_others(default_24x7, caplog):
    service = ServiceFactory(default_sla_policy=default_24x7)
    healthy = [
        workflow.create_incident(
            actor=Actor.system(), title=f"ok {n}", services=[service], now=utc(2, 8), **P3
        )
        for n in range(3)
    ]
    broken = workflow.create_incident(
        actor=Actor.system(), title="broken", services=[service], now=utc(2, 8), **P3
    )
    # A calendar stored before validation existed: two overlapping windows (bulk_create skips
    # clean()), behind the broken incident's resolution deadline.
    bad = BusinessCalendar.objects.create(name="Bad", time_zone="UTC", is_24x7=False)
    BusinessHours.objects.bulk_create(
        [
            BusinessHours(calendar=bad, weekday=d, opens_at=dt.time(8), closes_at=dt.time(16))
            for d in range(7)
        ]
        + [BusinessHours(calendar=bad, weekday=0, opens_at=dt.time(15), closes_at=dt.time(18))]
    )
    explain = reload(broken).sla_explain
    explain["response"]["calendar"] = bad.pk
    Incident.objects.filter(pk=broken.pk).update(sla_explain=explain)

    with caplog.at_level(logging.ERROR, logger="incidents.sweep"):
        sweep_sla(now=utc(2, 9, 1))
    for incident in healthy:
        assert SlaSignal.objects.filter(
            incident=incident, target="response", threshold=1000
        ).exists()
    broken = reload(broken)
    assert broken.sla_error
    assert broken.next_sla_check_at > utc(2, 9, 1)  # not retried in a hot loop
    assert broken.reference in caplog.text


# --- the migration fills the new columns from the timeline ----------------------------------------


def test_the_migration_fills_responded_and_first_resolution_from_the_timeline(default_24x7):
    import importlib

    from django.apps import apps

    fill = importlib.import_module(
        "incidents.migrations.0006_responded_first_resolved_explain"
    ).fill_responded_and_first_resolution
    service = ServiceFactory(default_sla_policy=default_24x7)

    def opened():
        return workflow.create_incident(
            actor=Actor.system(), title="x", services=[service], now=utc(2, 8), **P3
        )

    acknowledged = opened()
    workflow.acknowledge(acknowledged, actor=Actor.system(), now=utc(2, 8, 5))
    resolved_only = opened()
    workflow.resolve(
        resolved_only, actor=Actor.system(), code="fixed", notes="ok", now=utc(2, 8, 30)
    )
    reopened = opened()
    workflow.acknowledge(reopened, actor=Actor.system(), now=utc(2, 8, 1))
    workflow.resolve(reopened, actor=Actor.system(), code="fixed", notes="ok", now=utc(2, 9))
    workflow.reopen(reopened, actor=Actor.system(), now=utc(2, 10))
    # The rows as the old code left them: resolving set acknowledged_at, nothing kept the
    # response or the first resolution apart.
    Incident.objects.update(responded_at=None, first_resolved_at=None)
    Incident.objects.filter(pk=resolved_only.pk).update(acknowledged_at=utc(2, 8, 30))

    fill(apps, None)

    rows = {
        i.pk: (i.acknowledged_at, i.responded_at, i.first_resolved_at)
        for i in Incident.objects.all()
    }
    assert rows[acknowledged.pk] == (utc(2, 8, 5), utc(2, 8, 5), None)
    assert rows[resolved_only.pk] == (None, utc(2, 8, 30), utc(2, 8, 30))
    assert rows[reopened.pk] == (utc(2, 8, 1), utc(2, 8, 1), utc(2, 9))

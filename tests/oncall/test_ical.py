"""The calendar feeds round trip through icalendar, with overrides applied; the schedule page
shows the timeline and who is on call; an override is added from there."""

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from icalendar import Calendar

from oncall import ical
from oncall.models import Layer, LayerMember, Override, Schedule, ShiftKind
from services.models import Team
from tests.factories import UserFactory


@pytest.fixture
def people(db):
    return [UserFactory(username=n, email=f"{n}@desk.example.com") for n in ("ann", "bob", "cy")]


@pytest.fixture
def schedule(db, team, people):
    desk = Team.objects.create(group=team)
    schedule = Schedule.objects.create(team=desk, name="Primary")
    start = timezone.now().replace(hour=7, minute=0, second=0, microsecond=0) - dt.timedelta(days=2)
    layer = Layer.objects.create(
        schedule=schedule, start=start, zone="Europe/Bucharest", shift_kind=ShiftKind.DAILY
    )
    for n, user in enumerate(people[:2]):
        LayerMember.objects.create(layer=layer, user=user, position=n)
    return schedule


def events_of(body):
    cal = Calendar.from_ical(body)
    return [
        (str(e["summary"]), e.decoded("dtstart"), e.decoded("dtend")) for e in cal.walk("VEVENT")
    ]


def test_schedule_feed_round_trips_with_the_override_applied(schedule, people):
    now = timezone.now().replace(microsecond=0)  # iCalendar keeps whole seconds
    cover = Override.objects.create(
        schedule=schedule,
        user=people[2],
        start=now + dt.timedelta(days=3),
        end=now + dt.timedelta(days=3, hours=5),
    )
    response = Client().get(f"/oncall/ical/{ical.schedule_token(schedule)}.ics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    events = events_of(response.content)
    assert events, "an empty calendar"
    covered = [e for e in events if e[0].startswith("On call: cy")]
    assert [(s, e) for _name, s, e in covered] == [(cover.start, cover.end)]
    # Nobody else is on call during the override: it replaced the rotation, not added to it.
    for name, start, end in events:
        if not name.startswith("On call: cy"):
            assert end <= cover.start or start >= cover.end, name
    # The shifts tile the feed's range without overlaps.
    ordered = sorted(events, key=lambda e: e[1])
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert a[2] == b[1]


def test_person_feed_holds_only_their_shifts(schedule, people):
    response = Client().get(f"/oncall/ical/{ical.person_token(people[1])}.ics")
    events = events_of(response.content)
    assert events and all(name.startswith("On call: bob") for name, _s, _e in events)


def test_a_forged_or_revoked_feed_url_is_not_found(schedule):
    token = ical.schedule_token(schedule)
    assert Client().get(f"/oncall/ical/{token[:-2]}xx.ics").status_code == 404
    schedule.feed_key = "changed"
    schedule.save()
    assert Client().get(f"/oncall/ical/{token}.ics").status_code == 404


def test_the_schedule_page_shows_the_timeline_and_adds_an_override(schedule, people, admin_client):
    page = admin_client.get(f"/admin/oncall/schedule/{schedule.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "<svg" in body and "oncall-timeline" in body
    assert "Now:" in body and "Next:" in body
    now = timezone.now()
    response = admin_client.post(
        f"/admin/oncall/schedule/{schedule.pk}/override/",
        {
            "user": people[2].pk,
            "start": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
            "end": (now + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    assert response.status_code == 302
    assert Override.objects.filter(schedule=schedule, user=people[2]).exists()
    from oncall import schedules

    assert schedules.on_call_now([schedule.pk])[schedule.pk] == people[2].pk


def test_an_override_ending_before_it_starts_is_refused(schedule, people, admin_client):
    now = timezone.now()
    admin_client.post(
        f"/admin/oncall/schedule/{schedule.pk}/override/",
        {
            "user": people[2].pk,
            "start": now.strftime("%Y-%m-%d %H:%M:%S"),
            "end": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    assert not Override.objects.exists()


def test_my_shifts_lists_the_persons_shifts(schedule, people, client):
    people[0].is_staff = True
    people[0].is_superuser = True
    people[0].save()
    client.force_login(people[0])
    page = client.get("/admin/oncall/schedule/my-shifts/")
    assert page.status_code == 200
    assert "Primary" in page.content.decode() and "/oncall/ical/" in page.content.decode()


def _page_queries(admin_client, schedule):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get(f"/admin/oncall/schedule/{schedule.pk}/change/").status_code == 200
    return len(captured)


def test_the_schedule_page_costs_the_same_with_10_or_100_overrides_and_people(
    schedule, people, admin_client
):
    now = timezone.now()
    layer = schedule.layers.get()

    def grow(n):
        for k in range(n):
            user = UserFactory(username=f"extra{n}-{k}")
            LayerMember.objects.create(layer=layer, user=user, position=10 + k)
            Override.objects.create(
                schedule=schedule,
                user=user,
                start=now + dt.timedelta(hours=3 * k),
                end=now + dt.timedelta(hours=3 * k + 2),
            )

    grow(10)
    _page_queries(admin_client, schedule)  # warms the content-type and session caches
    ten = _page_queries(admin_client, schedule)
    grow(90)
    assert _page_queries(admin_client, schedule) == ten

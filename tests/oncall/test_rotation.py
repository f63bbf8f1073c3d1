"""The rotation maths: who is on call, shifts tiling time, handoffs across DST."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from oncall.rotation import (
    DAILY,
    WEEKLY,
    Layer,
    Override,
    Restriction,
    layer_shifts,
    next_shifts,
    on_call_at,
    shifts_between,
)

ZONES = ["Europe/Bucharest", "America/New_York", "Australia/Sydney"]
BUCHAREST = ZoneInfo("Europe/Bucharest")


def local(zone, *args):
    return datetime(*args, tzinfo=ZoneInfo(zone))


zones = st.sampled_from(ZONES)
shift_lengths = st.sampled_from([DAILY, WEEKLY, timedelta(hours=12), timedelta(days=3)])
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@st.composite
def layers(draw, restricted=None):
    zone = draw(zones)
    start_day = draw(
        st.dates(min_value=datetime(2025, 1, 1).date(), max_value=datetime(2027, 1, 1).date())
    )
    hour = draw(st.integers(0, 23).filter(lambda h: h not in (2, 3)))  # no skipped handoff hour
    start = datetime(start_day.year, start_day.month, start_day.day, hour, tzinfo=ZoneInfo(zone))
    people = tuple(draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4)))
    restrictions = ()
    if restricted if restricted is not None else draw(st.booleans()):
        restrictions = (
            Restriction(
                weekdays=frozenset(draw(st.sets(st.integers(0, 6), min_size=1))),
                start=draw(st.sampled_from([0, 480, 540, 1320])),
                end=draw(st.sampled_from([360, 1020, 1440])),
            ),
        )
    return Layer(people, start, zone, draw(shift_lengths), restrictions)


def assert_tiles(shifts, start, end):
    assert shifts, "no shift at all"
    assert shifts[0].start == start and shifts[-1].end == end
    for a, b in zip(shifts, shifts[1:], strict=False):
        assert a.end == b.start, (a, b)
    assert all(s.start < s.end for s in shifts)


@settings(max_examples=200, deadline=None)
@given(layers(restricted=False), instants, st.integers(1, 60))
def test_unrestricted_shifts_tile_time_without_gaps_or_overlaps(layer, t, days):
    start = max(t, layer.start)
    end = start + timedelta(days=days)
    assert_tiles(layer_shifts(layer, start, end), start, end)


@settings(max_examples=200, deadline=None)
@given(layers(), instants)
def test_exactly_one_person_at_any_instant_inside_restrictions(layer, t):
    start, end = t - timedelta(days=3), t + timedelta(days=3)
    shifts = layer_shifts(layer, start, end)
    covering = [s for s in shifts if s.start <= t < s.end]
    assert len(covering) <= 1
    assert on_call_at([layer], [], t) == (covering[0].person if covering else None)
    for a, b in zip(shifts, shifts[1:], strict=False):
        assert a.end <= b.start  # no overlaps


@settings(max_examples=150, deadline=None)
@given(
    zones,
    st.dates(min_value=datetime(2025, 1, 1).date(), max_value=datetime(2027, 1, 1).date()),
    st.sampled_from([DAILY, WEEKLY]),
)
def test_nine_oclock_handoff_stays_nine_local_across_dst(zone, day, shift):
    layer = Layer(("ann", "bob", "cy"), local(zone, day.year, day.month, day.day, 9), zone, shift)
    start = layer.start
    shifts = layer_shifts(layer, start, start + timedelta(days=400))
    for s in shifts[:-1]:
        handoff = s.end.astimezone(ZoneInfo(zone))
        assert (handoff.hour, handoff.minute) == (9, 0), s
        assert (
            handoff.weekday() == layer.start.astimezone(ZoneInfo(zone)).weekday() or shift == DAILY
        )


def test_daily_shift_over_spring_forward_in_bucharest_lasts_23_hours():
    layer = Layer(
        ("ann", "bob"), local("Europe/Bucharest", 2026, 3, 28, 9), "Europe/Bucharest", DAILY
    )
    shifts = layer_shifts(layer, layer.start, local("Europe/Bucharest", 2026, 3, 31, 9))
    assert [s.end - s.start for s in shifts] == [
        timedelta(hours=23),
        timedelta(hours=24),
        timedelta(hours=24),
    ]
    assert [s.person for s in shifts] == ["ann", "bob", "ann"]
    assert shifts[1].start == local("Europe/Bucharest", 2026, 3, 29, 9)


def test_weekly_handoff_on_monday_nine_in_new_york_after_fall_back():
    layer = Layer(
        ("ann", "bob"), local("America/New_York", 2026, 10, 26, 9), "America/New_York", WEEKLY
    )
    t = local("America/New_York", 2026, 11, 2, 8, 59)
    assert on_call_at([layer], [], t) == "ann"
    assert on_call_at([layer], [], t + timedelta(minutes=1)) == "bob"


def test_sydney_handoff_when_clocks_go_forward_in_october():
    layer = Layer(
        ("ann", "bob"), local("Australia/Sydney", 2026, 10, 3, 9), "Australia/Sydney", DAILY
    )
    assert on_call_at([layer], [], local("Australia/Sydney", 2026, 10, 4, 8, 59)) == "ann"
    assert on_call_at([layer], [], local("Australia/Sydney", 2026, 10, 4, 9, 0)) == "bob"


def test_business_hours_layer_over_a_24x7_layer_and_an_override_over_both():
    base = Layer(("night",), local("Europe/Bucharest", 2026, 1, 5, 0), "Europe/Bucharest", WEEKLY)
    office = Layer(
        ("ann", "bob"),
        local("Europe/Bucharest", 2026, 1, 5, 9),
        "Europe/Bucharest",
        DAILY,
        (Restriction(frozenset(range(5)), 540, 1020),),
    )
    layers_ = [base, office]
    assert on_call_at(layers_, [], local("Europe/Bucharest", 2026, 1, 6, 10)) == "bob"
    assert on_call_at(layers_, [], local("Europe/Bucharest", 2026, 1, 6, 17)) == "night"
    assert (
        on_call_at(layers_, [], local("Europe/Bucharest", 2026, 1, 10, 10)) == "night"
    )  # Saturday
    cover = Override(
        local("Europe/Bucharest", 2026, 1, 6, 12), local("Europe/Bucharest", 2026, 1, 6, 14), "cy"
    )
    assert on_call_at(layers_, [cover], local("Europe/Bucharest", 2026, 1, 6, 13)) == "cy"
    day = shifts_between(
        layers_,
        [cover],
        local("Europe/Bucharest", 2026, 1, 6, 0),
        local("Europe/Bucharest", 2026, 1, 7, 0),
    )
    assert [(s.start.astimezone(BUCHAREST).hour, s.person) for s in day] == [
        (0, "night"),
        (9, "bob"),
        (12, "cy"),
        (14, "bob"),
        (17, "night"),
    ]
    assert [s.layer for s in day] == [0, 1, None, 1, 0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(layers(), min_size=1, max_size=3),
    instants,
    st.lists(
        st.tuples(st.integers(-48, 48), st.integers(1, 48), st.sampled_from("xyz")), max_size=3
    ),
)
def test_final_schedule_agrees_with_on_call_at(layers_, t, raw_overrides):
    overrides = [
        Override(t + timedelta(hours=a), t + timedelta(hours=a + b), p) for a, b, p in raw_overrides
    ]
    start, end = t - timedelta(days=2), t + timedelta(days=2)
    final = shifts_between(layers_, overrides, start, end)
    for a, b in zip(final, final[1:], strict=False):
        assert a.end <= b.start
    for probe in [t, t + timedelta(hours=7, minutes=13), t - timedelta(hours=30)]:
        covering = [s.person for s in final if s.start <= probe < s.end]
        assert covering == (
            []
            if on_call_at(layers_, overrides, probe) is None
            else [on_call_at(layers_, overrides, probe)]
        )


def test_next_shifts_start_with_the_current_one():
    layer = Layer(
        ("ann", "bob", "cy"), local("Europe/Bucharest", 2026, 1, 5, 9), "Europe/Bucharest", DAILY
    )
    now = local("Europe/Bucharest", 2026, 1, 6, 15)
    shifts = next_shifts([layer], [], now, 4)
    assert [s.person for s in shifts] == ["bob", "cy", "ann", "bob"]
    assert shifts[0].start == local("Europe/Bucharest", 2026, 1, 6, 9)
    assert shifts[-1].end == local("Europe/Bucharest", 2026, 1, 10, 9)


def test_nobody_before_the_rotation_starts():
    layer = Layer(("ann",), local("Europe/Bucharest", 2026, 1, 5, 9), "Europe/Bucharest", DAILY)
    assert on_call_at([layer], [], local("Europe/Bucharest", 2026, 1, 5, 8)) is None


def test_daily_shift_over_fall_back_in_bucharest_lasts_25_hours():
    layer = Layer(
        ("ann", "bob"), local("Europe/Bucharest", 2026, 10, 24, 9), "Europe/Bucharest", DAILY
    )
    shifts = layer_shifts(layer, layer.start, local("Europe/Bucharest", 2026, 10, 26, 9))
    assert [s.end - s.start for s in shifts] == [timedelta(hours=25), timedelta(hours=24)]

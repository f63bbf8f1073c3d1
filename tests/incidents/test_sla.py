"""The SLA clock against its contract, /work/shared/SLA.md: one example per edge case it names,
then hypothesis properties, including a brute-force check of rule 1 minute by minute.

Pure functions, so no database and no Django here.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.sla import Calendar, StillOnHold, business_time_between, due_at

BUCHAREST = ZoneInfo("Europe/Bucharest")
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
NOTHING = timedelta(0)

# Mon-Fri 09:00-17:00 in Bucharest. June 2025: Mon 2 .. Fri 6, Mon 9 (Rusalii) .. Fri 13.
OFFICE = Calendar.office_hours("Europe/Bucharest")
# Every day 00:00-06:00: the window that contains the DST jump at 03:00 / 04:00.
NIGHTS = Calendar("Europe/Bucharest", weekly=(((0, 360),),) * 7)
ALL_DAY = Calendar("Europe/Bucharest", weekly=(((0, 1440),),) * 7)
ROUND_THE_CLOCK = Calendar.twenty_four_seven("Europe/Bucharest")


def bucharest(*fields: int, fold: int = 0) -> datetime:
    return datetime(*fields, tzinfo=BUCHAREST, fold=fold)


# --- Starting outside hours, closing times, half-open windows ---------------------------------


def test_start_after_hours_on_friday_counts_from_monday_opening():
    assert due_at(bucharest(2025, 6, 6, 16, 30), HOUR, OFFICE) == bucharest(2025, 6, 9, 9, 30)


def test_target_used_up_at_closing_is_due_at_closing_not_next_opening():
    assert due_at(bucharest(2025, 6, 6, 16), HOUR, OFFICE) == bucharest(2025, 6, 6, 17)


def test_start_exactly_at_closing_is_outside_hours():
    assert due_at(bucharest(2025, 6, 6, 17), HOUR, OFFICE) == bucharest(2025, 6, 9, 10)


def test_start_exactly_at_opening_counts_at_once():
    assert due_at(bucharest(2025, 6, 9, 9), HOUR, OFFICE) == bucharest(2025, 6, 9, 10)


def test_answer_is_aware_utc():
    due = due_at(bucharest(2025, 6, 6, 16), HOUR, OFFICE)
    assert due.tzinfo is UTC
    assert due == datetime(2025, 6, 6, 14, tzinfo=UTC)


# --- Target zero ------------------------------------------------------------------------------


def test_zero_target_inside_hours_is_the_start():
    start = bucharest(2025, 6, 4, 11, 15, 7)
    assert due_at(start, NOTHING, OFFICE) == start


def test_zero_target_outside_hours_is_the_next_opening():
    assert due_at(bucharest(2025, 6, 6, 17), NOTHING, OFFICE) == bucharest(2025, 6, 9, 9)
    assert due_at(bucharest(2025, 6, 7, 12), NOTHING, OFFICE) == bucharest(2025, 6, 9, 9)
    assert due_at(bucharest(2025, 6, 9, 6), NOTHING, OFFICE) == bucharest(2025, 6, 9, 9)


def test_zero_target_inside_a_pause_is_the_end_of_the_pause():
    pause = (bucharest(2025, 6, 4, 10), bucharest(2025, 6, 4, 11, 30))
    start = bucharest(2025, 6, 4, 10, 45)
    assert due_at(start, NOTHING, OFFICE, [pause]) == bucharest(2025, 6, 4, 11, 30)


def test_zero_target_with_a_pause_starting_at_the_start_is_the_end_of_the_pause():
    start = bucharest(2025, 6, 4, 10)
    pause = (start, bucharest(2025, 6, 4, 10, 5))
    assert due_at(start, NOTHING, OFFICE, [pause]) == bucharest(2025, 6, 4, 10, 5)


def test_zero_target_inside_a_pause_ending_after_hours_is_the_next_opening():
    pause = (bucharest(2025, 6, 6, 16), bucharest(2025, 6, 6, 19))
    start = bucharest(2025, 6, 6, 16, 30)
    assert due_at(start, NOTHING, OFFICE, [pause]) == bucharest(2025, 6, 9, 9)


# --- Holidays ---------------------------------------------------------------------------------


def test_a_holiday_monday_is_skipped():
    with_rusalii = Calendar.office_hours("Europe/Bucharest", holidays=[date(2025, 6, 9)])
    due = due_at(bucharest(2025, 6, 6, 16, 30), HOUR, with_rusalii)
    assert due == bucharest(2025, 6, 10, 9, 30)


def test_a_holiday_midweek_is_skipped():
    calendar = Calendar.office_hours("Europe/Bucharest", holidays=[date(2025, 6, 4)])
    due = due_at(bucharest(2025, 6, 3, 16), 2 * HOUR, calendar)
    assert due == bucharest(2025, 6, 5, 10)


def test_holidays_go_by_the_local_date_not_the_utc_date():
    new_year = Calendar("Europe/Bucharest", weekly=(((0, 1440),),) * 7, holidays=[date(2025, 1, 1)])
    # 21:30 UTC on 31 Dec is 23:30 local: half an hour of 31 Dec, then local 1 Jan (which is
    # 22:00 UTC on 31 Dec to 22:00 UTC on 1 Jan) is a holiday.
    start = datetime(2024, 12, 31, 21, 30, tzinfo=UTC)
    assert due_at(start, HOUR, new_year) == datetime(2025, 1, 1, 22, 30, tzinfo=UTC)
    # The same calendar in UTC: 1 January has not begun there yet.
    in_utc = Calendar("UTC", weekly=(((0, 1440),),) * 7, holidays=[date(2025, 1, 1)])
    assert due_at(start, HOUR, in_utc) == datetime(2024, 12, 31, 22, 30, tzinfo=UTC)


# --- Overnight shifts ---------------------------------------------------------------------------


# Night shift Mon-Fri 22:00 to 06:00 the next morning: 22-24 on Mon-Fri, 00-06 on Tue-Sat.
NIGHT_SHIFT = Calendar(
    "Europe/Bucharest",
    weekly=tuple(((0, 360),) * (1 <= day <= 5) + ((1320, 1440),) * (day <= 4) for day in range(7)),
)


def test_overnight_shift_runs_across_midnight():
    assert due_at(bucharest(2025, 6, 2, 23), 2 * HOUR, NIGHT_SHIFT) == bucharest(2025, 6, 3, 1)


def test_overnight_shift_resumes_in_the_evening():
    assert due_at(bucharest(2025, 6, 3, 5, 30), HOUR, NIGHT_SHIFT) == bucharest(2025, 6, 3, 22, 30)


def test_overnight_shift_after_the_last_night_waits_for_monday_evening():
    assert due_at(bucharest(2025, 6, 7, 5), 2 * HOUR, NIGHT_SHIFT) == bucharest(2025, 6, 9, 23)


def test_overnight_shift_is_eight_hours_a_night():
    night = business_time_between(bucharest(2025, 6, 3, 12), bucharest(2025, 6, 4, 12), NIGHT_SHIFT)
    assert night == 8 * HOUR


# --- DST: wall-clock windows, real elapsed time -------------------------------------------------


def test_spring_forward_night_window_holds_five_real_hours():
    # Sunday 30 March 2025: 03:00 EET jumps to 04:00 EEST.
    midnight = bucharest(2025, 3, 30)
    assert business_time_between(midnight, bucharest(2025, 3, 31), NIGHTS) == 5 * HOUR
    assert due_at(midnight, 5 * HOUR, NIGHTS) == bucharest(2025, 3, 30, 6)
    assert due_at(midnight, 5 * HOUR, NIGHTS) == datetime(2025, 3, 30, 3, tzinfo=UTC)
    assert due_at(midnight, 5 * HOUR + 30 * MINUTE, NIGHTS) == bucharest(2025, 3, 31, 0, 30)
    assert due_at(bucharest(2025, 3, 30, 2), HOUR, NIGHTS) == bucharest(2025, 3, 30, 4)


def test_fall_back_night_window_holds_seven_real_hours():
    # Sunday 26 October 2025: 04:00 EEST goes back to 03:00 EET; 03:00-04:00 happens twice.
    midnight = bucharest(2025, 10, 26)
    assert business_time_between(midnight, bucharest(2025, 10, 27), NIGHTS) == 7 * HOUR
    assert due_at(midnight, 7 * HOUR, NIGHTS) == bucharest(2025, 10, 26, 6)
    assert due_at(midnight, 7 * HOUR, NIGHTS) == datetime(2025, 10, 26, 4, tzinfo=UTC)
    # Both passes of the repeated hour count. (Compared in UTC: PEP 495 makes an instant in a
    # fold unequal to every instant in another zone.)
    first_pass = bucharest(2025, 10, 26, 3, 30, fold=0)
    second_pass = bucharest(2025, 10, 26, 3, 30, fold=1).astimezone(UTC)
    assert second_pass == datetime(2025, 10, 26, 1, 30, tzinfo=UTC)
    assert due_at(first_pass, HOUR, NIGHTS) == second_pass


def test_all_day_window_is_23_hours_in_spring_and_25_in_autumn():
    def one_local_day(day: date) -> timedelta:
        start = bucharest(day.year, day.month, day.day)
        return business_time_between(start, start + timedelta(days=1), ALL_DAY)

    assert one_local_day(date(2025, 3, 30)) == 23 * HOUR
    assert one_local_day(date(2025, 10, 26)) == 25 * HOUR
    assert one_local_day(date(2025, 6, 4)) == 24 * HOUR
    assert due_at(bucharest(2025, 3, 30), 23 * HOUR, ALL_DAY) == bucharest(2025, 3, 31)
    assert due_at(bucharest(2025, 10, 26), 25 * HOUR, ALL_DAY) == bucharest(2025, 10, 27)


def test_office_hours_are_wall_clock_across_a_dst_change():
    # Mon 24 March + 10 business days of 8 h, across the Sunday the clocks go forward.
    assert due_at(bucharest(2025, 3, 24, 9), 80 * HOUR, OFFICE) == bucharest(2025, 4, 4, 17)


# --- Pauses -------------------------------------------------------------------------------------


def test_a_pause_inside_hours_pushes_the_deadline():
    pause = (bucharest(2025, 6, 4, 10), bucharest(2025, 6, 4, 10, 45))
    due = due_at(bucharest(2025, 6, 4, 9), 2 * HOUR, OFFICE, [pause])
    assert due == bucharest(2025, 6, 4, 11, 45)


def test_a_pause_across_closing_only_removes_business_time():
    pause = (bucharest(2025, 6, 6, 16), bucharest(2025, 6, 9, 9, 30))
    due = due_at(bucharest(2025, 6, 6, 15), 2 * HOUR, OFFICE, [pause])
    assert due == bucharest(2025, 6, 9, 10, 30)


def test_a_pause_outside_hours_changes_nothing():
    start = bucharest(2025, 6, 6, 16, 30)
    weekend = (bucharest(2025, 6, 7, 8), bucharest(2025, 6, 8, 20))
    overnight = (bucharest(2025, 6, 6, 17), bucharest(2025, 6, 9, 9))
    assert due_at(start, HOUR, OFFICE, [weekend, overnight]) == due_at(start, HOUR, OFFICE)


def test_a_pause_before_the_start_changes_nothing():
    start = bucharest(2025, 6, 4, 10)
    earlier = (bucharest(2025, 6, 4, 9), bucharest(2025, 6, 4, 9, 30))
    ending_at_start = (bucharest(2025, 6, 4, 9, 30), start)
    assert due_at(start, HOUR, OFFICE, [earlier, ending_at_start]) == bucharest(2025, 6, 4, 11)


def test_a_pause_straddling_the_start_only_counts_after_the_start():
    pause = (bucharest(2025, 6, 4, 9), bucharest(2025, 6, 4, 10, 30))
    due = due_at(bucharest(2025, 6, 4, 10), HOUR, OFFICE, [pause])
    assert due == bucharest(2025, 6, 4, 11, 30)


def test_a_pause_starting_at_or_after_the_due_instant_changes_nothing():
    start = bucharest(2025, 6, 4, 10)
    at_due = (bucharest(2025, 6, 4, 11), bucharest(2025, 6, 4, 12))
    after_due = (bucharest(2025, 6, 4, 14), bucharest(2025, 6, 5, 12))
    assert due_at(start, HOUR, OFFICE, [at_due, after_due]) == bucharest(2025, 6, 4, 11)


def test_overlapping_pauses_count_once():
    start = bucharest(2025, 6, 4, 9)
    first = (bucharest(2025, 6, 4, 10), bucharest(2025, 6, 4, 11))
    second = (bucharest(2025, 6, 4, 10, 30), bucharest(2025, 6, 4, 11, 30))
    inside_first = (bucharest(2025, 6, 4, 10, 10), bucharest(2025, 6, 4, 10, 20))
    due = due_at(start, 2 * HOUR, OFFICE, [second, inside_first, first])
    assert due == bucharest(2025, 6, 4, 12, 30)


def test_touching_pauses_are_one_pause():
    start = bucharest(2025, 6, 4, 9)
    first = (bucharest(2025, 6, 4, 10), bucharest(2025, 6, 4, 10, 30))
    second = (bucharest(2025, 6, 4, 10, 30), bucharest(2025, 6, 4, 11))
    assert due_at(start, 2 * HOUR, OFFICE, [first, second]) == bucharest(2025, 6, 4, 12)


def test_pauses_may_be_in_any_zone():
    start = bucharest(2025, 6, 4, 9)
    in_utc = (datetime(2025, 6, 4, 7, tzinfo=UTC), datetime(2025, 6, 4, 8, tzinfo=UTC))
    assert due_at(start, 2 * HOUR, OFFICE, [in_utc]) == bucharest(2025, 6, 4, 12)


def test_an_empty_pause_changes_nothing():
    start = bucharest(2025, 6, 4, 9)
    empty = (bucharest(2025, 6, 4, 10), bucharest(2025, 6, 4, 10))
    assert due_at(start, HOUR, OFFICE, [empty]) == bucharest(2025, 6, 4, 10)


# --- Still on hold ------------------------------------------------------------------------------


def test_still_on_hold_before_the_due_instant_has_no_due_instant():
    start = bucharest(2025, 6, 4, 9)
    with pytest.raises(StillOnHold):
        due_at(start, 2 * HOUR, OFFICE, [(bucharest(2025, 6, 4, 10), None)])


def test_still_on_hold_since_outside_hours_before_the_due_instant_has_no_due_instant():
    start = bucharest(2025, 6, 6, 16, 30)  # due Monday 09:30
    with pytest.raises(StillOnHold):
        due_at(start, HOUR, OFFICE, [(bucharest(2025, 6, 7, 12), None)])


def test_still_on_hold_at_the_start_with_zero_target_has_no_due_instant():
    start = bucharest(2025, 6, 4, 10)
    with pytest.raises(StillOnHold):
        due_at(start, NOTHING, OFFICE, [(start, None)])


def test_still_on_hold_from_the_due_instant_on_keeps_the_due_instant():
    start = bucharest(2025, 6, 4, 9)
    at_due = [(bucharest(2025, 6, 4, 11), None)]
    later = [(bucharest(2025, 6, 5, 11), None)]
    assert due_at(start, 2 * HOUR, OFFICE, at_due) == bucharest(2025, 6, 4, 11)
    assert due_at(start, 2 * HOUR, OFFICE, later) == bucharest(2025, 6, 4, 11)


def test_still_on_hold_on_24x7():
    start = bucharest(2025, 6, 4, 9)
    with pytest.raises(StillOnHold):
        due_at(start, 2 * HOUR, ROUND_THE_CLOCK, [(bucharest(2025, 6, 4, 10), None)])


def test_business_time_between_counts_an_open_hold_until_the_end():
    start, end = bucharest(2025, 6, 4, 9), bucharest(2025, 6, 4, 17)
    held = [(bucharest(2025, 6, 4, 12), None)]
    assert business_time_between(start, end, OFFICE, held) == 3 * HOUR
    after_end = [(bucharest(2025, 6, 4, 18), None)]
    assert business_time_between(start, end, OFFICE, after_end) == 8 * HOUR


# --- 24x7 ---------------------------------------------------------------------------------------


def test_24x7_is_start_plus_target_plus_paused_time_inside():
    start = bucharest(2025, 6, 4, 9)
    inside = (bucharest(2025, 6, 4, 10), bucharest(2025, 6, 4, 10, 20))
    before = (bucharest(2025, 6, 4, 7), bucharest(2025, 6, 4, 8))
    after = (bucharest(2025, 6, 4, 15), bucharest(2025, 6, 4, 16))
    due = due_at(start, 4 * HOUR, ROUND_THE_CLOCK, [inside, before, after])
    assert due == start + 4 * HOUR + 20 * MINUTE


def test_24x7_has_no_dst_effect():
    spring = bucharest(2025, 3, 29, 12)
    assert due_at(spring, 24 * HOUR, ROUND_THE_CLOCK) == bucharest(2025, 3, 30, 13)
    autumn = bucharest(2025, 10, 25, 12)
    assert due_at(autumn, 24 * HOUR, ROUND_THE_CLOCK) == bucharest(2025, 10, 26, 11)


def test_24x7_ignores_holidays_and_windows():
    calendar = Calendar(
        "Europe/Bucharest",
        weekly=OFFICE.weekly,
        holidays=frozenset({date(2025, 6, 9)}),
        always_open=True,
    )
    start = bucharest(2025, 6, 8, 12)
    assert due_at(start, 30 * HOUR, calendar) == start + 30 * HOUR
    assert business_time_between(start, start + 30 * HOUR, calendar) == 30 * HOUR


# --- Multi-day targets --------------------------------------------------------------------------


def test_ten_business_days():
    assert due_at(bucharest(2025, 6, 2, 9), 80 * HOUR, OFFICE) == bucharest(2025, 6, 13, 17)


def test_ten_business_days_with_a_holiday_and_pauses():
    with_rusalii = Calendar.office_hours("Europe/Bucharest", holidays=[date(2025, 6, 9)])
    pauses = [
        (bucharest(2025, 6, 3, 12), bucharest(2025, 6, 3, 14)),
        (bucharest(2025, 6, 6, 16), bucharest(2025, 6, 10, 10)),  # 1 h Fri + 1 h Tue
    ]
    due = due_at(bucharest(2025, 6, 2, 9), 80 * HOUR, with_rusalii, pauses)
    assert due == bucharest(2025, 6, 17, 13)  # Mon 16 17:00 without pauses, + 4 h paused


# --- business_time_between ----------------------------------------------------------------------


def test_business_time_between_counts_only_open_hours():
    friday, monday = bucharest(2025, 6, 6, 16), bucharest(2025, 6, 9, 10)
    assert business_time_between(friday, monday, OFFICE) == 2 * HOUR
    assert business_time_between(friday, friday, OFFICE) == NOTHING


def test_business_time_between_is_exact_not_rounded():
    start = bucharest(2025, 6, 4, 9)
    end = start + timedelta(microseconds=1500)
    assert business_time_between(start, end, OFFICE) == timedelta(microseconds=1500)


# --- Rounding to the second ---------------------------------------------------------------------


def test_due_instant_with_microseconds_is_rounded_up_to_the_second():
    start = bucharest(2025, 6, 4, 9, 0, 0, 250_000)
    assert due_at(start, HOUR, OFFICE) == bucharest(2025, 6, 4, 10, 0, 1)
    assert due_at(start, NOTHING, OFFICE) == bucharest(2025, 6, 4, 9, 0, 1)
    whole = bucharest(2025, 6, 4, 9)
    assert due_at(whole, timedelta(seconds=1, microseconds=1), OFFICE) == whole + 2 * timedelta(
        seconds=1
    )


# --- Calendar values ----------------------------------------------------------------------------


def test_touching_windows_behave_like_one_window():
    split = Calendar("Europe/Bucharest", weekly=(((540, 720), (720, 1020)),) * 5 + ((),) * 2)
    start = bucharest(2025, 6, 4, 11)
    assert due_at(start, 3 * HOUR, split) == due_at(start, 3 * HOUR, OFFICE)
    assert due_at(bucharest(2025, 6, 4, 12), NOTHING, split) == bucharest(2025, 6, 4, 12)


def test_calendar_normalises_how_it_was_spelled():
    spelled = Calendar(
        "Europe/Bucharest",
        weekly=[[(720, 1020), (540, 600)]] + [[]] * 6,
        holidays=[date(2025, 6, 9), date(2025, 6, 9)],
    )
    same = Calendar(
        "Europe/Bucharest",
        weekly=(((540, 600), (720, 1020)),) + ((),) * 6,
        holidays=frozenset({date(2025, 6, 9)}),
    )
    assert spelled == same
    assert hash(spelled) == hash(same)


def test_office_hours_builds_the_weekly_windows():
    calendar = Calendar.office_hours("UTC", 480, 960, weekdays=[0, 2], holidays=[date(2025, 1, 1)])
    assert calendar.weekly == (((480, 960),), (), ((480, 960),), (), (), (), ())
    assert calendar.holidays == frozenset({date(2025, 1, 1)})
    assert not calendar.always_open


# --- Validation ---------------------------------------------------------------------------------


NAIVE = datetime(2025, 6, 4, 9)
AWARE = bucharest(2025, 6, 4, 9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: due_at(NAIVE, HOUR, OFFICE), "start must be timezone-aware"),
        (lambda: due_at(AWARE, -MINUTE, OFFICE), "target must be zero or more"),
        (lambda: due_at(AWARE, 60, OFFICE), "target must be a timedelta"),
        (lambda: due_at(AWARE, HOUR, OFFICE, [(NAIVE, AWARE)]), "pause start must be"),
        (lambda: due_at(AWARE, HOUR, OFFICE, [(AWARE, NAIVE)]), "pause end must be"),
        (lambda: due_at(AWARE, HOUR, OFFICE, [(AWARE + HOUR, AWARE)]), "ends .* before"),
        (lambda: due_at(AWARE, HOUR, OFFICE, [(AWARE,)]), "must be a \\(from, to\\) pair"),
        (lambda: due_at(AWARE, HOUR, Calendar("UTC")), "no windows"),
        (lambda: business_time_between(AWARE, AWARE, Calendar("UTC")), "no windows"),
        (lambda: business_time_between(AWARE, NAIVE, OFFICE), "end must be timezone-aware"),
        (lambda: business_time_between(AWARE, AWARE - MINUTE, OFFICE), "is before start"),
        (lambda: due_at(AWARE, timedelta(days=365 * 100), OFFICE), "gave up after walking"),
        (lambda: due_at(AWARE, timedelta(days=3_000_000), ROUND_THE_CLOCK), "year 9999"),
        (lambda: Calendar("Mars/Olympus_Mons"), "unknown time zone"),
        (lambda: Calendar(""), "IANA zone name"),
        (lambda: Calendar(weekly=((),) * 6), "weekly needs 7 entries"),
        (lambda: Calendar(weekly=(((540, 720), (700, 900)),) + ((),) * 6), "overlap"),
        (lambda: Calendar(weekly=(((540, 540),),) + ((),) * 6), "0 <= open < close"),
        (lambda: Calendar(weekly=(((600, 540),),) + ((),) * 6), "0 <= open < close"),
        (lambda: Calendar(weekly=(((-60, 540),),) + ((),) * 6), "0 <= open < close"),
        (lambda: Calendar(weekly=(((540, 1441),),) + ((),) * 6), "0 <= open < close"),
        (lambda: Calendar(weekly=(((540.0, 600),),) + ((),) * 6), "whole minutes"),
        (lambda: Calendar(weekly=((540, 600),) + ((),) * 6), "\\(open, close\\) pair"),
        (lambda: Calendar(holidays=[NAIVE]), "holidays must be dates"),
        (lambda: Calendar.office_hours("UTC", weekdays=[7]), "weekdays must be 0"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- Properties ---------------------------------------------------------------------------------

# Zones with their DST jumps at different local times and sizes (Lord Howe moves 30 minutes,
# Santiago at midnight). Window edges sit on a grid that never falls strictly inside a skipped
# or repeated stretch, the one case SLA.md leaves undefined.
GRID_MINUTES = {
    "UTC": 30,
    "Asia/Kolkata": 30,
    "Europe/Bucharest": 60,
    "America/New_York": 60,
    "America/Santiago": 60,
    "Australia/Lord_Howe": 30,
}
DST_DAYS = [
    datetime(2025, 3, 30, tzinfo=UTC),  # Bucharest forward
    datetime(2025, 10, 26, tzinfo=UTC),  # Bucharest back
    datetime(2025, 3, 9, tzinfo=UTC),  # New York forward
    datetime(2025, 11, 2, tzinfo=UTC),  # New York back
    datetime(2025, 4, 6, tzinfo=UTC),  # Santiago back, Lord Howe back
    datetime(2025, 9, 7, tzinfo=UTC),  # Santiago forward
    datetime(2025, 10, 5, tzinfo=UTC),  # Lord Howe forward
]
YEARS_OF_STARTS = datetime(2024, 1, 1, tzinfo=UTC)
FOUR_YEARS = 4 * 365 * 86400
DAY_SECONDS = 86400

PROPERTIES = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Built once: making strategies inside a composite on every draw costs more than the maths.
_EDGE_POINTS = {
    step: st.lists(st.integers(0, 1440 // step), unique=True, max_size=6).map(sorted)
    for step in set(GRID_MINUTES.values())
}
_HOLIDAYS = st.frozensets(st.dates(date(2024, 1, 1), date(2028, 1, 31)), max_size=3)
_ZONES = st.sampled_from(sorted(GRID_MINUTES))


@st.composite
def calendars(draw, tz=None) -> Calendar:
    tz = tz or draw(_ZONES)
    if draw(st.integers(0, 5)) == 0:
        return Calendar.twenty_four_seven(tz)
    step = GRID_MINUTES[tz]
    weekly = []
    for _ in range(7):
        edges = [point * step for point in draw(_EDGE_POINTS[step])]
        weekly.append(tuple(zip(edges[0::2], edges[1::2], strict=False)))
    if not any(weekly):
        weekly[draw(st.integers(0, 6))] = ((540, 1020),)
    return Calendar(tz, weekly=tuple(weekly), holidays=draw(_HOLIDAYS))


@st.composite
def starts(draw, unit_seconds: int = 1) -> datetime:
    if draw(st.booleans()):
        anchor = draw(st.sampled_from(DST_DAYS))
        offset = draw(st.integers(-4 * DAY_SECONDS, 4 * DAY_SECONDS))
    else:
        anchor, offset = YEARS_OF_STARTS, draw(st.integers(0, FOUR_YEARS))
    return anchor + timedelta(seconds=offset - offset % unit_seconds)


def targets(max_hours: int = 60, unit_seconds: int = 1, min_units: int = 0):
    units = st.integers(min_units, max_hours * 3600 // unit_seconds)
    return units.map(lambda n: timedelta(seconds=n * unit_seconds))


@st.composite
def pause_lists(draw, start: datetime, unit_seconds: int = 1, max_size: int = 3):
    pauses = []
    for _ in range(draw(st.integers(0, max_size))):
        begins = draw(st.integers(-2 * DAY_SECONDS, 10 * DAY_SECONDS)) // unit_seconds
        lasts = draw(st.integers(0, 2 * DAY_SECONDS)) // unit_seconds
        held_from = start + timedelta(seconds=begins * unit_seconds)
        pauses.append((held_from, held_from + timedelta(seconds=lasts * unit_seconds)))
    return pauses


@PROPERTIES
@given(st.data())
def test_due_is_never_before_start(data):
    start, calendar = data.draw(starts()), data.draw(calendars())
    pauses = data.draw(pause_lists(start))
    assert due_at(start, data.draw(targets()), calendar, pauses) >= start


@PROPERTIES
@given(st.data())
def test_adding_a_pause_never_moves_the_deadline_earlier(data):
    start, calendar, target = data.draw(starts()), data.draw(calendars()), data.draw(targets())
    pauses = data.draw(pause_lists(start))
    (extra,) = data.draw(pause_lists(start, max_size=1).filter(lambda drawn: len(drawn) == 1))
    assert due_at(start, target, calendar, [*pauses, extra]) >= due_at(
        start, target, calendar, pauses
    )


@PROPERTIES
@given(st.data())
def test_due_composes_without_pauses(data):
    start, calendar = data.draw(starts()), data.draw(calendars())
    first, then = data.draw(targets(min_units=1)), data.draw(targets(min_units=1))
    assert due_at(due_at(start, first, calendar), then, calendar) == due_at(
        start, first + then, calendar
    )


@PROPERTIES
@given(st.data())
def test_24x7_is_start_plus_target_plus_paused_time_before_due(data):
    start = data.draw(starts())
    calendar = Calendar.twenty_four_seven(data.draw(_ZONES))
    target = data.draw(targets())
    assert due_at(start, target, calendar) == start + target
    pauses = data.draw(pause_lists(start))
    due = due_at(start, target, calendar, pauses)
    held = business_time_between(start, due, Calendar.twenty_four_seven(), []) - (
        business_time_between(start, due, Calendar.twenty_four_seven(), pauses)
    )
    assert due == start + target + held


@PROPERTIES
@given(st.data())
def test_business_time_between_inverts_due_at(data):
    start, calendar, target = data.draw(starts()), data.draw(calendars()), data.draw(targets())
    pauses = data.draw(pause_lists(start))
    due = due_at(start, target, calendar, pauses)
    assert business_time_between(start, due, calendar, pauses) == target
    if target:  # the earliest such instant: the clock was running just before it
        assert business_time_between(due - timedelta(seconds=1), due, calendar, pauses)
    else:  # the first running instant: the clock runs from it on
        assert business_time_between(due, due + timedelta(seconds=1), calendar, pauses)


@PROPERTIES
@given(st.data())
def test_business_time_between_adds_up(data):
    start, calendar = data.draw(starts()), data.draw(calendars())
    middle = start + timedelta(seconds=data.draw(st.integers(0, 10 * DAY_SECONDS)))
    end = middle + timedelta(seconds=data.draw(st.integers(0, 10 * DAY_SECONDS)))
    pauses = data.draw(pause_lists(start))
    whole = business_time_between(start, end, calendar, pauses)
    assert whole == business_time_between(start, middle, calendar, pauses) + business_time_between(
        middle, end, calendar, pauses
    )


def _runs_by_rule_1(minute: datetime, calendar: Calendar, pauses) -> bool:
    """Rules 1 and 2 read literally, for the minute starting at `minute`."""
    if any(held_from <= minute < held_to for held_from, held_to in pauses):
        return False
    if calendar.always_open:
        return True
    local = minute.astimezone(ZoneInfo(calendar.tz))
    if local.date() in calendar.holidays:
        return False
    minute_of_day = local.hour * 60 + local.minute
    return any(
        opens <= minute_of_day < closes for opens, closes in calendar.weekly[local.weekday()]
    )


def _due_by_walking_minutes(start: datetime, target: timedelta, calendar: Calendar, pauses):
    """Rules 3 and 4 by brute force, one minute at a time. Exact when the start, target and
    pauses are whole minutes: then the clock runs either all of a UTC minute or none of it."""
    remaining, minute = target // MINUTE, start
    for _ in range(2_000_000):
        if _runs_by_rule_1(minute, calendar, pauses):
            if remaining == 0:
                return minute
            remaining -= 1
            if remaining == 0:
                return minute + MINUTE
        minute += MINUTE
    raise AssertionError("walked too far")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_due_at_agrees_with_rule_1_checked_minute_by_minute(data):
    tz = data.draw(_ZONES)
    # Dense calendars only, to keep the brute force short: every day has some window.
    calendar = data.draw(calendars(tz=tz).filter(lambda c: c.always_open or all(c.weekly)))
    start = data.draw(starts(unit_seconds=60))
    target = data.draw(targets(max_hours=6, unit_seconds=60))
    pauses = data.draw(pause_lists(start, unit_seconds=60, max_size=2))
    expected = _due_by_walking_minutes(start, target, calendar, pauses)
    assert due_at(start, target, calendar, pauses) == expected

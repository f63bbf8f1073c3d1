"""How a day counts towards uptime (README, "Uptime"): pure functions."""

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from statuspage.uptime import day_bounds, day_figures, outage_minutes, uptime_percentage

UTC = dt.UTC


def at(h, m=0, day=10):
    return dt.datetime(2026, 3, day, h, m, tzinfo=UTC)


def interval(status, start, end):
    return SimpleNamespace(status=status, valid_from=start, valid_to=end)


def day(**seconds):
    fields = ("degraded", "partial", "major", "maintenance")
    values = {f"{name}_seconds": seconds.get(name, 0) for name in fields}
    return SimpleNamespace(observed_seconds=seconds.get("observed", 86400), **values)


def test_a_day_in_a_time_zone_that_leaves_summer_time_has_25_hours():
    start, end = day_bounds(dt.date(2026, 10, 25), ZoneInfo("Europe/Bucharest"))
    assert end - start == dt.timedelta(hours=25)
    start, end = day_bounds(dt.date(2026, 3, 29), "Europe/Bucharest")
    assert end - start == dt.timedelta(hours=23)
    assert start == dt.datetime(2026, 3, 28, 22, tzinfo=UTC)


def test_a_days_figures_count_each_status_and_the_worst_wins():
    history = [
        interval("operational", at(0, day=9), at(10)),
        interval("partial_outage", at(10), at(10, 30)),
        interval("major_outage", at(10, 30), at(11)),
        interval("operational", at(11), None),
    ]
    figures = day_figures(dt.date(2026, 3, 10), history, start=at(0), end=at(0, day=11), now=at(12))
    assert figures.worst_status == "major_outage"
    assert figures.seconds == {"partial_outage": 1800, "major_outage": 1800}
    assert figures.observed_seconds == 12 * 3600  # up to now, not the whole day


def test_major_counts_fully_partial_30_percent_degraded_and_maintenance_not():
    assert uptime_percentage([day(major=864)]) == 99.0
    assert round(uptime_percentage([day(partial=8640)]), 6) == 97.0
    assert uptime_percentage([day(degraded=40000)]) == 100.0
    # Four hours of maintenance are out of the observed time, and cost nothing.
    assert uptime_percentage([day(maintenance=4 * 3600, major=864)]) == 100 * (1 - 864 / 72000)
    assert uptime_percentage([day(observed=0)]) is None
    assert outage_minutes(day(partial=600, major=1200)) == 30

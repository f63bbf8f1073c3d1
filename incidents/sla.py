"""The SLA clock: when a target of business time is used up.

This module is the executable form of /work/shared/SLA.md (the contract customers hold the desk
to). It is pure: plain values in, plain values out, no database and no Django, so the maths can
be tested with examples and hypothesis and run cheaply in the deadline sweep.

How it works: the calendar is walked window by window, never minute by minute. Each local
window of a local date is turned into a real (UTC) interval with zoneinfo, so a window is as
long as the real time that passes between its wall-clock edges (rule: windows are wall-clock,
time is real elapsed time). The merged pauses are cut out of those intervals, and the lengths
of what is left are added up until the target is used up.

Rounding: the exact due instant is computed to the microsecond and then rounded *up* to the
whole second. Up, because a deadline must never fall before the clock has run the full target;
a due instant that is already a whole second (the usual case: whole-second starts, targets and
pauses) is returned unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Calendar", "StillOnHold", "business_time_between", "due_at"]

MINUTES_PER_DAY = 1440
DAYS_PER_WEEK = 7
# How far the walk may go before giving up: ~100 years of calendar. Reaching it means the
# target cannot be met in any meaningful time (e.g. a 200-year target on office hours).
WALK_LIMIT = timedelta(days=36525)

# Stands for "never" as the end of a pause with no end yet and of the single 24x7 interval.
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
_NO_TIME = timedelta(0)
_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)

Window = tuple[int, int]
Pause = tuple[datetime, datetime | None]


class StillOnHold(Exception):
    """The incident is on hold with no end yet, and the hold begins before the target would be
    used up, so there is no due instant (SLA.md: "while an incident is still on hold it has no
    due instant")."""


@dataclass(frozen=True)
class Calendar:
    """When the SLA clock may run: a zone plus weekly wall-clock windows and holidays, or 24x7.

    `weekly` has 7 entries, Monday first (index = `date.weekday()`); each is a tuple of
    `(open, close)` windows in minutes since local midnight, `0 <= open < close <= 1440`, where
    1440 is 24:00, the end of that local day. An overnight shift is `(1320, 1440)` on one day
    plus `(0, 360)` on the next. Windows of one day may touch but not overlap; they are stored
    sorted. `holidays` are local dates. With `always_open`, every instant is business time and
    `weekly`/`holidays` are ignored.
    """

    tz: str = "UTC"
    weekly: tuple[tuple[Window, ...], ...] = ((),) * DAYS_PER_WEEK
    holidays: frozenset[date] = frozenset()
    always_open: bool = False

    def __post_init__(self) -> None:
        _zone_named(self.tz)
        # Normalised in place so equal calendars compare and hash equal however they were
        # spelled (lists vs tuples, unsorted windows, a list of holidays).
        object.__setattr__(self, "weekly", _validated_weekly(self.weekly))
        object.__setattr__(self, "holidays", _validated_holidays(self.holidays))

    @classmethod
    def twenty_four_seven(cls, tz: str = "UTC") -> Calendar:
        """A calendar where every instant counts, holidays and DST included."""
        return cls(tz=tz, always_open=True)

    @classmethod
    def office_hours(
        cls,
        tz: str,
        open_minute: int = 540,
        close_minute: int = 1020,
        weekdays: Iterable[int] = range(5),
        holidays: Iterable[date] = (),
    ) -> Calendar:
        """One window a day, `open_minute`-`close_minute` local time, on `weekdays`
        (0 = Monday); the default is Mon-Fri 09:00-17:00."""
        open_days = set(weekdays)
        if not open_days <= set(range(DAYS_PER_WEEK)):
            raise ValueError(f"weekdays must be 0 (Monday) to 6 (Sunday), got {sorted(open_days)}")
        weekly = tuple(
            ((open_minute, close_minute),) if day in open_days else ()
            for day in range(DAYS_PER_WEEK)
        )
        return cls(tz=tz, weekly=weekly, holidays=frozenset(holidays))


def due_at(
    start: datetime,
    target: timedelta,
    calendar: Calendar,
    pauses: Iterable[Pause] = (),
) -> datetime:
    """The instant the clock started at `start` has run for `target` (SLA.md rules 1-5).

    For `target > 0` this is the earliest instant by which the clock has run exactly `target`,
    so a target used up at a closing time is due at that closing time. For `target == 0` it is
    the first instant at or after `start` at which the clock runs. The answer is an aware UTC
    datetime, rounded up to the whole second (see the module docstring).

    `pauses` are `(from, to)` on-hold intervals, `[from, to)`, in any order, overlapping or not;
    `to=None` means still on hold. Raises StillOnHold if such an open hold begins before the
    target is used up, and ValueError for bad input, for a target that walks more than ~100
    years of a windowed calendar, or for a due instant past the year 9999.
    """
    _require_aware(start, "start")
    if not isinstance(target, timedelta):
        raise ValueError(f"target must be a timedelta, got {type(target).__name__}")
    if target < _NO_TIME:
        raise ValueError(f"target must be zero or more, got {target}")
    _require_business_time(calendar)
    start = start.astimezone(UTC)
    on_hold = _merged_pauses(pauses, still_on_hold_until=_END_OF_TIME)

    remaining = target
    try:
        running = _running_intervals(_business_intervals(calendar, start), on_hold)
        for runs_from, runs_to in running:
            # `>=` (not `>`) is what makes a target used up exactly at a closing time due at
            # that closing time; with remaining == 0 it returns the first running instant.
            if runs_to - runs_from >= remaining:
                return _rounded_up_to_second(runs_from + remaining)
            if runs_to == _END_OF_TIME:  # 24x7 and the target outlasts the calendar
                raise OverflowError
            remaining -= runs_to - runs_from
    except OverflowError as error:
        raise ValueError(f"{target} from {start} runs past the year 9999") from error
    # Running intervals run out only at a hold that never ends.
    raise StillOnHold(f"still on hold with {remaining} of {target} left to run")


def business_time_between(
    start: datetime,
    end: datetime,
    calendar: Calendar,
    pauses: Iterable[Pause] = (),
) -> timedelta:
    """How long the clock ran in `[start, end)`: the inverse of `due_at`, so
    `business_time_between(s, due_at(s, t, c, p), c, p)` is `t` (plus under a second when
    `due_at` had to round up). The result is exact, not rounded. A pause with `to=None` counts
    as on hold until `end`. Raises ValueError if `end` is before `start`.
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    _require_business_time(calendar)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    on_hold = _merged_pauses(pauses, still_on_hold_until=end)

    ran = _NO_TIME
    try:
        running = _running_intervals(_business_intervals(calendar, start), on_hold)
        for runs_from, runs_to in running:
            if runs_from >= end:
                break
            ran += min(runs_to, end) - runs_from
            if runs_to >= end:
                break
    except OverflowError as error:
        raise ValueError(f"{start} to {end} runs past the year 9999") from error
    return ran


def _business_intervals(calendar: Calendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Business time at or after `start` (UTC) as increasing, disjoint UTC `[from, to)`
    intervals, walked lazily one local date at a time. Raises ValueError past WALK_LIMIT."""
    if calendar.always_open:
        yield start, _END_OF_TIME
        return

    zone = _zone_named(calendar.tz)
    start_day = start.astimezone(zone).date()
    last_day = start_day + WALK_LIMIT
    # One day back, so a window of the previous local date that ends after `start` is not
    # missed (possible only where a zone repeats its midnight); the cursor clips it anyway.
    day = start_day - _ONE_DAY
    # Everything before `cursor` has been yielded or is before `start`. Clipping to it keeps
    # the output ordered and disjoint even when window edges fall inside a DST gap, where
    # wall-clock order and real order disagree (undefined by SLA.md, but must stay sane).
    cursor = start
    weekly, holidays = calendar.weekly, calendar.holidays
    while day <= last_day:
        windows = weekly[day.weekday()]
        if windows and day not in holidays:
            for open_minute, close_minute in windows:
                opens = max(_local_to_utc(day, open_minute, zone), cursor)
                closes = _local_to_utc(day, close_minute, zone)
                if opens < closes:
                    yield opens, closes
                    cursor = closes
        day += _ONE_DAY
    raise ValueError(
        f"gave up after walking {WALK_LIMIT.days} days of the calendar from {start}: "
        "the target is too large for this calendar"
    )


def _running_intervals(
    business: Iterable[tuple[datetime, datetime]],
    on_hold: Sequence[tuple[datetime, datetime]],
) -> Iterator[tuple[datetime, datetime]]:
    """The business intervals with the (sorted, disjoint, non-touching) holds cut out, i.e.
    when the clock runs. Stops for good at a hold that never ends (`to == _END_OF_TIME`)."""
    hold = 0
    for runs_from, runs_to in business:
        while hold < len(on_hold) and on_hold[hold][1] <= runs_from:
            hold += 1
        while hold < len(on_hold) and on_hold[hold][0] < runs_to:
            held_from, held_to = on_hold[hold]
            if held_from > runs_from:
                yield runs_from, held_from
            if held_to == _END_OF_TIME:
                return
            if held_to >= runs_to:
                runs_from = runs_to
                break
            runs_from = held_to
            hold += 1
        if runs_from < runs_to:
            yield runs_from, runs_to


def _merged_pauses(
    pauses: Iterable[Pause], *, still_on_hold_until: datetime
) -> list[tuple[datetime, datetime]]:
    """The union of the pauses as sorted, disjoint UTC intervals; touching ones are joined so
    the cutting in `_running_intervals` can assume a gap between any two. A pause with no end
    runs to `still_on_hold_until`."""
    intervals = []
    for pause in pauses:
        try:
            held_from, held_to = pause
        except (TypeError, ValueError) as error:
            raise ValueError(f"a pause must be a (from, to) pair, got {pause!r}") from error
        _require_aware(held_from, "pause start")
        held_from = held_from.astimezone(UTC)
        if held_to is None:
            held_to = max(held_from, still_on_hold_until)
        else:
            _require_aware(held_to, "pause end")
            held_to = held_to.astimezone(UTC)
            if held_to < held_from:
                raise ValueError(f"pause ends ({held_to}) before it starts ({held_from})")
        if held_from < held_to:
            intervals.append((held_from, held_to))

    intervals.sort()
    merged: list[tuple[datetime, datetime]] = []
    for held_from, held_to in intervals:
        if merged and held_from <= merged[-1][1]:
            if held_to > merged[-1][1]:
                merged[-1] = (merged[-1][0], held_to)
        else:
            merged.append((held_from, held_to))
    return merged


# Deadlines cluster on the same few weeks, and zoneinfo's conversion is most of the walk's cost:
# remembering recent window edges makes a business-hours deadline cost a few dict lookups.
@functools.lru_cache(maxsize=16384)
def _local_to_utc(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The real instant of wall-clock `minute` on local `day`; 1440 is the next local midnight.

    fold=0 (the default) throughout: in a repeated hour it picks the first pass, in a skipped
    hour it reads the time with the offset from before the jump. That is exact for an edge at
    either end of a DST gap or repeat (a window closing at 24:00 before a midnight jump, a
    00:00-06:00 window across 03:00->04:00), and deterministic for an edge strictly inside one,
    which SLA.md leaves undefined.
    """
    if minute == MINUTES_PER_DAY:
        day, minute = day + _ONE_DAY, 0
    hour, minute = divmod(minute, 60)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def _rounded_up_to_second(instant: datetime) -> datetime:
    if instant.microsecond:
        return instant.replace(microsecond=0) + _ONE_SECOND
    return instant


def _require_aware(value: object, what: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value}")


def _require_business_time(calendar: Calendar) -> None:
    if not calendar.always_open and not any(calendar.weekly):
        raise ValueError("the calendar has no windows on any weekday and is not 24x7")


def _zone_named(tz: str) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise ValueError(f"tz must be an IANA zone name, got {tz!r}")
    try:
        return ZoneInfo(tz)  # cached by zoneinfo, so cheap on every call
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {tz!r}") from error


def _validated_weekly(weekly: Iterable[Iterable[Iterable[int]]]) -> tuple[tuple[Window, ...], ...]:
    days = tuple(weekly)
    if len(days) != DAYS_PER_WEEK:
        raise ValueError(f"weekly needs 7 entries, Monday first, got {len(days)}")
    return tuple(_validated_day(index, windows) for index, windows in enumerate(days))


def _validated_day(weekday: int, windows: Iterable[Iterable[int]]) -> tuple[Window, ...]:
    day_windows = []
    for window in windows:
        try:
            open_minute, close_minute = window
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"weekday {weekday}: a window must be an (open, close) pair, got {window!r}"
            ) from error
        for edge in (open_minute, close_minute):
            if not isinstance(edge, int) or isinstance(edge, bool):
                raise ValueError(f"weekday {weekday}: window edges are whole minutes, got {edge!r}")
        if not 0 <= open_minute < close_minute <= MINUTES_PER_DAY:
            raise ValueError(
                f"weekday {weekday}: window ({open_minute}, {close_minute}) must have "
                f"0 <= open < close <= {MINUTES_PER_DAY}"
            )
        day_windows.append((open_minute, close_minute))
    day_windows.sort()
    for earlier, later in zip(day_windows, day_windows[1:], strict=False):
        if later[0] < earlier[1]:
            raise ValueError(f"weekday {weekday}: windows {earlier} and {later} overlap")
    return tuple(day_windows)


def _validated_holidays(holidays: Iterable[date]) -> frozenset[date]:
    days = frozenset(holidays)
    for day in days:
        # A datetime is a date too, but a holiday is a whole local date, not an instant.
        if not isinstance(day, date) or isinstance(day, datetime):
            raise ValueError(f"holidays must be dates, got {day!r}")
    return days

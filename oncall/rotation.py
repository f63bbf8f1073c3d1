"""Who is on call: rotations as pure functions over plain values (no database, no Django).

A layer is a rotation of people. Its first shift begins at ``start`` (an aware instant); the
handoff time and weekday are those of ``start`` in the layer's IANA zone. Shifts are counted in
*wall-clock* time in that zone: shift ``k`` begins at local ``start + k * shift`` (naive local
arithmetic), then converted to an instant with zoneinfo. So a 09:00 handoff stays at 09:00 local
on both sides of a DST change, and a daily shift that contains the change lasts 23 or 25 real
hours (grafana/oncall#3261 and #5455 added 24 real hours and moved the handoff by an hour).

A layer may be restricted to weekly local windows (weekdays 09:00-17:00): outside them it has
nobody. Layers later in the list are higher and win; an override (a person covering a range)
wins over every layer, the later override over an earlier one.

A local time that does not exist (the skipped hour) is read with ``fold=0``, which zoneinfo
maps past the gap; a shift that would then be empty (a 1-hour custom shift inside the gap) is
skipped, so shifts still tile time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "Layer",
    "Override",
    "Restriction",
    "Shift",
    "layer_shifts",
    "next_shifts",
    "on_call_at",
    "shifts_between",
]

DAILY = timedelta(days=1)
WEEKLY = timedelta(days=7)
MIN_SHIFT = timedelta(hours=1)
MINUTES_PER_DAY = 1440
_SAFE = timedelta(hours=3)


@functools.cache
def _zone(name):
    return ZoneInfo(name)


@dataclass(frozen=True)
class Restriction:
    """A weekly local window when the layer has someone: ``weekdays`` (0 = Monday) and
    ``[start, end)`` in minutes since local midnight; ``end`` 1440 is 24:00, and ``end <= start``
    runs over midnight into the next day (22:00-06:00)."""

    weekdays: frozenset = frozenset(range(7))
    start: int = 0
    end: int = MINUTES_PER_DAY


@dataclass(frozen=True)
class Layer:
    people: tuple  # person ids (or any hashable), in rotation order
    start: datetime  # aware: the first handoff
    zone: str = "UTC"
    shift: timedelta = WEEKLY  # wall-clock length: DAILY, WEEKLY or custom (>= 1 h)
    restrictions: tuple = ()  # of Restriction; empty: all the time
    name: str = ""
    # Derived once (the "who is on call" loop reads them for every schedule).
    tz: ZoneInfo = field(init=False, repr=False, compare=False)
    local_start: datetime = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.people:
            raise ValueError("a layer needs at least one person")
        if self.start.tzinfo is None:
            raise ValueError("the layer start must be aware")
        if self.shift < MIN_SHIFT:
            raise ValueError("a shift lasts at least an hour")
        tz = _zone(self.zone)
        object.__setattr__(self, "tz", tz)
        object.__setattr__(self, "local_start", self.start.astimezone(tz).replace(tzinfo=None))


@dataclass(frozen=True)
class Override:
    start: datetime
    end: datetime
    person: object


@dataclass(frozen=True, order=True)
class Shift:
    start: datetime
    end: datetime
    person: object = field(compare=False)
    layer: int | None = field(default=None, compare=False)  # index; None: an override


# --- one layer ----------------------------------------------------------------------------------


def _local_start(layer):
    return layer.local_start


def _handoff(layer, k):
    """The instant shift ``k`` of ``layer`` begins (wall-clock arithmetic, see the module)."""
    local = layer.local_start + k * layer.shift
    return local.replace(tzinfo=layer.tz).astimezone(UTC)


def _index_at(layer, t, local=None):
    """The shift index k with handoff(k) <= t < handoff(k+1), for t >= layer.start
    (``local``: t as naive local time, when the caller has it)."""
    if local is None:
        local = t.astimezone(layer.tz).replace(tzinfo=None)
    start = layer.local_start
    k = max(0, (local - start) // layer.shift)
    base = start + k * layer.shift
    # Wall-clock order is real order except within a DST change's hour: a local time this far
    # from both handoffs needs no conversion to be placed.
    if base + _SAFE <= local < base + layer.shift - _SAFE:
        return k
    while k > 0 and _handoff(layer, k) > t:
        k -= 1
    while _handoff(layer, k + 1) <= t:
        k += 1
    return k


def _restriction_windows(layer, start, end):
    """The layer's restriction windows as merged instants intersecting [start, end)."""
    zone = _zone(layer.zone)
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    windows = []
    day = first
    while day <= last:
        midnight = datetime.combine(day, time())
        for r in layer.restrictions:
            if day.weekday() not in r.weekdays:
                continue
            length = (r.end - r.start) % MINUTES_PER_DAY or MINUTES_PER_DAY
            lo = (midnight + timedelta(minutes=r.start)).replace(tzinfo=zone).astimezone(UTC)
            hi = (
                (midnight + timedelta(minutes=r.start + length))
                .replace(tzinfo=zone)
                .astimezone(UTC)
            )
            if lo < hi and hi > start and lo < end:
                windows.append((max(lo, start), min(hi, end)))
        day += timedelta(days=1)
    windows.sort()
    merged = []
    for lo, hi in windows:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _raw_shifts(layer, start, end, index=None):
    """Unrestricted shifts of ``layer`` overlapping [start, end), clipped to it."""
    if end <= layer.start:
        return []
    t = max(start, layer.start)
    k = _index_at(layer, t)
    shifts = []
    begin = _handoff(layer, k)
    while begin < end:
        following = _handoff(layer, k + 1)
        if following > begin:  # an empty shift (inside a skipped hour) is no shift
            person = layer.people[k % len(layer.people)]
            shifts.append(Shift(max(begin, t), min(following, end), person, index))
        begin = max(begin, following)
        k += 1
    return shifts


def layer_shifts(layer, start, end, index=None):
    """The shifts of one layer in [start, end), cut to its restrictions, in time order."""
    shifts = _raw_shifts(layer, start, end, index)
    if not layer.restrictions or not shifts:
        return shifts
    windows = _restriction_windows(layer, start, end)
    out, w = [], 0
    for s in shifts:
        while w < len(windows) and windows[w][1] <= s.start:
            w += 1
        j = w
        while j < len(windows) and windows[j][0] < s.end:
            lo, hi = max(s.start, windows[j][0]), min(s.end, windows[j][1])
            if lo < hi:
                out.append(Shift(lo, hi, s.person, index))
            j += 1
    return out


def _inside(restrictions, local):
    """Whether local wall-clock time ``local`` is inside one of the weekly windows (a window
    running past midnight is looked up from the day it starts)."""
    minute = local.hour * 60 + local.minute + (local.second or local.microsecond) / 1e9
    weekday = local.weekday()
    for r in restrictions:
        if r.start < r.end or (r.end == r.start == 0):
            if weekday in r.weekdays and r.start <= minute < (r.end or MINUTES_PER_DAY):
                return True
        else:  # over midnight: [start, 24:00) today, [00:00, end) of the day after
            if weekday in r.weekdays and minute >= r.start:
                return True
            if (weekday - 1) % 7 in r.weekdays and minute < r.end:
                return True
    return False


def _layer_person_at(layer, t, locals_=None):
    if t < layer.start:
        return None
    if locals_ is None:
        local = t.astimezone(layer.tz)
    else:  # one conversion per zone for all the layers of a schedule
        local = locals_.get(layer.zone)
        if local is None:
            local = locals_[layer.zone] = t.astimezone(layer.tz)
    if layer.restrictions and not _inside(layer.restrictions, local):
        return None
    k = _index_at(layer, t, local.replace(tzinfo=None))
    return layer.people[k % len(layer.people)]


# --- the schedule ---------------------------------------------------------------------------


def on_call_at(layers: Sequence[Layer], overrides: Iterable[Override], t: datetime):
    """The person on call at instant ``t``: the latest override covering it, else the highest
    (last) layer that has someone then; None when nobody is."""
    found = None
    for o in overrides:
        if o.start <= t < o.end:
            found = o.person
    if found is not None:
        return found
    locals_ = {}
    for layer in reversed(layers):
        person = _layer_person_at(layer, t, locals_)
        if person is not None:
            return person
    return None


def shifts_between(layers: Sequence[Layer], overrides: Iterable[Override], start, end):
    """The final schedule in [start, end): who is on call when, after layers and overrides,
    as shifts in time order (adjacent pieces of one person from one source are merged). Gaps
    are the times nobody is on call."""
    if end <= start:
        return []
    overrides = [o for o in overrides if o.start < end and o.end > start and o.start < o.end]
    pieces = [layer_shifts(layer, start, end, i) for i, layer in enumerate(layers)]
    cuts = {start, end}
    for shifts in pieces:
        for s in shifts:
            cuts.update((s.start, s.end))
    for o in overrides:
        cuts.update((max(o.start, start), min(o.end, end)))
    cuts = sorted(cuts)
    pointers = [0] * len(pieces)
    out = []
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        person, source = None, None
        for o in overrides:
            if o.start <= lo < o.end:
                person, source = o.person, None
        if person is None:
            for i in range(len(pieces) - 1, -1, -1):
                shifts = pieces[i]
                p = pointers[i]
                while p < len(shifts) and shifts[p].end <= lo:
                    p += 1
                pointers[i] = p
                if p < len(shifts) and shifts[p].start <= lo:
                    person, source = shifts[p].person, i
                    break
        if person is None:
            continue
        last = out[-1] if out else None
        if last and last.end == lo and last.person == person and last.layer == source:
            out[-1] = Shift(last.start, hi, person, source)
        else:
            out.append(Shift(lo, hi, person, source))
    return out


def next_shifts(layers, overrides, t, n, *, horizon=timedelta(days=366)):
    """The next ``n`` shifts of the final schedule from instant ``t`` (the current one first,
    from its real start), looking at most ``horizon`` ahead."""
    overrides = list(overrides)
    span = max((layer.shift for layer in layers), default=WEEKLY) * max(n, 1)
    look_back = max((layer.shift for layer in layers), default=WEEKLY) + timedelta(days=1)
    while True:
        end = t + min(span, horizon)
        shifts = shifts_between(layers, overrides, t - look_back, end)
        shifts = [s for s in shifts if s.end > t]
        if len(shifts) > n or span >= horizon:
            return shifts[:n]
        span *= 2

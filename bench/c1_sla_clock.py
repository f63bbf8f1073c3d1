"""C1, the SLA clock: ``due_at`` for random cases on Mon–Fri 09–17 Europe/Bucharest with the
Romanian public holidays, targets up to 10 business days, 0–3 pauses; calls per second against
the very same calls on a 24×7 calendar. The clock must walk windows, not minutes: target
≥ 0.2× the 24×7 rate."""

import datetime as dt
import random
import time

from bench.common import Row, profiled, say, should_profile

TARGET_RATIO = 0.2
ZONE = "Europe/Bucharest"


def cases(count, *, seed=12):
    """(start, target, pauses) tuples: starts spread over 2026–2027 at any second (in and out
    of hours, weekends, holidays and both DST changes included), targets from 0 to 10 business
    days of 8 h, and 0–3 closed pauses that may overlap, start before the start, or fall
    outside hours."""
    rng = random.Random(seed)
    epoch = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    span = int(dt.timedelta(days=730).total_seconds())
    max_target = int(dt.timedelta(hours=8 * 10).total_seconds())
    out = []
    for _ in range(count):
        start = epoch + dt.timedelta(seconds=rng.randrange(span))
        target = dt.timedelta(
            seconds=rng.choice([0, rng.randrange(max_target)])
            if rng.random() < 0.02
            else rng.randrange(1, max_target)
        )
        pauses = []
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            held_from = start + dt.timedelta(seconds=rng.randrange(-86400, 14 * 86400))
            held_to = held_from + dt.timedelta(seconds=rng.randrange(60, 3 * 86400))
            pauses.append((held_from, held_to))
        out.append((start, target, tuple(pauses)))
    return out


def _rate(calendar, work, repeat):
    from incidents.sla import due_at

    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        for start, target, pauses in work:
            due_at(start, target, calendar, pauses)
        rates.append(len(work) / (time.perf_counter() - started))
    rates.sort()
    return rates[len(rates) // 2]


def run(quick: bool) -> list[Row]:
    from incidents.sla import Calendar, due_at
    from services.demo import romanian_public_holidays

    holidays = {day for year in range(2025, 2030) for day in romanian_public_holidays(year)}
    office = Calendar.office_hours(ZONE, holidays=holidays)
    always = Calendar.twenty_four_seven(ZONE)
    work = cases(5_000 if quick else 100_000)
    repeat = 3

    # Sanity: every answer obeys due >= start, and a pause never makes the 24x7 answer earlier
    # than start + target (a benchmark of a wrong clock would be worthless).
    for start, target, pauses in work[:1000]:
        assert due_at(start, target, office, pauses) >= start
        assert due_at(start, target, always, pauses) >= start + target - dt.timedelta(seconds=1)

    say(f"  {len(work):,} cases, median of {repeat} runs each")
    always_rate = _rate(always, work, repeat)
    office_rate = _rate(office, work, repeat)
    ratio = office_rate / always_rate
    met = ratio >= TARGET_RATIO
    if should_profile(quick, missed=not met):
        with profiled("c1-office-hours"):
            for start, target, pauses in work[:5000]:
                due_at(start, target, office, pauses)

    return [
        Row("due_at on 24×7 (baseline)", always_rate, "calls/s"),
        Row(
            "due_at on Mon–Fri 09–17 Bucharest + holidays",
            office_rate,
            "calls/s",
            baseline=always_rate,
            ratio=ratio,
            target=f"≥ {TARGET_RATIO}× 24×7",
            met=met,
        ),
        Row("µs per call, business hours", 1e6 / office_rate, "µs"),
    ]

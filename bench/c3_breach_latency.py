"""C3, breach latency: incidents with targets of a few seconds (200; quick: 20), a real Celery
worker and beat on Redis sweeping every second (``SLA_SWEEP_INTERVAL=1``). The figure is the
delay from each deadline to its ``sla_breached`` event on the timeline (the event's ``at``), p50
and p99; target p99 ≤ the sweep interval + 1 s, and each breach flagged exactly once.

The incidents are opened while the worker and beat already run, the way a desk opens them, so
the sweep works under the write load of their creation."""

import datetime as dt
import os
import random
import time
from collections import Counter
from pathlib import Path

from bench.common import Row, celery_beat, celery_worker, flush_redis, percentile, say

SWEEP_INTERVAL = 1.0
# Per priority: (response, resolution) targets in seconds, all on a 24×7 calendar.
TARGETS = {1: (3, 6), 2: (4, 8), 3: (5, 10), 4: (6, 12), 5: (7, 14)}
QUICK_TARGETS = {1: (2, 3), 2: (2, 4), 3: (3, 4), 4: (3, 5), 5: (4, 5)}
LEVELS = [(i, u) for i in (1, 2, 3) for u in (1, 2, 3)]


def _catalog(targets):
    from services.models import BusinessCalendar, Service, SlaPolicy, SlaTarget

    calendar = BusinessCalendar.objects.create(name="24×7", time_zone="UTC", is_24x7=True)
    policy = SlaPolicy.objects.create(name="Seconds", calendar=calendar, is_default=True)
    SlaTarget.objects.bulk_create(
        SlaTarget(
            policy=policy,
            priority=p,
            response_target=dt.timedelta(seconds=r),
            resolution_target=dt.timedelta(seconds=s),
        )
        for p, (r, s) in targets.items()
    )
    return Service.objects.create(name="Payments", slug="payments", default_sla_policy=policy)


def run(quick: bool) -> list[Row]:
    from django.contrib.auth.models import Group, User

    from bench.common import fresh_database
    from incidents import workflow
    from incidents.models import EventKind, Incident, IncidentEvent

    count = 20 if quick else 200
    log_dir = Path(os.environ["ITSM_VAR_DIR"]) / "c3"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {"SLA_SWEEP_INTERVAL": str(SWEEP_INTERVAL), "ITSM_VAR_DIR": str(log_dir)}
    flush_redis()
    with fresh_database():
        service = _catalog(QUICK_TARGETS if quick else TARGETS)
        actor = User.objects.create_user("agent", "agent@desk.example.com", "x", is_staff=True)
        actor.groups.add(Group.objects.get(name="Service desk agent"))  # the workflow checks
        worker = celery_worker(log_dir, concurrency=2, env=env)
        beat = celery_beat(log_dir, env=env)
        began = time.monotonic()
        try:
            worker.start()
            beat.start()
            say(f"  worker, beat up in {time.monotonic() - began:.1f} s; opening {count} incidents")
            rng = random.Random(3)
            for n in range(count):
                impact, urgency = rng.choice(LEVELS)
                workflow.create_incident(
                    actor=actor,
                    title=f"Breach {n}",
                    impact=impact,
                    urgency=urgency,
                    services=[service],
                )
            last_due = max(max(i.response_due_at, i.resolve_due_at) for i in Incident.objects.all())
            expected = 2 * count
            breaches = IncidentEvent.objects.filter(kind=EventKind.SLA_BREACHED)
            deadline = time.monotonic() + max(0, (last_due - _now()).total_seconds()) + 20
            while time.monotonic() < deadline and breaches.count() < expected:
                time.sleep(0.5)
            say(f"  {breaches.count()}/{expected} breaches after {time.monotonic() - began:.1f} s")
            time.sleep(2 * SWEEP_INTERVAL)  # a late duplicate would show up by now
            events = list(breaches.values("incident_id", "at", "new_value"))
        finally:
            beat.stop()
            worker.stop()
            flush_redis()
        errors = [line for line in worker.output().splitlines() if "ERROR" in line]
        if errors:
            say("  worker errors:\n    " + "\n    ".join(errors[:10]))

    per_target = Counter((e["incident_id"], e["new_value"]["target"]) for e in events)
    delays = [
        (e["at"] - dt.datetime.fromisoformat(e["new_value"]["due_at"])).total_seconds()
        for e in events
    ]
    flagged = len(per_target)
    duplicated = sum(n - 1 for n in per_target.values())
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    limit = SWEEP_INTERVAL + 1
    say(f"  delays: min {min(delays, default=0):.2f} s, max {max(delays, default=0):.2f} s")
    return [
        Row("breaches flagged (response + resolution)", flagged, baseline=expected),
        Row("breach delay p50", p50, "s", target=f"(sweep every {SWEEP_INTERVAL:g} s)"),
        Row(
            "breach delay p99",
            p99,
            "s",
            baseline=SWEEP_INTERVAL,
            ratio=None if p99 is None else p99 / SWEEP_INTERVAL,
            target=f"≤ {limit:g} s",
            met=p99 is not None and p99 <= limit,
        ),
        Row(
            "breaches missed / flagged twice",
            f"{expected - flagged} / {duplicated}",
            target="0 / 0",
            met=flagged == expected and duplicated == 0,
        ),
    ]


def _now():
    from django.utils import timezone

    return timezone.now()

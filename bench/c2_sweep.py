"""C2, the SLA sweep: one ``sweep_sla`` with 10,000 and then 1,000,000 open incidents
(quick: 1,000 and 20,000), 100 of them due, in PostgreSQL. The sweep reads a partial index, so
its cost must follow what is due, not what is open: target 1M / 10k ≤ 1.5×.

Each sweep runs inside a transaction that is rolled back, so every run finds the same 100 due
incidents (and its on-commit deliveries are never sent).

C2d (issue 17): then 900 more due incidents are added, so one sweep finds 1,000 due at once
among the 1M open (an outage opens many): ≤ 2 ms per due incident, shown beside the cost per
due incident of the 100-due sweep of the same run."""

from bench.common import Row, median_time, profiled, say, should_profile
from bench.data import copy_incidents, make_catalog

TARGET_RATIO = 1.5
DUE = 100
MANY_DUE = 1_000
TARGET_MS_PER_DUE = 2.0
INDEX = "incident_sla_due_idx"
TOUCHED_TABLES = [
    "incidents_incident",
    "incidents_slasignal",
    "incidents_incidentevent",
    "notifications_notificationevent",
    "notifications_notification",
]


class _RolledBack(Exception):
    pass


def _sweep_rolled_back(now, raised):
    from django.db import transaction

    from incidents.sweep import sweep_sla

    try:
        with transaction.atomic():
            raised.append(sweep_sla(now=now))
            raise _RolledBack
    except _RolledBack:
        pass


def _due_query_plan(now):
    from incidents.sweep import due_incidents

    return due_incidents(now)[:500].explain(analyze=True, buffers=True)


def _measure(label, now, repeat, *, warm_up=True):
    from django.db import connection

    with connection.cursor() as cursor:
        # Each rolled-back sweep leaves dead row versions behind: clear them so neither size
        # pays for the other's runs.
        for table in TOUCHED_TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    raised = []
    if warm_up:
        _sweep_rolled_back(now, raised)  # warm the caches once, untimed
    seconds, _times = median_time(lambda: _sweep_rolled_back(now, raised), repeat=repeat)
    plan = _due_query_plan(now)
    say(f"  EXPLAIN of the due query with {label} open incidents:")
    say("    " + plan.replace("\n", "\n    "))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_relation_size(%s))", [INDEX])
        size = cursor.fetchone()[0]
    say(f"  {INDEX}: {size}; signals raised per sweep: {sorted(set(raised))}")
    return seconds, plan, raised


def run(quick: bool) -> list[Row]:
    from django.utils import timezone

    from bench.common import fresh_database
    from incidents.models import Incident
    from incidents.sweep import catch_up_sla_inputs, due_incidents

    small, large = (1_000, 20_000) if quick else (10_000, 1_000_000)
    repeat = 3 if quick else 5
    with fresh_database():
        catalog = make_catalog()
        # The catalog's own notes of changed SLA inputs are consumed once, as the first sweep
        # of a real desk would (the measured sweeps roll back, and would each redo them).
        catch_up_sla_inputs(timezone.now())
        now = timezone.now()
        copy_incidents(small, catalog=catalog, now=now, due=DUE, desc=f"{small:,} incidents")
        assert due_incidents(now).count() == DUE
        small_s, small_plan, small_raised = _measure(f"{small:,}", now, repeat)

        copy_incidents(
            large - small, catalog=catalog, now=now, seed=2, desc=f"{large - small:,} more"
        )
        assert Incident.objects.count() == large and due_incidents(now).count() == DUE
        # The first size warmed the code paths; the quick run skips a second warm-up.
        large_s, large_plan, large_raised = _measure(f"{large:,}", now, repeat, warm_up=not quick)
        ratio = large_s / small_s
        if should_profile(quick, missed=ratio > TARGET_RATIO):
            with profiled("c2-sweep-large"):
                _sweep_rolled_back(now, [])

        # C2d: many due at once.
        copy_incidents(
            MANY_DUE - DUE, catalog=catalog, now=now, due=MANY_DUE - DUE, seed=3, desc="more due"
        )
        assert due_incidents(now).count() == MANY_DUE
        many_s, _plan, many_raised = _measure(
            f"{Incident.objects.count():,}", now, repeat=max(2, repeat - 2), warm_up=False
        )
        per_due_ms = many_s * 1000 / MANY_DUE
        baseline_per_due_ms = large_s * 1000 / DUE
        if should_profile(quick, missed=per_due_ms > TARGET_MS_PER_DUE):
            with profiled("c2d-sweep-many-due"):
                _sweep_rolled_back(now, [])

    index_used = INDEX in small_plan and INDEX in large_plan
    work_done = min(small_raised + large_raised) >= DUE
    return [
        Row(f"C2d: one sweep, {large:,} open, {MANY_DUE:,} due", many_s * 1000, "ms"),
        Row(
            "C2d: ms per due incident (baseline: the 100-due sweep's)",
            per_due_ms,
            "ms",
            baseline=baseline_per_due_ms,
            ratio=per_due_ms / baseline_per_due_ms,
            target=f"≤ {TARGET_MS_PER_DUE:g} ms per due incident",
            met=per_due_ms <= TARGET_MS_PER_DUE and min(many_raised) >= MANY_DUE,
        ),
        Row(f"one sweep, {small:,} open, {DUE} due", small_s * 1000, "ms"),
        Row(
            f"one sweep, {large:,} open, {DUE} due",
            large_s * 1000,
            "ms",
            baseline=small_s * 1000,
            ratio=ratio,
            target=f"≤ {TARGET_RATIO}× the {small:,} sweep",
            met=ratio <= TARGET_RATIO,
        ),
        Row(
            "due query: index scan on incident_sla_due_idx",
            "yes" if index_used else "no",
            target="index scan",
            met=index_used,
        ),
        Row(
            "signals raised per sweep (≥ 1 per due incident)",
            min(small_raised + large_raised),
            met=work_done,
            target=f"≥ {DUE}",
        ),
    ]

"""C4, the write path: acknowledge, change priority, hold, resume and resolve through
``incidents/workflow.py`` (row, timeline, deadlines, service status, outbox rows, one
transaction each), against a plain ``Incident.objects.filter(pk=…).update(…)`` of the same row.

Targets: ≥ 0.2× the plain update's rate, and the same number of SQL queries per transition for
an incident affecting 1 service and one affecting 20 (no per-service query)."""

import contextlib
import time

from bench.common import Row, flush_redis, profiled, say, should_profile

TARGET_RATIO = 0.2
TRANSITIONS = ["acknowledge", "change_priority", "hold", "resume", "resolve"]


class QueryCounter:
    """Counts the SQL statements Django runs (``connection.execute_wrapper``)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _steps(workflow, actor):
    """The five transitions, each a function of the incident, in lifecycle order."""
    return {
        "acknowledge": lambda i: workflow.acknowledge(i, actor=actor, expected_version=i.version),
        "change_priority": lambda i: workflow.change_priority(
            i, actor=actor, impact=1, urgency=1, expected_version=i.version
        ),
        "hold": lambda i: workflow.hold(
            i, actor=actor, reason="Waiting on the customer", expected_version=i.version
        ),
        "resume": lambda i: workflow.resume(i, actor=actor, expected_version=i.version),
        "resolve": lambda i: workflow.resolve(
            i,
            actor=actor,
            code="fixed",
            notes="Restarted the failing nodes.",
            public_message="Fixed: service is back to normal.",
            expected_version=i.version,
        ),
    }


def _lifecycles(count, services, actor, group, counter, plain=None):
    """Run ``count`` incidents affecting ``services`` through the five transitions, one after
    another (so each resolve returns its services to operational). Returns per transition the
    list of (seconds, queries). With a ``plain`` list, each transition is followed by the
    baseline, a plain UPDATE of the same row (its state and timestamp, version untouched),
    timed into ``plain`` as (seconds, queries): interleaved, both see the same machine."""
    from django.utils import timezone

    from incidents import workflow
    from incidents.models import Incident

    steps = _steps(workflow, actor)
    found = {name: [] for name in TRANSITIONS}
    for n in range(count):
        incident = workflow.create_incident(
            actor=actor,
            title=f"Bench incident {n}",
            impact=2,
            urgency=2,
            services=services,
            assignment_group=group,
        )
        for name in TRANSITIONS:
            before = counter.count
            started = time.perf_counter()
            result = steps[name](incident)
            found[name].append((time.perf_counter() - started, counter.count - before))
            incident = result if hasattr(result, "version") else incident
            if plain is not None:
                before = counter.count
                started = time.perf_counter()
                Incident.objects.filter(pk=incident.pk).update(
                    state=incident.state, updated_at=timezone.now()
                )
                plain.append((time.perf_counter() - started, counter.count - before))
    return found


def _subscribers(services, count=20):
    from services.models import Contact, Organization, Subscription

    org = Organization.objects.create(name="Bench subscribers", slug="bench-subscribers")
    contacts = Contact.objects.bulk_create(
        Contact(organization=org, name=f"Subscriber {n}", email=f"s{n}@customer.example.com")
        for n in range(count)
    )
    Subscription.objects.bulk_create(
        Subscription(service=services[n % len(services)], contact=c) for n, c in enumerate(contacts)
    )


def _rate(samples):
    """Transitions per second over (seconds, queries) samples."""
    return len(samples) / sum(seconds for seconds, _ in samples)


def run(quick: bool) -> list[Row]:
    from django.db import connection

    from bench.common import fresh_database
    from bench.data import make_catalog

    per_size = 10 if quick else 30
    flush_redis()
    try:
        with fresh_database():
            catalog = make_catalog(services=24)
            _subscribers(catalog.services)
            actor = catalog.users[0]
            counter = QueryCounter()
            with connection.execute_wrapper(counter):
                # Warm-up: imports, prepared caches, the first connection.
                _lifecycles(2, catalog.services[:1], actor, catalog.groups[0], counter)
                plain = []
                one = _lifecycles(
                    per_size, catalog.services[:1], actor, catalog.groups[0], counter, plain
                )
                twenty = _lifecycles(
                    per_size, catalog.services[:20], actor, catalog.groups[0], counter, plain
                )
            plain_rate = _rate(plain)
            workflow_rate = _rate([s for v in (*one.values(), *twenty.values()) for s in v])
            if should_profile(quick, missed=workflow_rate / plain_rate < TARGET_RATIO):
                with profiled("c4-write-path"):
                    _lifecycles(5, catalog.services[:20], actor, catalog.groups[0], counter)
    finally:
        with contextlib.suppress(Exception):
            flush_redis()

    ratio = workflow_rate / plain_rate
    rows = [
        Row("plain Incident.objects.filter(pk=…).update(…)", plain_rate, "/s"),
        Row(
            "workflow transitions (5 kinds, 1 and 20 services)",
            workflow_rate,
            "/s",
            baseline=plain_rate,
            ratio=ratio,
            target=f"≥ {TARGET_RATIO}× plain update",
            met=ratio >= TARGET_RATIO,
        ),
    ]
    for name in TRANSITIONS:
        q1 = max(q for _, q in one[name])
        q20 = max(q for _, q in twenty[name])
        rate_20 = _rate(twenty[name])
        say(f"  {name}: {_rate(one[name]):.0f}/s with 1 service, {rate_20:.0f}/s with 20")
        rows.append(
            Row(
                f"queries per {name}, 20 services (baseline: 1 service)",
                q20,
                baseline=q1,
                ratio=q20 / q1,
                target="same as with 1 service",
                met=q20 == q1,
            )
        )
    rows.append(Row("queries per plain update", max(q for _, q in plain)))
    return rows

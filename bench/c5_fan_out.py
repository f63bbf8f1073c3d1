"""C5, fan-out: one public update (``workflow.post_update(is_public=True)``) on a service that
100,000 contacts (quick: 5,000) depend on, directly or through the dependency closure, with an
aiosmtpd sink on loopback and a Celery worker with two processes.

Figures: the time of the posting call (it writes the outbox rows in its transaction), the time
until the last email arrives and the rate, and the emails lost and duplicated, counted at the
sink by Message-ID, beside a bare ``smtplib`` loop (one process, one connection, a prepared
message) to the same sink in the same run. Targets: call ≤ 0.5 s, ≥ 800 emails/s and ≥ 0.5×
the bare loop, 0 lost, 0 duplicated."""

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    Row,
    SmtpSink,
    analyze,
    celery_worker,
    copy_rows,
    flush_redis,
    profiled,
    say,
    table_of,
)

REQUEST_TARGET = 0.5  # seconds
RATE_TARGET = 800  # emails per second
BASELINE_RATIO_TARGET = 0.5  # of a bare smtplib loop to the same sink
BASELINE_MESSAGES = 20_000

CONTACTS_PER_ORG = 100
STALL_SECONDS = 30


def _catalog():
    """database ← payments ← checkout ← website (each depends on the one before), plus an
    unrelated service for subscribers who must not hear about it."""
    from services.models import Service, ServiceDependency

    names = ["Database", "Payments", "Checkout", "Website", "Reporting"]
    services = Service.objects.bulk_create(
        Service(name=name, slug=name.lower(), display_order=n) for n, name in enumerate(names)
    )
    ServiceDependency.objects.bulk_create(
        ServiceDependency(service=a, depends_on=b)
        for a, b in zip(services[1:4], services[:3], strict=True)
    )
    return services[:4], services[4]


def _subscribers(count, closure, unrelated):
    """``count`` contacts who hear about trouble on the database (a fifth of their
    organisations subscribed as a whole, the rest contact by contact, one in ten of those twice
    through two services), and 5% more, subscribed only to the unrelated service. Returns how
    many should be mailed."""
    from services.models import Contact, Organization, Subscription

    now = dt.datetime.now(dt.UTC)
    reached_orgs = count // CONTACTS_PER_ORG
    noise_orgs = max(1, reached_orgs // 20)
    orgs = reached_orgs + noise_orgs
    copy_rows(
        table_of(Organization),
        ["id", "name", "slug", "is_active", "created_at"],
        ((o, f"Customer {o:06d}", f"customer-{o:06d}", True, now) for o in range(1, orgs + 1)),
        total=orgs,
        desc="organisations",
    )
    contacts = orgs * CONTACTS_PER_ORG
    copy_rows(
        table_of(Contact),
        ["id", "organization_id", "name", "email", "language", "is_active", "created_at"],
        (
            (
                c,
                (c - 1) // CONTACTS_PER_ORG + 1,
                f"Contact {c}",
                f"contact{c}@customer{(c - 1) // CONTACTS_PER_ORG + 1}.example.com",
                "ro" if c % 5 == 0 else "en",
                True,
                now,
            )
            for c in range(1, contacts + 1)
        ),
        total=contacts,
        desc="contacts",
    )
    closure_ids = [s.pk for s in closure]

    def subscriptions():
        for org in range(1, orgs + 1):
            if org > reached_orgs:  # noise: subscribed to something else only
                first = (org - 1) * CONTACTS_PER_ORG + 1
                for c in range(first, first + CONTACTS_PER_ORG):
                    yield ("email", "", "", True, now, c, None, unrelated.pk)
            elif org % 5 == 0:
                yield ("email", "", "", True, now, None, org, closure_ids[org % 4])
            else:
                first = (org - 1) * CONTACTS_PER_ORG + 1
                for c in range(first, first + CONTACTS_PER_ORG):
                    yield ("email", "", "", True, now, c, None, closure_ids[c % 4])
                    if c % 10 == 0:
                        yield ("email", "", "", True, now, c, None, closure_ids[(c + 1) % 4])

    copy_rows(
        table_of(Subscription),
        ["channel", "webhook_url", "webhook_secret", "is_active", "created_at", "contact_id",
         "organization_id", "service_id"],
        subscriptions(),
        total=int(count * 1.15),
        desc="subscriptions",
    )  # fmt: skip
    from django.db import connection

    with connection.cursor() as cursor:
        for model in (Organization, Contact):
            table = table_of(model)
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM "
                f"{table}))"
            )
    analyze(table_of(Organization), table_of(Contact), table_of(Subscription))
    return reached_orgs * CONTACTS_PER_ORG


def run(quick: bool) -> list[Row]:
    from django.contrib.auth.models import Group, User

    from bench.common import fresh_database
    from incidents import workflow

    count = 5_000 if quick else 100_000
    log_dir = Path(os.environ["ITSM_VAR_DIR"]) / "c5"
    log_dir.mkdir(parents=True, exist_ok=True)
    flush_redis()
    with fresh_database(), SmtpSink() as sink:
        closure, unrelated = _catalog()
        expected = _subscribers(count, closure, unrelated)
        actor = User.objects.create_user("agent", "agent@desk.example.com", "x", is_staff=True)
        actor.groups.add(Group.objects.get(name="Service desk agent"))  # the workflow checks
        incident = workflow.create_incident(
            actor=actor, title="Database unavailable", impact=1, urgency=1, services=[closure[0]]
        )
        worker = celery_worker(
            log_dir,
            concurrency=2,
            env={"EMAIL_URL": sink.url, "ITSM_VAR_DIR": str(log_dir), "LOG_LEVEL": "WARNING"},
        )
        try:
            worker.start()
            say(f"  worker up; posting a public update to {expected:,} subscribers")
            worker_cpu_before, sink_cpu_before = worker.cpu_seconds(), time.process_time()
            profile = bool(os.environ.get("BENCH_PROFILE"))
            with profiled("c5-post-update", enabled=profile):
                started = time.perf_counter()
                workflow.post_update(
                    incident,
                    actor=actor,
                    body="We are investigating failed payments.",
                    is_public=True,
                    public_status="investigating",
                )
                request_s = time.perf_counter() - started
            say(f"  post_update returned after {request_s:.2f} s")
            seen, last_progress = 0, time.monotonic()
            give_up = time.monotonic() + (120 if quick else 480)
            while sink.received < expected:
                time.sleep(0.5)
                if sink.received != seen:
                    seen, last_progress = sink.received, time.monotonic()
                elif time.monotonic() - last_progress > STALL_SECONDS:
                    say(f"  no email for {STALL_SECONDS} s, giving up at {seen:,}")
                    break
                if time.monotonic() > give_up:
                    say(f"  out of time with {sink.received:,} of {expected:,} emails")
                    break
            time.sleep(1)  # let a straggling duplicate arrive
            statuses = _status_counts()
            worker_cpu = worker.cpu_seconds() - worker_cpu_before
            sink_cpu = time.process_time() - sink_cpu_before
        finally:
            worker.stop()
            flush_redis()
        say(f"  outbox: {statuses}")
        if sink.received:
            say(
                f"  CPU per email: worker processes {worker_cpu / sink.received * 1000:.2f} ms, "
                f"bench process (the sink) {sink_cpu / sink.received * 1000:.2f} ms"
            )
        unique = len(sink.seen)
        duplicated = sum(sink.seen.values()) - unique + sink.without_id
        last = (sink.last_at - started) if sink.last_at else None
        baseline_messages = min(BASELINE_MESSAGES, count)
        out = subprocess.run(
            [sys.executable, "-m", "bench.bare_smtp", str(sink.port), str(baseline_messages)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        baseline = float(out.stdout.strip().splitlines()[-1])
        say(f"  bare smtplib loop to the same sink: {baseline:.0f} emails/s")

    lost = max(expected - unique, 0)
    rate = unique / last if last else 0.0
    return [
        Row(
            "post_update (public) call",
            request_s,
            "s",
            target=f"≤ {REQUEST_TARGET} s",
            met=request_s <= REQUEST_TARGET,
        ),
        Row(f"until the last of {expected:,} emails arrives", last, "s"),
        Row(
            "delivery rate, 2 worker processes",
            rate,
            "emails/s",
            target=f"≥ {RATE_TARGET}/s",
            met=rate >= RATE_TARGET,
        ),
        Row(
            f"bare smtplib loop to the same sink ({baseline_messages:,} emails)",
            baseline,
            "emails/s",
        ),
        Row(
            "delivery rate / bare smtplib loop",
            rate / baseline if baseline else 0.0,
            "×",
            target=f"≥ {BASELINE_RATIO_TARGET}×",
            met=bool(baseline) and rate / baseline >= BASELINE_RATIO_TARGET,
        ),
        Row(
            "emails lost / duplicated (by Message-ID)",
            f"{lost} / {duplicated}" if lost == 0 else f"{lost} (not arrived) / {duplicated}",
            target="0 / 0",
            met=lost == 0 and duplicated == 0,
        ),
    ]


def _status_counts():
    from django.db.models import Count

    from notifications.models import Notification

    rows = Notification.objects.values("status").annotate(n=Count("id")).order_by()
    return {row["status"]: row["n"] for row in rows}

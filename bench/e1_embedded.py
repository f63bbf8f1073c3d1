"""E1, the embedded default keeps up: ``manage.py run_all`` (gunicorn, the deliveries worker,
the sweeps worker, beat, as ``make run`` starts them) on (a) the embedded default, a SQLite file
and the embedded broker in a temporary var dir, and (b) PostgreSQL + Redis, under the same load:
four clients working incidents through the workflow (create, acknowledge, public update,
resolve; every third cycle also an incident left open to breach its targets of seconds), with
email going to an SMTP sink on loopback.

Two phases. Throughput: the load runs 10 s (quick: 2 s) and the bench waits until the outbox
is empty; the rate is the tasks both workers completed (``succeeded`` lines in their logs) from
the load's start until then, so a worker that falls behind is charged for its backlog. Kill: the
load runs 6 s (quick: 2 s) more, half-way through the deliveries worker's process group gets
``kill -9`` (``run_all`` restarts it), then the bench waits until the outbox is empty and every
expected breach is flagged.

Figures, per configuration, the embedded one beside PostgreSQL + Redis as the baseline:
- tasks/s the workers complete under the load (target ≥ 50/s), and for how long the backlog
  outlived the load;
- breach-flag delay (the ``sla_breached`` event's ``at`` minus the target's ``due_at``) p99,
  against the sweep interval; target ≤ interval + 1 s;
- messages lost after the ``kill -9``: outbox rows not sent (and events never expanded) once
  drained, and emails the sink never saw; target 0. Emails it saw twice (by Message-ID: a row
  sent but not marked when the worker died goes again, the same message) are shown beside.
- tasks/s with 2,000 (quick: 150) deliveries of no event queued at once: what the broker and
  worker sustain with the tasks' own work out of the way (one empty claim each).

The load is driven from a subprocess (``python -m bench.e1_embedded drive``) with the
configuration's environment: the bench process itself is set up on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ROOT, Process, Row, SmtpSink, flush_redis, free_port, percentile, say

CLIENTS = 4
SWEEP_INTERVAL = 1.0
# Short, so rows a killed worker had claimed are swept back within the bench's wait. The outbox
# sweep keeps its default interval (10 s): it re-dispatches every event with due rows, those
# still queued too, so at 1 s it multiplied a backlog (5,315 of 5,668 deliveries sent nothing).
LEASE_SECONDS = 3
SUBSCRIBERS = 10
# Response / resolution targets (seconds) of the incidents left open to breach; the worked ones
# are resolved well inside them.
TARGETS = (2, 4)
RATE_TARGET = 50  # tasks per second
# Variables that would move a configuration off what it is meant to be.
CONFIG_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CACHE_KEY_PREFIX")
_TASK_LINE = re.compile(
    r"^\s*(worker|sweeper) \| \[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}):[^\]]*\] "
    r"Task (\S+)\[[^\]]+\] (received|succeeded)"
)


def _environment(name, var_dir, sink):
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(
        ITSM_VAR_DIR=str(var_dir),
        EMAIL_URL=sink.url,
        SLA_SWEEP_INTERVAL=str(SWEEP_INTERVAL),
        NOTIFY_LEASE_SECONDS=str(LEASE_SECONDS),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        DEBUG="0",
    )
    if name == "postgres":
        for key in CONFIG_VARIABLES:
            if key in os.environ:
                env[key] = os.environ[key]
    return env


def _run_all(log_dir, env):
    process = Process(
        "run_all",
        [sys.executable, "manage.py", "run_all", "--port", free_port(), "--web-workers", "1"],
        log_dir=log_dir,
    )
    process.env = env  # the whole environment: the embedded one must lack DATABASE_URL & co.
    process.start()
    deadline = time.monotonic() + 90
    while not (
        len(re.findall(r"\bready\.", process.output())) >= 2
        and "beat: Starting" in process.output()
    ):
        if process.popen.poll() is not None or time.monotonic() > deadline:
            process.stop(timeout=30)  # or what it started would go on running
            raise RuntimeError(f"run_all did not come up:\n{process.tail()}")
        time.sleep(0.2)
    return process


def _tasks(log_text, since, until):
    """(received, succeeded) task lines of both workers logged within [since, until] (epoch)."""
    low, high = dt.datetime.fromtimestamp(since), dt.datetime.fromtimestamp(until)
    counts = {"received": 0, "succeeded": 0}
    for line in log_text.splitlines():
        match = _TASK_LINE.match(line)
        if match:
            at = dt.datetime.strptime(match.group(2), "%Y-%m-%d %H:%M:%S,%f")
            if low <= at <= high:
                counts[match.group(4)] += 1
    return counts["received"], counts["succeeded"]


def _empty_rate(name, run_all, env, count):
    """Publish ``count`` deliveries of no event at once (each a worker round trip and one
    empty claim statement): the rate the broker and worker sustain, with the tasks' own work
    out of the way. Returns tasks per second from the first publish to the last completion."""
    already = len(_succeeded(run_all.output(), "notifications.deliver_event"))
    started = time.time()
    subprocess.run([*DRIVER, "publish-empty", str(count)], cwd=ROOT, env=env, check=True)
    deadline = time.monotonic() + 120
    while True:
        done = _succeeded(run_all.output(), "notifications.deliver_event")[already:]
        if len(done) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if len(done) < count:
        say(f"  {name}: only {len(done)} of {count} empty deliveries done in 120 s")
        return len(done) / 120
    rate = count / (done[count - 1].timestamp() - started)
    say(f"  {name}: {count} empty deliveries at {rate:.1f}/s")
    return rate


def _succeeded(log_text, task):
    """When each ``task`` logged its success (datetimes, in log order)."""
    found = []
    for line in log_text.splitlines():
        match = _TASK_LINE.match(line)
        if match and match.group(3) == task and match.group(4) == "succeeded":
            found.append(dt.datetime.strptime(match.group(2), "%Y-%m-%d %H:%M:%S,%f"))
    return found


def _measure(name, *, empty, load, kill_load, drain_timeout, seeded):
    """One configuration, set up by ``seeded`` (a finished or running seed process): the
    throughput phase, then the kill phase; returns its figures."""
    var_dir = seeded.var_dir
    env = seeded.env
    began = time.monotonic()
    if seeded.wait(300) != 0:
        raise RuntimeError(f"seeding {name} failed")
    run_all = _run_all(var_dir, env)
    say(f"  {name}: run_all up after {time.monotonic() - began:.1f} s")
    try:
        empty_rate = _empty_rate(name, run_all, env, empty)
        drive = subprocess.Popen(
            [*DRIVER, "drive", str(load), str(kill_load), str(drain_timeout)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        _, started, drained_at = drive.stdout.readline().split()
        started, drained_at = float(started), float(drained_at)
        second = float(drive.stdout.readline().split()[1])
        time.sleep(max(0.0, second + kill_load / 2 - time.time()))
        worker = int(re.search(r"started worker \(pid (\d+)\)", run_all.output()).group(1))
        os.killpg(worker, signal.SIGKILL)  # the worker and its pool, as the OOM killer would
        report = json.loads(drive.stdout.read().strip().splitlines()[-1])
        drive.wait(30)
        time.sleep(1)  # a duplicate on its way would arrive by now
    finally:
        run_all.stop(timeout=30)
    log = run_all.output()
    received, succeeded = _tasks(log, started, drained_at)
    took = drained_at - started
    restarted = "worker exited with code -9" in log
    say(
        f"  {name}: {succeeded} tasks done in {took:.1f} s ({load:g} s of load, then the backlog);"
        f" worker restarted after kill -9: {restarted}; drained {report['drain_seconds']:.1f} s"
        f" after the second load; {report['actions']} actions, {report['action_errors']} failed"
    )
    if report.get("first_error"):
        say(f"  {name}: first failed action: {report['first_error']}")
    sent = report["sent"]
    seen = seeded.sink.seen
    return {
        "rate": succeeded / took,
        "empty_rate": empty_rate,
        "backlog": took - load,
        "p99": percentile(report["delays"], 99),
        "breaches": len(report["delays"]),
        "expected_breaches": report["expected_breaches"],
        "lost": report["unsent"] + report["unexpanded"] + max(0, sent - len(seen)),
        "duplicates": sum(n - 1 for n in seen.values()),
        "sent": sent,
        "restarted": restarted,
        "drained": report["drained"],
    }


DRIVER = [sys.executable, "-m", "bench.e1_embedded"]


class _Seeded:
    """A configuration's var dir, SMTP sink and environment, and the process that migrates
    and seeds its database (started at once, waited for by ``_measure``)."""

    def __init__(self, name, quick):
        self.var_dir = Path(tempfile.mkdtemp(prefix=f"e1-{name}-", dir=os.environ["ITSM_VAR_DIR"]))
        self.sink = SmtpSink().start()
        self.env = _environment(name, self.var_dir, self.sink)
        if quick:  # the kill phase waits for an outbox sweep; its backlog is small
            self.env["OUTBOX_SWEEP_INTERVAL"] = "3"
        self.process = subprocess.Popen([*DRIVER, "seed"], cwd=ROOT, env=self.env)

    def wait(self, timeout):
        return self.process.wait(timeout)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.sink.stop()


def run(quick: bool) -> list[Row]:
    from bench.common import fresh_database

    empty, load, kill_load, drain = (150, 2, 2, 30) if quick else (2000, 10, 6, 180)
    flush_redis()
    configs = {}
    try:
        with fresh_database():
            # The SQLite file migrates (~10 s) while PostgreSQL's database is seeded: in quick
            # mode that is a good part of the time; the loads and their workers never overlap.
            configs["postgres"] = _Seeded("postgres", quick)
            configs["embedded"] = _Seeded("embedded", quick)
            configs["embedded"].wait(300)
            base = _measure(
                "postgres", empty=empty, load=load, kill_load=kill_load, drain_timeout=drain,
                seeded=configs["postgres"],
            )  # fmt: skip
        emb = _measure(
            "embedded", empty=empty, load=load, kill_load=kill_load, drain_timeout=drain,
            seeded=configs["embedded"],
        )  # fmt: skip
    finally:
        for seeded in configs.values():
            seeded.close()
        flush_redis()
    limit = SWEEP_INTERVAL + 1

    def ratio(key):
        return None if not base[key] or emb[key] is None else emb[key] / base[key]

    return [
        Row(
            "embedded: tasks/s the workers complete (4 clients)",
            emb["rate"],
            "/s",
            baseline=base["rate"],
            ratio=ratio("rate"),
            target=f"≥ {RATE_TARGET}/s",
            met=emb["rate"] >= RATE_TARGET,
        ),
        Row(
            "embedded: tasks/s, empty deliveries queued at once (broker-bound)",
            emb["empty_rate"],
            "/s",
            baseline=base["empty_rate"],
            ratio=ratio("empty_rate"),
            target=f"≥ {RATE_TARGET}/s",
            met=emb["empty_rate"] >= RATE_TARGET,
        ),
        Row(
            "embedded: backlog left when the load stopped",
            emb["backlog"],
            "s",
            baseline=base["backlog"],
            ratio=ratio("backlog"),
        ),
        Row(
            f"embedded: breach delay p99 ({emb['breaches']}/{emb['expected_breaches']}+ flagged)",
            emb["p99"],
            "s",
            baseline=base["p99"],
            ratio=ratio("p99"),
            target=f"≤ {limit:g} s (sweep every {SWEEP_INTERVAL:g} s)",
            met=emb["p99"] is not None
            and emb["p99"] <= limit
            and emb["breaches"] >= emb["expected_breaches"],
        ),
        Row(
            f"embedded: lost / duplicated after kill -9 ({emb['sent']} sent"
            + ("" if emb["drained"] else f", NOT drained in {drain:g} s")
            + ")",
            f"{emb['lost']} / {emb['duplicates']}",
            baseline=None,
            # A row sent but not yet marked when the worker died goes again with the same
            # Message-ID (receivers drop it): a duplicate is context, a loss is the target.
            target=f"0 lost (baseline {base['lost']} / {base['duplicates']} of {base['sent']}"
            + ("" if base["drained"] else f", NOT drained in {drain:g} s")
            + ")",
            met=emb["lost"] == 0 and emb["drained"],
        ),
        Row(
            "PostgreSQL + Redis: breach delay p99 / lost after kill -9",
            f"{base['p99'] or 0:.2f} s / {base['lost']}",
            target=f"≤ {limit:g} s / 0",
            met=base["p99"] is not None and base["p99"] <= limit and base["lost"] == 0,
        ),
    ]


# --- the driver, run in a subprocess with a configuration's environment ------------------------


def _seed():
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    from services.models import (
        BusinessCalendar,
        Contact,
        Organization,
        Service,
        SlaPolicy,
        SlaTarget,
        Subscription,
    )

    call_command("migrate", verbosity=0)  # the embedded SQLite file is new; PostgreSQL's is done
    calendar = BusinessCalendar.objects.create(name="24×7", time_zone="UTC", is_24x7=True)
    policy = SlaPolicy.objects.create(name="Seconds", calendar=calendar, is_default=True)
    response, resolution = (dt.timedelta(seconds=s) for s in TARGETS)
    SlaTarget.objects.bulk_create(
        SlaTarget(policy=policy, priority=p, response_target=response, resolution_target=resolution)
        for p in range(1, 6)
    )
    service = Service.objects.create(name="Payments", slug="payments", default_sla_policy=policy)
    org = Organization.objects.create(name="Customer", slug="customer")
    for n in range(SUBSCRIBERS):
        contact = Contact.objects.create(
            organization=org, name=f"Contact {n}", email=f"contact{n}@customer.example.com"
        )
        Subscription.objects.create(channel="email", contact=contact, service=service)
    agents = Group.objects.get(name="Service desk agent")
    for n in range(CLIENTS):
        user = User.objects.create_user(
            f"agent{n}", f"agent{n}@desk.example.com", "x", is_staff=True
        )
        user.groups.add(agents)


def _client(n, until, counts, lock):
    from django.contrib.auth.models import User
    from django.db import connection

    from incidents import workflow
    from services.models import Service

    actor = User.objects.get(username=f"agent{n}")
    service = Service.objects.get(slug="payments")
    cycle = 0
    try:
        while time.time() < until:
            cycle += 1
            try:
                incident = workflow.create_incident(
                    actor=actor, title=f"Client {n} #{cycle}", services=[service]
                )
                incident = workflow.acknowledge(incident, actor=actor)
                workflow.post_update(
                    incident,
                    actor=actor,
                    body="Payments fail for some customers; we are on it.",
                    is_public=True,
                    public_status="investigating",
                )
                workflow.resolve(incident, actor=actor, code="fixed", notes="Restarted.")
                done, left = 4, 0
                if cycle % 3 == 0:
                    workflow.create_incident(
                        actor=actor, title=f"Left open {n} #{cycle}", services=[service]
                    )
                    done, left = 5, 1
                with lock:
                    counts["actions"] += done
                    counts["left_open"] += left
            except Exception as error:  # a failed action is a finding, not a crash
                with lock:
                    counts["action_errors"] += 1
                    counts.setdefault("first_error", repr(error))
    finally:
        connection.close()


def _state():
    from incidents.models import EventKind, IncidentEvent
    from notifications.models import Notification, NotificationEvent, NotificationStatus

    rows = Notification.objects
    return {
        "unexpanded": NotificationEvent.objects.filter(expanded_at__isnull=True).count(),
        # Cancelled rows were meant not to go (an unwanted recipient): only these are lost.
        "unsent": rows.filter(
            status__in=[NotificationStatus.PENDING, NotificationStatus.SENDING, "failed"]
        ).count(),
        "sent": rows.filter(status=NotificationStatus.SENT, channel="email").count(),
        "breaches": IncidentEvent.objects.filter(kind=EventKind.SLA_BREACHED).count(),
    }


def _load(seconds, counts):
    """The four clients for ``seconds``; returns when they have stopped."""
    lock = threading.Lock()
    until = time.time() + seconds
    threads = [
        threading.Thread(target=_client, args=(n, until, counts, lock)) for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _drain(expected, timeout):
    """Wait until every event is expanded, every row sent and ``expected`` breaches flagged;
    returns (drained, the state)."""
    deadline = time.monotonic() + timeout
    while True:
        state = _state()
        drained = not state["unexpanded"] and not state["unsent"] and state["breaches"] >= expected
        if drained or time.monotonic() > deadline:
            return drained, state
        time.sleep(0.2)


def _drive(seconds, kill_seconds, drain_timeout):
    """Throughput phase: load ``seconds``, wait for the backlog; prints ``phase1 START END``.
    Kill phase: prints ``phase2 START`` (the bench kills the worker meanwhile), loads
    ``kill_seconds``, waits for the outbox to empty, prints the report as JSON."""
    from incidents.models import EventKind, IncidentEvent

    counts = {"actions": 0, "left_open": 0, "action_errors": 0}
    started = time.time()
    _load(seconds, counts)
    # Breaches are not part of the backlog: the throughput phase waits for the outbox only.
    _drain(0, drain_timeout)
    print(f"phase1 {started} {time.time()}", flush=True)
    print(f"phase2 {time.time()}", flush=True)
    _load(kill_seconds, counts)
    load_end = time.monotonic()
    expected = 2 * counts["left_open"]
    drained, state = _drain(expected, drain_timeout + max(TARGETS))
    drain_seconds = time.monotonic() - load_end
    delays = [
        (e["at"] - dt.datetime.fromisoformat(e["new_value"]["due_at"])).total_seconds()
        for e in IncidentEvent.objects.filter(kind=EventKind.SLA_BREACHED).values("at", "new_value")
    ]
    counts.update(state)
    counts.update(
        delays=delays, expected_breaches=expected, drained=drained, drain_seconds=drain_seconds
    )
    print(json.dumps(counts), flush=True)


def main(argv):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itsm.settings")
    import django

    django.setup()
    if argv[0] == "seed":
        _seed()
    elif argv[0] == "publish-empty":
        from celery import current_app

        task = current_app.tasks["notifications.deliver_event"]
        for _ in range(int(argv[1])):
            task.delay(0)  # no such event: the worker claims nothing and is done
    elif argv[0] == "drive":
        _drive(float(argv[1]), float(argv[2]), float(argv[3]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}: seed or drive")


if __name__ == "__main__":
    main(sys.argv[1:])

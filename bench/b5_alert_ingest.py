"""B5: Alertmanager's webhook under an alert storm.

``POST /api/v1/integrations/alertmanager/`` through gunicorn (four sync workers, production
settings) from eight concurrent senders. Each payload is one Alertmanager group's notification
of ten alerts; ``GROUPS`` groups (the default routing: one incident per Alertmanager group key).

- Opening (untimed, but checked): each group's first notification (nine new alerts) is sent
  twice at once, as an Alertmanager HA pair does.
- The storm (timed): notifications of random groups, each with the group's nine latest alerts
  (repeats) and one new one (joins the group's incident with a work note): 10 % new
  fingerprints, 90 % repeats. Several notifications of one group are often in flight together.

Figures: alerts/s over the storm (target ≥ 500 on the 2-core machine), the server's own count of
new and repeated alerts, and the check that every group key has exactly one incident, every
fingerprint one alert, and no request failed.
"""

import contextlib
import http.client
import json
import os
import queue
import random
import secrets
import threading
import time
from pathlib import Path

from bench.common import Row, flush_redis, free_port, fresh_database, gunicorn, profiled, say

RATE_TARGET = 500
ALERTS_PER_PAYLOAD = 10
SENDERS = 8
WORKERS = 4
PATH = "/api/v1/integrations/alertmanager/"


def _alert(group, n):
    return {
        "status": "firing",
        "labels": {
            "alertname": f"HighErrorRate{group}",
            "instance": f"web-{n}:9100",
            "job": f"service-{group}",
            "severity": "critical",
        },
        "annotations": {
            "summary": f"High error rate on service-{group}",
            "description": f"5xx ratio above 5% on web-{n}:9100 for 5 minutes.",
        },
        "startsAt": "2026-12-01T09:58:12.345678901Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up",
        "fingerprint": f"{group:04x}{n:012x}",
    }


def _payload(group, numbers):
    alerts = [_alert(group, n) for n in numbers]
    return json.dumps(
        {
            "receiver": "itsm",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": f"HighErrorRate{group}"},
            "commonLabels": {"alertname": f"HighErrorRate{group}", "severity": "critical"},
            "commonAnnotations": {"summary": f"High error rate on service-{group}"},
            "externalURL": "http://alertmanager.example.com:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="HighErrorRate{group}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


def _storm(groups, payloads, seed=5):
    """The opening notifications (each group's first nine alerts, twice) and the storm's
    (nine latest known + one new each), as bodies, in sending order."""
    rng = random.Random(seed)
    known = {g: list(range(ALERTS_PER_PAYLOAD - 1)) for g in range(groups)}
    opening = [_payload(g, known[g]) for g in range(groups) for _copy in range(2)]
    storm = []
    for _ in range(payloads):
        g = rng.randrange(groups)
        new = known[g][-1] + 1
        storm.append(_payload(g, known[g][-(ALERTS_PER_PAYLOAD - 1) :] + [new]))
        known[g].append(new)
    fingerprints = sum(len(numbers) for numbers in known.values())
    return opening, storm, fingerprints


def _send_all(port, secret, bodies, senders):
    """POST every body from ``senders`` threads (one keep-alive connection each); returns
    (seconds, answers as dicts, failures as strings)."""
    work = queue.SimpleQueue()
    for body in bodies:
        work.put(body)
    answers, failures, lock = [], [], threading.Lock()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    start = threading.Barrier(senders + 1)

    def sender():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            try:
                conn.request("POST", PATH, body=body, headers=headers)
                response = conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            with lock:
                if response.status == 200:
                    answers.append(json.loads(text))
                else:
                    failures.append(f"{response.status}: {text[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, answers, failures


def server_cpu_seconds(server):
    """CPU seconds used so far by ``server`` (a ``Process``: gunicorn and its workers) and by
    the PostgreSQL backends serving the bench database (other than this process's own): what
    the work cost, whatever else the shared machine was running meanwhile."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        backends = [pid for (pid,) in cursor.fetchall()]
    ticks = os.sysconf("SC_CLK_TCK")
    total = server.cpu_seconds()
    for pid in backends:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _one_incident_per_group_key(groups, fingerprints):
    """What the database holds after the storm, against what was sent: (ok, text)."""
    from django.db.models import Count

    from incidents.models import Alert, AlertGroup, Incident

    incidents = Incident.objects.count()
    keys = list(Alert.objects.values("group_key").annotate(n=Count("incident_id", distinct=True)))
    split = [k["group_key"] for k in keys if k["n"] != 1]
    open_groups = AlertGroup.objects.filter(is_open=True)
    group_incidents = open_groups.values("incident_id").distinct().count()
    alerts = Alert.objects.count()
    orphans = Alert.objects.filter(incident__isnull=True).count()
    ok = (
        incidents == groups
        and len(keys) == groups
        and not split
        and open_groups.count() == groups == group_incidents
        and alerts == fingerprints
        and not orphans
    )
    text = (
        f"{len(keys)} group keys, {incidents} incidents, {open_groups.count()} open groups, "
        f"{alerts:,} alerts for {fingerprints:,} fingerprints"
        + (f", {len(split)} keys split over incidents" if split else "")
        + (f", {orphans} alerts without an incident" if orphans else "")
    )
    return ok, text


def run(quick: bool) -> list[Row]:
    from itsm import tokens

    groups, payloads = (20, 400) if quick else (50, 2000)
    run_dir = Path(os.environ["ITSM_VAR_DIR"]) / "b5"
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ITSM_VAR_DIR": str(run_dir),
        "CONN_MAX_AGE": "600",  # one backend per worker for the whole storm (and its CPU)
    }
    opening, storm, fingerprints = _storm(groups, payloads)
    rows = []
    flush_redis()  # the workflow queues deliveries and publishes; nobody consumes them here
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(flush_redis)
        cleanup.enter_context(fresh_database())
        _token, secret = tokens.issue(name="prometheus", scopes=["integration"])
        with gunicorn(run_dir, port=port, workers=WORKERS, env=env) as server:
            say(f"  opening {groups} groups, each notification sent twice at once ...")
            open_s, opened, open_failures = _send_all(port, secret, opening, SENDERS)
            say(f"  the storm: {len(storm):,} notifications of {ALERTS_PER_PAYLOAD} alerts ...")
            cpu_before = server_cpu_seconds(server)
            storm_s, answers, failures = _send_all(port, secret, storm, SENDERS)
            cpu = server_cpu_seconds(server) - cpu_before
        failures += open_failures
        sent = len(storm) * ALERTS_PER_PAYLOAD
        rate = sent / storm_s
        new = sum(a["new"] for a in answers)
        repeats = sum(a["repeats"] for a in answers)
        say(
            f"  B5 {sent:,} alerts in {storm_s:.1f} s: {rate:,.0f} alerts/s "
            f"({len(storm) / storm_s:,.0f} notifications/s); {new:,} new, {repeats:,} repeats; "
            f"opening {open_s:.1f} s; {len(failures)} failures"
        )
        for failure in failures[:5]:
            say(f"  B5 failure: {failure}")
        ok, text = _one_incident_per_group_key(groups, fingerprints)
        say(f"  B5 {text}")
        rows.append(
            Row(
                f"B5 alerts/s, {SENDERS} senders, {WORKERS} workers ({sent:,} alerts)",
                round(rate),
                "alerts/s",
                target=f"≥ {RATE_TARGET}",
                met=rate >= RATE_TARGET and not failures,
            )
        )
        rows.append(
            Row(
                "B5 server CPU per alert (gunicorn + its PostgreSQL backends)",
                f"{cpu / sent * 1000:.2f} ms: {2 * sent / cpu:,.0f} alerts/s on 2 idle cores",
            )
        )
        share = new / max(new + repeats, 1)
        rows.append(
            Row(
                "B5 the server's count: new / repeats",
                f"{new:,} / {repeats:,} ({share:.0%} new)"
                + (f", {len(failures)} failed requests" if failures else ""),
            )
        )
        rows.append(Row("B5 exactly one incident per group key", text, target="yes", met=ok))
        if os.environ.get("BENCH_PROFILE") or (rate < RATE_TARGET and not quick):
            _profile(secret, storm[: min(200, len(storm))])
    return rows


def _profile(secret, bodies):
    """Profile notifications (mostly repeats by now) in this process: Django's test client on
    the same database."""
    from django.test import Client, override_settings

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    with override_settings(ALLOWED_HOSTS=["*"]), profiled("B5-alert-ingest"):
        for body in bodies:
            client.post(PATH, data=body, content_type="application/json")

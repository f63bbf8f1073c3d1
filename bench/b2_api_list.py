"""B2: the incident list of the REST API at a million incidents (quick: 20,000).

``GET /api/v1/incidents/?state=…&service=…`` (a page of 50, the cursor pagination's first page)
with a read token, through gunicorn (two sync workers, production settings) under wrk, for two
filters: the open work of one service (``state=acknowledged``, a few percent of the rows) and its
history (``state=closed``, most of them). Baseline: a trivial DRF view with the same
authentication, permission and throttle (``bench/urls.py``), on the same server, in alternating
rounds of the same run.

Targets: p99 ≤ 50 ms with one request in flight per worker (2 connections: the list's own
latency; at 16 connections p99 is mostly the queue in front of two workers, reported as context);
≥ 0.5× the baseline's requests/s at 2 and 16 connections; the same number of SQL queries for
pages of 10 and 100 (bench.middleware counts them).
"""

import contextlib
import json
import os
import re
import secrets
import subprocess
import urllib.request
from pathlib import Path

from bench.common import (
    Row,
    analyze,
    flush_redis,
    free_port,
    fresh_database,
    gunicorn,
    profiled,
    say,
    should_profile,
    table_of,
)

P99_TARGET_MS = 50
RATIO_TARGET = 0.5
CONNECTIONS = (2, 16)
SERVICES = 20
BASELINE = "/api/v1/bench/trivial/"  # under /api/v1/: the middleware treats it as the API


def _load(count):
    """``count`` incidents, mostly closed history; each affects one service, every third a
    second one; a read token not bound to an organisation (a sync client)."""
    from django.db import connection
    from django.utils import timezone

    from bench.data import HISTORY_MIX, copy_incidents, make_catalog
    from incidents.models import Incident, IncidentService
    from itsm import tokens

    catalog = make_catalog(services=SERVICES)
    copy_incidents(
        count, catalog=catalog, now=timezone.now(), mix=HISTORY_MIX, desc=f"{count:,} incidents"
    )
    first, n = catalog.services[0].pk, len(catalog.services)
    say("  linking affected services ...")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table_of(IncidentService)} (incident_id, service_id, status) "
            f"SELECT id, {first} + id % {n}, 'partial_outage' FROM {table_of(Incident)} "
            f"UNION ALL SELECT id, {first} + (id + 7) % {n}, 'degraded_performance' "
            f"FROM {table_of(Incident)} WHERE id % 3 = 0"
        )
    analyze(table_of(Incident), table_of(IncidentService))
    _token, secret = tokens.issue(name="bench sync", scopes=["read"])
    return catalog, secret


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url, *, connections, seconds, headers=()):
    """(requests/s, p99 latency in ms, non-2xx count) of wrk against ``url``."""
    argv = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, float(value) * _UNITS[unit], int(bad.group(1)) if bad else 0


def _get(url, secret):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers, json.loads(response.read())


def _queries(base, path, secret):
    """(queries at page_size=10, at 100, rows on the page of 100, server ms at 100)."""
    _get(base + path, secret)  # the token's last-use stamp (once a minute) out of the way
    sep = "&" if "?" in path else "?"
    ten, _ = _get(f"{base}{path}{sep}page_size=10", secret)
    hundred, body = _get(f"{base}{path}{sep}page_size=100", secret)
    return (
        int(ten["X-Bench-Queries"]),
        int(hundred["X-Bench-Queries"]),
        len(body["results"]),
        float(hundred["X-Bench-Server-Ms"]),
    )


def _measure(base, pages, headers, *, seconds, rounds, server):
    """Baseline and pages in alternating rounds at each connection count; medians of rounds,
    and each one's server CPU per request (``server_cpu_seconds``) over all its runs."""
    from bench.b5_alert_ingest import server_cpu_seconds

    def timed(path, connections):
        before = server_cpu_seconds(server)
        rate, p99, bad = wrk(base + path, connections=connections, seconds=seconds, headers=headers)
        return rate, p99, bad, (server_cpu_seconds(server) - before) / max(rate * seconds, 1)

    found = {}
    for connections in CONNECTIONS:
        wrk(base + BASELINE, connections=connections, seconds=1, headers=headers)  # warm up
        runs = {name: [] for name in ["baseline", *pages]}
        for _ in range(rounds):
            runs["baseline"].append(timed(BASELINE, connections))
            for name, path in pages.items():
                runs[name].append(timed(path, connections))
        for name, results in runs.items():
            rates = sorted(r[0] for r in results)
            p99s = sorted(r[1] for r in results)
            bad = sum(r[2] for r in results)
            cpu = sorted(r[3] for r in results)[rounds // 2]
            found[name, connections] = (rates[rounds // 2], p99s[rounds // 2], bad, cpu)
            say(
                f"  B2 {name} c={connections}: {rates[rounds // 2]:,.0f}/s, "
                f"p99 {p99s[rounds // 2]:.1f} ms, {bad} errors, {cpu * 1000:.1f} ms CPU/request"
            )
    return found


def run(quick: bool) -> list[Row]:
    import shutil

    if shutil.which("wrk") is None:
        return [Row("B2", "wrk is not installed (apt-get install wrk)", met=False)]
    count = 20_000 if quick else 1_000_000
    seconds, rounds = (2, 1) if quick else (5, 3)
    run_dir = Path(os.environ["ITSM_VAR_DIR"]) / "b2"
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_COUNT_QUERIES": "1",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ITSM_VAR_DIR": str(run_dir),
        # The throttle stays in the path (its cache read and write per request) without
        # refusing wrk: DRF keeps one timestamp per request of the window, so a one-second
        # window keeps that list as short as production's 600/min does.
        "API_THROTTLE_RATE": "1000000/s",
        "CONN_MAX_AGE": "600",  # one backend per worker for the whole run (and its CPU)
    }
    rows = []
    flush_redis()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(flush_redis)
        cleanup.enter_context(fresh_database())
        say(f"  loading {count:,} incidents ...")
        catalog, secret = _load(count)
        slug = catalog.services[3].slug
        pages = {
            "open work of a service": f"/api/v1/incidents/?state=acknowledged&service={slug}",
            "history of a service": f"/api/v1/incidents/?state=closed&service={slug}",
        }
        headers = [f"Authorization: Bearer {secret}"]
        with gunicorn(run_dir, port=port, workers=2, env=env) as server:
            base = f"http://127.0.0.1:{port}"
            counts = {}
            for name, path in pages.items():
                counts[name] = _queries(base, path, secret)
                q10, q100, shown, ms = counts[name]
                say(f"  B2 {name}: {q10} / {q100} queries, {shown} rows in {ms:.1f} ms at 100")
            measured = _measure(base, pages, headers, seconds=seconds, rounds=rounds, server=server)
        missed = False
        for connections in CONNECTIONS:
            base_rate, base_p99, base_bad, base_cpu = measured["baseline", connections]
            rows.append(
                Row(
                    f"B2 baseline (trivial DRF view), {connections} connections",
                    f"{base_rate:,.0f} req/s, p99 {base_p99:.1f} ms, "
                    f"{base_cpu * 1000:.1f} ms CPU/request"
                    + (f", {base_bad} errors" if base_bad else ""),
                )
            )
            for name in pages:
                rate, p99, bad, cpu = measured[name, connections]
                ratio = rate / base_rate
                latency_counts = connections == CONNECTIONS[0]
                met = ratio >= RATIO_TARGET and not bad
                if latency_counts:
                    met = met and p99 <= P99_TARGET_MS
                missed |= not met
                rows.append(
                    Row(
                        f"B2 {name}, {connections} connections",
                        f"{rate:,.0f} req/s, p99 {p99:.1f} ms, {cpu * 1000:.1f} ms CPU/request "
                        f"({base_cpu / cpu:.2f}× the baseline's requests per CPU second)"
                        + (f", {bad} errors" if bad else ""),
                        baseline=round(base_rate),
                        ratio=ratio,
                        target=(
                            f"p99 ≤ {P99_TARGET_MS} ms, ≥ {RATIO_TARGET}× req/s"
                            if latency_counts
                            else f"≥ {RATIO_TARGET}× req/s"
                        ),
                        met=met,
                    )
                )
        for name, (q10, q100, shown, _ms) in counts.items():
            ok = q10 == q100 and shown > 0
            missed |= not ok
            rows.append(
                Row(
                    f"B2 {name}: queries at 10 / 100 rows",
                    f"{q10} / {q100}" + ("" if shown else " (the page was empty)"),
                    target="equal",
                    met=ok,
                )
            )
        if should_profile(quick, missed=missed):
            _profile(pages, secret)
    return rows


def _profile(pages, secret):
    """Profile the list requests in this process (Django's test client, the same database)."""
    from django.test import Client, override_settings

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    with override_settings(ALLOWED_HOSTS=["*"], ROOT_URLCONF="bench.urls"):
        for path in pages.values():
            client.get(path)
        with profiled("B2-api-list"):
            for _ in range(20):
                for path in [*pages.values(), BASELINE]:
                    client.get(path)

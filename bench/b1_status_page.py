"""B1, B1s, B1p: the public status page under an outage's load.

- B1: ``/`` and ``/api/v2/summary.json`` with 200 public services, 5,000 past incidents and 20
  active, through gunicorn with the production settings, by wrk at 16 and 64 connections;
  baseline: a trivial Django view (``/healthz``) on the same server, in the same run.
- B1s: the same snapshot as files behind nginx; baseline: nginx serving a static file of the
  same size.
- B1p: a public update committed → visible in ``summary.json``, under the B1 load at 64
  connections, with a real Celery worker publishing.

Needs ``wrk`` (Debian's package; CI installs it) and, for B1s, ``nginx``.
"""

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.common import (
    Process,
    Row,
    analyze,
    celery_worker,
    flush_redis,
    free_port,
    fresh_database,
    gunicorn,
    percentile,
    profiled,
    say,
    table_of,
)

GROUPS = 10


def _load(services, past, active):
    """A catalog of ``services`` public services in groups, ``past`` resolved incidents over
    three years and ``active`` open ones, each published with a public update and an impact on
    one service; the status history rebuilt from those impacts."""
    from django.db import connection

    from bench.data import copy_incidents, make_catalog
    from incidents.models import Incident, IncidentService, IncidentUpdate
    from services.models import Service, ServiceDependency, ServiceGroup, ServiceImpact
    from services.workflow import rebuild_status_history

    catalog = make_catalog(services=services)
    groups = ServiceGroup.objects.bulk_create(
        ServiceGroup(name=f"Group {n}", display_order=n) for n in range(GROUPS)
    )
    for n, service in enumerate(catalog.services):
        service.group = groups[n % GROUPS]
    Service.objects.bulk_update(catalog.services, ["group"])
    # A few dependencies (the catalog's chain would make every service depend on all others).
    ServiceDependency.objects.exclude(service_id__in=[s.pk for s in catalog.services[:20]]).delete()

    from django.utils import timezone

    now = timezone.now()
    copy_incidents(past, catalog=catalog, now=now, mix={"closed": 1}, seed=2, desc="past")
    copy_incidents(active, catalog=catalog, now=now, mix={"acknowledged": 1}, seed=3, desc="open")
    first, n = catalog.services[0].pk, len(catalog.services)
    incidents, updates, links, impacts = (
        table_of(Incident),
        table_of(IncidentUpdate),
        table_of(IncidentService),
        table_of(ServiceImpact),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {incidents} SET published_at = opened_at, public_status = CASE WHEN "
            f"state IN ('resolved', 'closed') THEN 'resolved' ELSE 'investigating' END, "
            # Outages of 15 minutes to 8 hours (the shared generator's resolutions take up to
            # five days: fine for SLA clocks, not what a status page shows).
            f"resolved_at = CASE WHEN state IN ('resolved', 'closed') THEN "
            f"opened_at + (15 + id % 465) * interval '1 minute' END"
        )
        cursor.execute(
            f"INSERT INTO {updates} "
            f"(incident_id, created_at, is_public, public_status, body, body_ro) "
            f"SELECT id, opened_at, true, 'investigating', 'We are investigating reports of "
            f"errors; some requests fail.', '' FROM {incidents} UNION ALL "
            f"SELECT id, resolved_at, true, 'resolved', 'This incident has been resolved.', '' "
            f"FROM {incidents} WHERE resolved_at IS NOT NULL"
        )
        cursor.execute(
            f"INSERT INTO {links} (incident_id, service_id, status) "
            f"SELECT id, {first} + id % {n}, 'partial_outage' FROM {incidents}"
        )
        cursor.execute(
            f"INSERT INTO {impacts} (service_id, cause_kind, cause_id, status, valid_from, "
            f"valid_to) SELECT {first} + id % {n}, 'incident', id, CASE WHEN id % 5 = 0 THEN "
            f"'major_outage' ELSE 'partial_outage' END, opened_at, resolved_at FROM {incidents}"
        )
    analyze(incidents, updates, links, impacts)
    rebuild_status_history(now=now)
    return list(Incident.objects.filter(state="acknowledged").order_by("pk")[:1])[0]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url, *, connections, seconds):
    """(requests/s, p99 latency in ms, non-2xx count) of wrk against ``url``."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, float(value) * _UNITS[unit], int(bad.group(1)) if bad else 0


def _measure(base, pages, baseline, *, seconds, prefix, rounds=3):
    """Baseline and pages measured in alternating rounds (a machine's noise falls on both),
    medians of the rounds."""
    rows = []
    for connections in (16, 64):
        wrk(base + baseline, connections=connections, seconds=1)  # warm up
        found = {name: [] for name in ["baseline", *pages]}
        for _ in range(rounds):
            found["baseline"].append(wrk(base + baseline, connections=connections, seconds=seconds))
            for name, path in pages.items():
                found[name].append(wrk(base + path, connections=connections, seconds=seconds))

        def median(name, i, found=found):
            return sorted(r[i] for r in found[name])[rounds // 2]

        base_rate, base_p99 = median("baseline", 0), median("baseline", 1)
        say(f"  {prefix}baseline c={connections}: {base_rate:,.0f}/s p99 {base_p99:.1f} ms")
        for name in pages:
            rate, p99 = median(name, 0), median(name, 1)
            bad = sum(r[2] for r in found[name])
            say(f"  {prefix}{name} c={connections}: {rate:,.0f}/s p99 {p99:.1f} ms, {bad} errors")
            rows.append((name, connections, rate, p99, bad, base_rate, base_p99))
    return rows


def _nginx(folder, run_dir, port):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        return None
    conf = run_dir / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 2;
pid {run_dir}/nginx.pid;
error_log {run_dir}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {run_dir}/nginx-body;
    proxy_temp_path {run_dir}/nginx-proxy;
    fastcgi_temp_path {run_dir}/nginx-fastcgi;
    uwsgi_temp_path {run_dir}/nginx-uwsgi;
    scgi_temp_path {run_dir}/nginx-scgi;
    types {{ text/html html; application/json json; text/css css; image/svg+xml svg; }}
    server {{
        listen 127.0.0.1:{port};
        root {folder};
        index index.html;
        location / {{ try_files $uri $uri/ =404; }}
    }}
}}
"""
    )
    return Process("nginx", [binary, "-c", conf, "-p", run_dir], log_dir=run_dir)


def _visible_after_commit(base, incident, actor, *, samples):
    """Seconds from the commit of a public update to its text in summary.json, ``samples``
    times."""
    from incidents import workflow

    found = []
    for n in range(samples):
        marker = f"Update {n} {secrets.token_hex(4)}"
        workflow.post_update(
            incident, actor=actor, body=marker, is_public=True, public_status="identified"
        )
        committed = time.monotonic()
        while time.monotonic() - committed < 30:
            with urllib.request.urlopen(base + "/api/v2/summary.json", timeout=10) as response:
                if marker.encode() in response.read():
                    break
            time.sleep(0.02)
        found.append(time.monotonic() - committed)
        time.sleep(0.3)
    return found


def run(quick: bool) -> list[Row]:
    from django.utils.timezone import now as timezone_now

    from statuspage.publish import publish

    if shutil.which("wrk") is None:
        return [Row("B1", "wrk is not installed (apt-get install wrk)", met=False)]
    services, past, active = (60, 1_000, 20) if quick else (200, 5_000, 20)
    seconds = 2 if quick else 5
    samples = 5 if quick else 30
    run_dir = Path(os.environ["ITSM_VAR_DIR"]) / "b1"
    run_dir.mkdir(parents=True, exist_ok=True)
    # nginx's workers run as an unprivileged user: they must be able to walk to the folder.
    for part in (run_dir.parent, run_dir):
        part.chmod(0o755)
    folder = run_dir / "public"
    port, static_port = free_port(), free_port()
    env = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ITSM_VAR_DIR": str(run_dir),
        "STATUS_PAGE_DIR": str(folder),
    }
    os.environ["STATUS_PAGE_DIR"] = str(folder)
    rows = []
    flush_redis()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(flush_redis)
        cleanup.enter_context(fresh_database())
        say(f"  loading {services} services, {past:,} past and {active} active incidents ...")
        incident = _load(services, past, active)
        from django.conf import settings

        settings.STATUS_PAGE_DIR = str(folder)
        began = time.monotonic()
        publish(full=True)
        full_s = time.monotonic() - began
        publish()  # renders what the load touched
        from django.contrib.auth.models import User

        from incidents import workflow

        actor = User.objects.get(username="agent0")
        workflow.post_update(
            incident,
            actor=actor,
            body="We are rolling back.",
            is_public=True,
            public_status="identified",
        )
        time.sleep(16)  # past the publisher's margin: only the update counts as changed
        from statuspage.models import PublishState
        from statuspage.publish import plan as publish_plan

        since = PublishState.objects.get().started_at
        work = publish_plan(full=False, since=since, now=timezone_now())
        say(f"  a quick publish renders {len(work.incidents)} incident page(s)")
        began = time.monotonic()
        with profiled("B1-quick-publish", bool(os.environ.get("BENCH_PROFILE"))):
            publish()  # what a public update costs: B1p's work
        quick_s = time.monotonic() - began
        size = len((folder / "index.html").read_bytes())
        say(f"  full publish {full_s:.2f} s, quick publish {quick_s:.2f} s, / is {size:,} bytes")
        rows.append(Row("publish: full / quick", f"{full_s:.2f} s / {quick_s:.2f} s"))

        pages = {"/": "/", "summary.json": "/api/v2/summary.json"}
        with gunicorn(run_dir, port=port, workers=2, env=env):
            base = f"http://127.0.0.1:{port}"
            measured = _measure(base, pages, "/healthz", seconds=seconds, prefix="B1 ")
            for name, c, rate, p99, bad, base_rate, base_p99 in measured:
                ratio, p99_ratio = rate / base_rate, p99 / base_p99
                rows.append(
                    Row(
                        f"B1 {name}, {c} connections",
                        f"{rate:,.0f} req/s ({ratio:.2f}× /healthz {base_rate:,.0f}), "
                        f"p99 {p99:.1f} ms ({p99_ratio:.2f}× {base_p99:.1f})"
                        + (f", {bad} errors" if bad else ""),
                        target="≥ 0.8× req/s, p99 ≤ 1.5×",
                        met=ratio >= 0.8 and p99_ratio <= 1.5 and not bad,
                    )
                )

            # B1p: the worker publishes while wrk keeps / busy at 64 connections.
            with celery_worker(run_dir, concurrency=1, env=env, name="publisher"):
                load = subprocess.Popen(
                    ["wrk", "-t1", "-c64", f"-d{samples * 2 + 30}s", base + "/"],
                    stdout=subprocess.DEVNULL,
                )
                try:
                    delays = _visible_after_commit(base, incident, actor, samples=samples)
                finally:
                    load.terminate()
                    load.wait()
            p99 = percentile(delays, 99)
            rows.append(
                Row(
                    "B1p public update → summary.json",
                    f"p50 {percentile(delays, 50):.2f} s, p99 {p99:.2f} s ({samples} updates)",
                    target="p99 ≤ 2 s",
                    met=p99 <= 2.0,
                )
            )

        nginx = _nginx(folder, run_dir, static_port)
        if nginx is None:
            rows.append(Row("B1s", "nginx is not installed", met=None))
            return rows
        (folder / "same-size.html").write_bytes((folder / "index.html").read_bytes())
        (folder / "same-size.json").write_bytes((folder / "api/v2/summary.json").read_bytes())
        with nginx:
            time.sleep(0.5)
            base = f"http://127.0.0.1:{static_port}"
            for name, path, same in (
                ("/", "/", "/same-size.html"),
                ("summary.json", "/api/v2/summary.json", "/same-size.json"),
            ):
                for c, rate, _p99, bad, base_rate, _b99 in (
                    row[1:]
                    # Five rounds, not three: nginx answers in microseconds, so the two files'
                    # rates differ by a few percent of scheduling noise on two shared cores.
                    for row in _measure(
                        base, {name: path}, same, seconds=seconds, prefix="B1s ", rounds=5
                    )
                ):
                    ratio = rate / base_rate
                    rows.append(
                        Row(
                            f"B1s {name} from files, {c} connections",
                            f"{rate:,.0f} req/s ({ratio:.2f}× the same file {base_rate:,.0f})"
                            + (f", {bad} errors" if bad else ""),
                            target="≥ 0.9×",
                            met=ratio >= 0.9 and not bad,
                        )
                    )
    return rows

"""C6, the admin at a million incidents (quick: 20,000): the incident changelist (default view,
two filters, a search by reference) and one change page, logged in, through gunicorn with the
production settings (DEBUG=0, collected static files). The admin's list of ``auth.Group`` in the
same run is the baseline. The same pages are then read by a desk agent (staff in the seeded
"Service desk agent" group, not a superuser), for whom ``visible_to`` adds its WHERE to every
incident read: their rows show that cost as a ratio to the superuser's.

Server time and SQL queries come from bench.middleware (enabled by bench.settings). Targets per
page: ≤ 300 ms and ≤ 3× the baseline's time; ≤ 15 queries, the same at 10 and 100 rows."""

import contextlib
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from bench.common import (
    ROOT,
    Row,
    analyze,
    flush_redis,
    free_port,
    gunicorn,
    profiled,
    say,
    should_profile,
    table_of,
)

TIME_TARGET_MS = 300
RATIO_TARGET = 3
QUERY_TARGET = 15
PASSWORD = "bench-" + secrets.token_hex(8)
# A desk agent as the seeded group makes one: not a superuser, so every incident read carries
# the visibility rule (``incidents.visibility``).
AGENT_USERNAME = "desk"
AGENT_GROUP = "Service desk agent"


class AdminClient:
    """A logged-in browser, as far as the admin can tell: cookies, CSRF token, redirects."""

    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def login(self, username, password):
        page = self.opener.open(self.base + "/admin/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode(
            {
                "csrfmiddlewaretoken": token,
                "username": username,
                "password": password,
                "next": "/admin/",
            }
        ).encode()
        response = self.opener.open(self.base + "/admin/login/?next=/admin/", data)
        if "/admin/login/" in response.geturl():
            raise RuntimeError("could not log in to the admin")

    def get(self, path, per_page=None):
        request = urllib.request.Request(self.base + path)
        if per_page:
            request.add_header("X-Bench-Per-Page", str(per_page))
        started = time.perf_counter()
        with self.opener.open(request) as response:
            body = response.read()
            client_ms = (time.perf_counter() - started) * 1000
            if response.status != 200 or "/admin/login/" in response.geturl():
                raise RuntimeError(f"GET {path}: {response.status} {response.geturl()}")
            return {
                "server_ms": float(response.headers["X-Bench-Server-Ms"]),
                "queries": int(response.headers["X-Bench-Queries"]),
                "client_ms": client_ms,
                "body": body.decode(errors="replace"),
            }


def _load(count, catalog):
    """``count`` incidents (mostly closed history, a few percent open), each affecting one or
    two services, then one incident worked through the workflow for the change page."""
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.utils import timezone

    from bench.data import HISTORY_MIX, copy_incidents
    from incidents import workflow
    from incidents.models import Incident, IncidentService

    now = timezone.now()
    copy_incidents(count, catalog=catalog, now=now, mix=HISTORY_MIX, desc=f"{count:,} incidents")
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

    actor = catalog.users[0]
    incident = workflow.create_incident(
        actor=actor,
        title="Checkout: payments failing for card customers",
        description="Card payments fail with a timeout at the acquirer.",
        impact=1,
        urgency=2,
        services=catalog.services[:3],
        organization=catalog.organizations[0],
        assignment_group=catalog.groups[0],
    )
    incident = workflow.acknowledge(incident, actor=actor)
    workflow.post_update(incident, actor=actor, body="Looking at the acquirer's status.")
    workflow.post_update(
        incident,
        actor=actor,
        body="Card payments fail for some customers; we are investigating.",
        is_public=True,
        public_status="investigating",
    )
    incident.refresh_from_db()
    workflow.change_priority(
        incident, actor=actor, impact=1, urgency=1, expected_version=incident.version
    )
    User.objects.create_superuser("admin", "admin@desk.example.com", PASSWORD)
    agent = User.objects.create_user(
        AGENT_USERNAME, "desk@desk.example.com", PASSWORD, is_staff=True
    )
    agent.groups.add(Group.objects.get(name=AGENT_GROUP))
    return incident


def _measure(client, pages, middle, quick, repeat, who=""):
    """Median server and client time and the queries of each page, as ``client``."""
    results = {}
    for name, path in pages.items():
        for _ in range(2 if quick else 4):  # workers connected, templates loaded
            client.get(path)
        timed = [client.get(path) for _ in range(repeat)]
        entry = {
            "server_ms": statistics.median(t["server_ms"] for t in timed),
            "client_ms": statistics.median(t["client_ms"] for t in timed),
            "queries": timed[-1]["queries"],
        }
        if "changelist" in name or name.startswith(("filter", "search")):
            ten, hundred = client.get(path, per_page=10), client.get(path, per_page=100)
            entry["q10"], entry["q100"] = ten["queries"], hundred["queries"]
            say(
                f"  {who}{name}: {ten['server_ms']:.0f} ms at 10 rows, "
                f"{hundred['server_ms']:.0f} ms at 100 rows"
            )
        if name == "search by reference" and middle.reference not in timed[-1]["body"]:
            raise RuntimeError(f"the search for {middle.reference} did not find it")
        results[name] = entry
        say(
            f"  {who}{name}: {entry['server_ms']:.0f} ms server, "
            f"{entry['client_ms']:.0f} ms client, {entry['queries']} queries"
        )
    return results


def _collectstatic(env):
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )


def run(quick: bool) -> list[Row]:
    from bench.common import fresh_database
    from bench.data import make_catalog
    from incidents.models import Incident

    count = 20_000 if quick else 1_000_000
    repeat = 3 if quick else 7
    run_dir = Path(os.environ["ITSM_VAR_DIR"]) / "c6"
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_COUNT_QUERIES": "1",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ITSM_VAR_DIR": str(run_dir),
    }
    results = {}
    flush_redis()  # the workflow calls below queue deliveries; nobody consumes them here
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(flush_redis)
        cleanup.enter_context(fresh_database())
        catalog = make_catalog(services=20)
        incident = _load(count, catalog)
        middle = Incident.objects.order_by("pk")[count // 2 : count // 2 + 1].get()
        pages = {
            "auth.Group changelist (baseline)": "/admin/auth/group/",
            "incident changelist, default": "/admin/incidents/incident/",
            "filter: open": "/admin/incidents/incident/?state=open",
            "filter: affected service": (
                f"/admin/incidents/incident/?service={catalog.services[3].pk}"
            ),
            "search by reference": f"/admin/incidents/incident/?q={middle.reference}",
            "change page": f"/admin/incidents/incident/{incident.pk}/change/",
        }
        say("  collecting static files ...")
        _collectstatic(env)
        with gunicorn(run_dir, port=port, workers=2, env=env):
            client = AdminClient(f"http://127.0.0.1:{port}")
            client.login("admin", PASSWORD)
            results = _measure(client, pages, middle, quick, repeat)
            # The same pages for a desk agent (no superuser): ``visible_to`` adds its WHERE.
            agent = AdminClient(f"http://127.0.0.1:{port}")
            agent.login(AGENT_USERNAME, PASSWORD)
            agent_pages = {n: p for n, p in pages.items() if "baseline" not in n}
            as_agent = _measure(agent, agent_pages, middle, quick, repeat, who="desk agent: ")
        base_ms = results["auth.Group changelist (baseline)"]["server_ms"]
        slow = [
            path
            for name, path in pages.items()
            if "baseline" not in name
            and (
                results[name]["server_ms"] > min(TIME_TARGET_MS, RATIO_TARGET * base_ms)
                or results[name]["queries"] > QUERY_TARGET
            )
        ]
        if should_profile(quick, missed=bool(slow)):
            _profile(slow or list(pages.values())[1:])

    baseline = results.pop("auth.Group changelist (baseline)")
    rows = [Row("auth.Group changelist (baseline)", baseline["server_ms"], "ms")]
    for name, entry in results.items():
        ratio = entry["server_ms"] / baseline["server_ms"]
        rows.append(
            Row(
                f"{name}: server time",
                entry["server_ms"],
                "ms",
                baseline=baseline["server_ms"],
                ratio=ratio,
                target=f"≤ {TIME_TARGET_MS} ms, ≤ {RATIO_TARGET}×",
                met=entry["server_ms"] <= TIME_TARGET_MS and ratio <= RATIO_TARGET,
            )
        )
        if "q10" in entry:
            rows.append(
                Row(
                    f"{name}: queries at 10 / 100 rows",
                    f"{entry['q10']} / {entry['q100']}",
                    target=f"≤ {QUERY_TARGET}, equal",
                    met=max(entry["q10"], entry["q100"]) <= QUERY_TARGET
                    and entry["q10"] == entry["q100"],
                )
            )
        else:
            rows.append(
                Row(
                    f"{name}: queries",
                    entry["queries"],
                    target=f"≤ {QUERY_TARGET}",
                    met=entry["queries"] <= QUERY_TARGET,
                )
            )
    for name, entry in as_agent.items():
        mine = results[name]["server_ms"]
        rows.append(
            Row(
                f"desk agent: {name}: server time (baseline: superuser)",
                entry["server_ms"],
                "ms",
                baseline=mine,
                ratio=entry["server_ms"] / mine,
                target=f"≤ {TIME_TARGET_MS} ms",
                met=entry["server_ms"] <= TIME_TARGET_MS,
            )
        )
        queries = f"{entry['q10']} / {entry['q100']}" if "q10" in entry else entry["queries"]
        most = max(entry["q10"], entry["q100"]) if "q10" in entry else entry["queries"]
        rows.append(
            Row(
                f"desk agent: {name}: queries" + (" at 10 / 100 rows" if "q10" in entry else ""),
                queries,
                target=f"≤ {QUERY_TARGET}" + (", equal" if "q10" in entry else ""),
                met=most <= QUERY_TARGET and entry.get("q10") == entry.get("q100"),
            )
        )
    return rows


def _profile(paths):
    """Profile the slow pages in this process with Django's test client (same database and
    code, settings as the bench process has them)."""
    from django.contrib.auth.models import User
    from django.test import Client, override_settings

    client = Client()
    client.force_login(User.objects.get(username="admin"))
    # This process has no collected static files: plain static URLs do for a profile.
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        for path in paths:
            client.get(path)
        with profiled("c6-admin"):
            for path in paths:
                client.get(path)

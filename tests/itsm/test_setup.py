"""``make run`` from a fresh clone: the set-up steps, the web server, and ``run_all``.

A clean copy of the committed tree (``git archive HEAD``) is set up with the embedded defaults
only (SQLite, filesystem broker, no environment), running the Makefile's own ``setup`` recipe
with this virtualenv's python: a second virtualenv would make the test minutes long.
"""

import http.cookiejar
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("clean-checkout")]

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "clean-checkout-pw-7f3a"
# `pip install -e` puts a finder on sys.meta_path that serves this project's packages from the
# original tree, submodules included: a module missing from the copy would still be imported
# from there. Python runs `sitecustomize` after it has set up site-packages, so this one, found
# first on PYTHONPATH, takes that finder out and the copy is all the copy's python sees.
SITECUSTOMIZE = """\
import sys

sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
"""
# Everything that would move the copy off its embedded defaults.
CONFIG_VARIABLES = [
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "EMAIL_URL",
    "SECRET_KEY",
    "DEBUG",
    "SECURE_HTTPS",
    "ALLOWED_HOSTS",
    "STATIC_MANIFEST",
    "CELERY_TASK_ALWAYS_EAGER",
]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A set-up clean copy of the checkout: ``(directory, environment, make's output)``."""
    if not (ROOT / ".git").exists() or not shutil.which("git") or not shutil.which("make"):
        pytest.skip("needs a git checkout, git and make")
    directory = tmp_path_factory.mktemp("clean-checkout")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")

    isolation = tmp_path_factory.mktemp("isolation")
    (isolation / "sitecustomize.py").write_text(SITECUSTOMIZE)

    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(
        PYTHONPATH=str(isolation),
        ITSM_VAR_DIR=str(directory / "var"),
        ITSM_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    # The copy's own packages must be the ones imported, and nothing from the original tree.
    probe = (
        "import importlib.util, sys, services; print(services.__file__); "
        "print(importlib.util.find_spec('services.no_such_module'))"
    )
    where = subprocess.run(
        [sys.executable, "-c", probe], cwd=directory, env=env, capture_output=True, text=True
    )
    assert where.stdout.split() == [str(directory / "services" / "__init__.py"), "None"], where

    # `-o` treats the install stamp as up to date: `setup` runs its own steps only.
    setup = subprocess.run(
        ["make", "setup", f"PY={sys.executable}", "-o", ".venv/.installed"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    return directory, env, setup.stdout + setup.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, timeout=60, process=None, log=None):
    """GET ``url`` until it answers; fail early if ``process`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before {url} answered:\n{_read(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"{url} did not answer in {timeout}s:\n{_read(log)}")


def _read(path):
    return Path(path).read_text(errors="replace") if path else ""


def sign_in(base):
    """Sign in to the admin as ``admin``; returns the page the login redirects to."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(f"{base}/admin/login/") as response:
        assert response.status == 200
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token,
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"}
    )
    with opener.open(request) as response:
        return response.geturl(), response.read().decode(), page


def test_setup_steps_from_a_clean_checkout(checkout):
    directory, env, output = checkout
    assert "Demo data loaded: 14 services" in output
    assert "Created superuser 'admin'" in output
    assert (directory / "var" / "itsm.sqlite3").exists()
    assert (directory / "var" / "static" / "staticfiles.json").exists()

    port = free_port()
    log = directory / "gunicorn.log"
    with open(log, "wb") as out:
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "itsm.wsgi:application"]
            + ["--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(f"{base}/healthz", process=web, log=log) == 200
        assert wait_for(f"{base}/readyz") == 200
        landed, page, login_page = sign_in(base)
        assert landed == f"{base}/admin/", page
        assert "Payments" in page or "Catalog" in page or "Service" in page
        # Static files come from the collected, hashed copies (whitenoise).
        stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]+\.css)"', login_page)
        assert stylesheet, login_page
        with urllib.request.urlopen(base + stylesheet.group(1)) as response:
            assert response.status == 200
    finally:
        web.terminate()
        web.wait(timeout=30)


# Run in the set-up copy: what its broker holds per queue, and its outbox as rows.
QUEUED = """
import json
import django
django.setup()
from django.conf import settings
from itsm.celery import app
with app.connection_for_write() as connection:
    channel = connection.default_channel
    print(json.dumps({
        queue.name: channel.queue_declare(queue.name).message_count
        for queue in settings.CELERY_TASK_QUEUES
    }))
"""
OUTBOX = """
import json
import django
django.setup()
from django.db.models import Count
from notifications.models import Notification, NotificationEvent
print(json.dumps({
    "events": NotificationEvent.objects.count(),
    "unexpanded": NotificationEvent.objects.filter(expanded_at__isnull=True).count(),
    "rows": dict(Notification.objects.values_list("status").annotate(n=Count("id")).order_by()),
    "emails": dict(
        Notification.objects.filter(channel="email")
        .values_list("status").annotate(n=Count("id")).order_by()
    ),
    # A pending row that is not simply due: it says why it waits (a channel that is down).
    "waiting": list(
        Notification.objects.filter(status="pending").values_list("channel", "last_error")
    ),
}))
"""
# The sweep the beat runs, once the leases of the expansions queued before the purge have run
# out (NOTIFY_LEASE_SECONDS), with its tasks run at once (no worker in this test).
SWEEP = """
import datetime as dt
import django
django.setup()
from django.conf import settings
from django.utils import timezone
from notifications.delivery import sweep_outbox
print(sweep_outbox(now=timezone.now() + dt.timedelta(seconds=settings.NOTIFY_LEASE_SECONDS + 1)))
"""


def _run_in(checkout, script, **env):
    directory, base_env, _ = checkout
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=directory,
        env={**base_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_setup_leaves_no_stale_tasks_and_loses_no_outbox_row(checkout):
    """``load_demo`` queues hundreds of tasks for events it discards (history) and a few for the
    demo's live major incident; ``make setup`` purges them all, or the first sweeps wait minutes
    behind them. What the purge drops is only the nudge: the rows are in the database and the
    outbox sweep delivers what is due. Runs right after the set-up (before run_all's workers)."""
    import json

    from tests.live import smtp_server

    assert json.loads(_run_in(checkout, QUEUED)) == {"sweeps": 0, "deliveries": 0}

    before = json.loads(_run_in(checkout, OUTBOX))
    # The demo's history is in the outbox, cancelled, and its live incident is still to tell.
    assert before["rows"].get("cancelled", 0) > 0
    assert before["unexpanded"] + before["rows"].get("pending", 0) > 0, before
    with smtp_server() as sink:
        _run_in(
            checkout,
            SWEEP,
            CELERY_TASK_ALWAYS_EAGER="1",
            EMAIL_URL=f"smtp://127.0.0.1:{sink.port}",
        )
        after = json.loads(_run_in(checkout, OUTBOX))
    assert after["events"] == before["events"] and after["unexpanded"] == 0, (before, after)
    # Every email went (once) or was the history's, cancelled; the demo's webhooks point at
    # hosts that do not resolve (.invalid): they wait for their endpoint, saying so.
    assert set(after["emails"]) == {"sent", "cancelled"}, after
    assert len(sink.messages) == after["emails"]["sent"] - before["emails"].get("sent", 0) > 0
    assert set(after["rows"]) <= {"sent", "cancelled", "pending"}, after
    assert all(
        channel == "webhook" and "waiting for" in error for channel, error in after["waiting"]
    ), after
    assert json.loads(_run_in(checkout, QUEUED)) == {"sweeps": 0, "deliveries": 0}


def _children(pid):
    """Every live descendant of ``pid`` (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def run_all(checkout):
    """Start ``manage.py run_all`` in the clean copy; yields (process, base URL, log path)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the child processes")
    directory, env, _ = checkout
    port = free_port()
    log = directory / f"run_all-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_all", "--port", str(port)],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(f"{base}/healthz", process=process, log=log) == 200
        deadline = time.monotonic() + 60
        while not all(
            mark in _read(log) for mark in ("deliveries@", "sweeps@", "ready.", "beat: Starting")
        ):
            assert time.monotonic() < deadline, _read(log)
            assert process.poll() is None, _read(log)
            time.sleep(0.3)
        yield process, base, log
    finally:
        _kill_everything(process)


def _kill_everything(process):
    """End ``run_all`` and all it started, whatever state a failed test left them in: each
    child leads a process group of its own (gunicorn and its workers, a Celery worker and its
    pool), so killing ``run_all`` alone would orphan them, still serving and consuming."""
    groups = set()
    for pid in _children(process.pid) | {process.pid}:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    if process.poll() is None:
        process.kill()
    process.wait()
    for group in groups - {os.getpgrp()}:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


def _started(log, name):
    return int(re.search(rf"started {name} \(pid (\d+)\)", _read(log)).group(1))


def test_run_all_serves_and_stops_everything_on_ctrl_c(run_all):
    process, base, log = run_all
    assert wait_for(f"{base}/admin/login/") == 200
    children = _children(process.pid)
    # web (gunicorn master + a worker or more), the two celery workers (+ pools), beat.
    assert {_started(log, name) for name in ("web", "worker", "sweeper", "beat")} <= children
    assert len(children) >= 8, children

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, _read(log)

    assert "stopped on SIGINT" in _read(log)
    assert not [pid for pid in children if _alive(pid)], _read(log)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{base}/healthz", timeout=2)


def test_run_all_restarts_a_killed_worker_and_beat_while_the_web_serves(run_all):
    process, base, log = run_all
    worker, beat = _started(log, "worker"), _started(log, "beat")

    os.kill(worker, signal.SIGKILL)
    os.kill(beat, signal.SIGKILL)
    assert wait_for(f"{base}/healthz") == 200  # the web kept serving

    deadline = time.monotonic() + 30
    while len(re.findall(r"started (worker|beat) \(pid", _read(log))) < 4:
        assert time.monotonic() < deadline, _read(log)
        assert process.poll() is None, _read(log)
        time.sleep(0.3)
    assert "worker exited with code -9; restarting it in 1 s" in _read(log)
    assert "beat exited with code -9; restarting it in 1 s" in _read(log)
    assert _started_last(log, "worker") != worker and _alive(_started_last(log, "worker"))
    assert _alive(_started_last(log, "beat"))
    assert wait_for(f"{base}/admin/login/") == 200

    process.send_signal(signal.SIGINT)  # Ctrl-C still stops all, the restarted ones too
    children = _children(process.pid)
    assert process.wait(timeout=60) == 0, _read(log)
    assert not [pid for pid in children if _alive(pid)], _read(log)


def _started_last(log, name):
    return int(re.findall(rf"started {name} \(pid (\d+)\)", _read(log))[-1])


def test_run_all_stops_the_others_when_the_web_dies(run_all):
    process, base, log = run_all
    children = _children(process.pid)

    os.kill(_started(log, "web"), signal.SIGKILL)

    assert process.wait(timeout=60) != 0
    assert "web exited with code -9; stopping the others" in _read(log)
    assert not [pid for pid in children if _alive(pid)], _read(log)


def test_a_failed_test_leaves_no_process_of_run_all_behind(run_all):
    """What the fixture does when a test fails with run_all still up (SIGKILL, no Ctrl-C):
    killing run_all alone left gunicorn and the workers serving and consuming."""
    process, base, log = run_all
    children = _children(process.pid)
    assert len(children) >= 8, children

    _kill_everything(process)

    deadline = time.monotonic() + 10
    while [pid for pid in children if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)  # SIGKILL is delivered at once, the exit a moment later
    assert not [pid for pid in children if _alive(pid)]

"""Real processes and receivers for integration tests: Celery workers, beat and other
subprocesses against the pytest database, and an SMTP sink.

Tests using ``Processes`` need ``transactional_db`` (committed data, so the subprocesses see it)
and PostgreSQL (SQLite's test database lives in memory).
"""

import asyncio
import contextlib
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
from aiosmtpd.controller import Controller
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """An aiosmtpd handler that keeps every message delivered to it, parsed."""

    delay = 0  # seconds per message, to slow a worker down

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.rcpt_tos, message))
        return "250 OK"

    def by_recipient(self):
        out = {}
        with self.lock:
            for rcpts, message in self.messages:
                for rcpt in rcpts:
                    out.setdefault(rcpt, []).append(message)
        return out

    def message_ids(self):
        with self.lock:
            return [m["Message-ID"] for _r, m in self.messages]


@contextlib.contextmanager
def smtp_server():
    """An SMTP server on a free loopback port; ``sink.port`` says which."""
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    try:
        yield sink
    finally:
        controller.stop()


def own_redis_url(worker_id):
    """A Redis database number of this xdist worker's own, so two workers never share a queue.
    The server is the one ``REDIS_URL`` names (127.0.0.1:6379 without it), so two checkouts
    testing at once can each point at a Redis of their own."""
    number = 10 if worker_id == "master" else 11 + int(worker_id.removeprefix("gw"))
    server = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return f"redis://{server.hostname}:{server.port or 6379}/{number}"


def redis_reachable(url):
    try:
        redis.Redis.from_url(url).ping()
        return True
    except redis.ConnectionError:
        return False


class Processes:
    """Subprocesses started by a test, each in its own process group, ended by their id. They
    share the pytest database and send email to ``smtp_port``; ``env`` may be adjusted before
    starting them."""

    def __init__(self, tmp_path, smtp_port):
        self.tmp_path = Path(tmp_path)
        self.running = []
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "itsm.settings",
            "PYTHONPATH": str(ROOT),
            "ITSM_VAR_DIR": str(self.tmp_path / "var"),
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
                f"/{db['NAME']}"
            ),
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
            "NOTIFY_LEASE_SECONDS": "3",
            "NOTIFY_BATCH_SIZE": "50",
            "NOTIFY_BACKOFF_BASE": "1",
            "NOTIFY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "OUTBOX_SWEEP_INTERVAL": "1",
            "SLA_SWEEP_INTERVAL": "3600",
            "CONN_MAX_AGE": "0",
        }
        if db.get("PASSWORD"):
            self.env["PGPASSWORD"] = db["PASSWORD"]

    def broker(self, url):
        self.env["CELERY_BROKER_URL"] = url
        self.env["REDIS_URL"] = url

    def start(self, name, *args):
        log = open(self.tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed in stop)
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log = log
        self.running.append(proc)
        return proc

    def worker(self, name, concurrency=2):
        return self.start(
            name,
            str(BIN / "celery"),
            *("-A", "itsm", "worker", "-l", "info", "-c", str(concurrency)),
            *("-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"),
        )

    def beat(self):
        schedule = str(self.tmp_path / "beat-schedule")
        return self.start(
            "beat", str(BIN / "celery"), "-A", "itsm", "beat", "-l", "info", "-s", schedule
        )

    def kill(self, proc, sig=signal.SIGKILL):
        if proc.poll() is None:
            os.killpg(proc.pid, sig)  # the process and its pool children, nothing else
        proc.wait(timeout=20)
        proc.log.close()

    def stop_all(self):
        for proc in reversed(self.running):
            if proc.poll() is None:
                self.kill(proc)

    def logs(self):
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp_path.glob("*.log")
        )


def wait_for(condition, timeout, what, procs=None):
    """Poll ``condition`` until it returns something truthy; fail naming ``what``, with the
    subprocesses' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    logs = procs.logs() if procs else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")

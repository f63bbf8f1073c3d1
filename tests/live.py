"""Real processes and receivers for integration tests: Celery workers and beat as
subprocesses against the test database and a Redis database of their own, and an SMTP sink.

The test must use ``transactional_db`` (data committed, so the subprocesses see it).
"""

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

import redis
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """An aiosmtpd handler that keeps every message delivered to it, parsed."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
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
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    try:
        yield sink
    finally:
        controller.stop()


def redis_url_for_test():
    """A Redis database number of this test process's own (xdist runs two), flushed."""
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = 10 + int("".join(c for c in worker if c.isdigit()) or 0)
    url = f"{base}/{number}"
    redis.Redis.from_url(url).flushdb()
    return url


def database_url_for_test():
    """The URL of the database pytest-django made, for subprocesses to share."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        raise RuntimeError("live worker tests need PostgreSQL")
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    user = db.get("USER") or "postgres"
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def process_env(**extra):
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "itsm.settings",
            "DATABASE_URL": database_url_for_test(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class CeleryProcesses:
    """Start ``celery worker`` and/or ``celery beat`` subprocesses; stop them all at exit."""

    def __init__(self, tmp_path, **env):
        self.tmp_path = Path(tmp_path)
        self.env = process_env(ITSM_VAR_DIR=self.tmp_path / "var", **env)
        self.procs = []

    def _start(self, name, args):
        log = open(self.tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "itsm", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_file, proc.name = log, name
        self.procs.append(proc)
        return proc

    def worker(self, name="worker", concurrency=1):
        return self._start(
            name,
            [
                "worker",
                "-l",
                "info",
                "-n",
                f"{name}@%h",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
            ],
        )

    def beat(self):
        return self._start(
            "beat", ["beat", "-l", "info", "-s", str(self.tmp_path / "beat-schedule")]
        )

    def kill(self, proc, sig=signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def logs(self):
        return {
            p.name: (self.tmp_path / f"{p.name}.log").read_text(errors="replace")
            for p in self.procs
        }

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(proc)
            proc.log_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_for(condition, timeout=30.0, interval=0.2, message="condition"):
    """Poll ``condition`` until it returns something truthy; fail with ``message``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def smtp_env(sink):
    return {"EMAIL_URL": f"smtp://127.0.0.1:{sink.port}"}


__all__ = [
    "CeleryProcesses",
    "SmtpSink",
    "free_port",
    "process_env",
    "redis_url_for_test",
    "settings",
    "smtp_env",
    "smtp_server",
    "wait_for",
]

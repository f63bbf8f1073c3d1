"""Faults on real parts: a Redis server of the test's own (on its own free port, so it can be
frozen with SIGSTOP and killed without touching anyone else's), real Celery workers and beat
(``tests.live.Processes``), a real SMTP sink and HTTP receiver."""

import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest
import redis

from itsm.celery import app as celery_app
from tests.live import Processes, free_port, wait_for
from tests.notifications.conftest import receiver, smtp  # noqa: F401 (fixtures used here)


class RedisServer:
    """A redis-server subprocess on a free loopback port, in its own process group."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = open(tmp_path / f"redis-{self.port}.log", "w")  # noqa: SIM115 (closed in kill)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxmemory-policy", "noeviction"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(self.answers, 10, f"redis-server on port {self.port}")
        return self

    def answers(self):
        try:
            return redis.Redis(port=self.port, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def freeze(self):
        """SIGSTOP: connections are still accepted by the kernel, nothing is ever answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot die of TERM
                self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def procs(on_postgres, tmp_path, smtp):  # noqa: F811 (the smtp fixture imported above)
    processes = Processes(tmp_path, smtp.port)
    yield processes
    processes.stop_all()


@pytest.fixture
def publish_to(monkeypatch):
    """Point this process's Celery app (what requests publish with) at another broker."""

    def forget_connections():
        # Both pools: an earlier test's publish left a producer pool bound to its broker.
        celery_app.close()
        celery_app.amqp._producer_pool = None

    def use(url):
        forget_connections()
        monkeypatch.setitem(celery_app.conf, "broker_url", url)
        monkeypatch.setitem(celery_app.conf, "broker_write_url", None)

    yield use
    forget_connections()


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started

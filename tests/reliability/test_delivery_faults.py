"""Delivery on a bad day (issue 17), with real Celery workers and beat on Redis, against the
pytest PostgreSQL database, a real SMTP server (or a tarpit, or nothing, on its port) and real
HTTP receivers. Each test is bounded and stops what it started."""

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from notifications.models import ChannelCircuit, Notification, NotificationStatus
from services.models import Channel, Contact, Subscription
from tests.factories import OrganizationFactory, ServiceFactory
from tests.live import ROOT, Processes, SmtpSink, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# --- receivers --------------------------------------------------------------------------------


class SlowReceiver:
    """An HTTP receiver answering 204 after ``delay`` seconds, recording each request."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.requests = []
        self.lock = threading.Lock()
        self.on_request = None  # called with the path once a request is recorded
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests.append((self.path, self.headers["webhook-id"]))
                if receiver.on_request is not None:
                    receiver.on_request(self.path)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self):
        with self.lock:
            return [path for path, _id in self.requests]


@pytest.fixture
def slow_receiver():
    receiver = SlowReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@contextlib.contextmanager
def smtp_on(port):
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextlib.contextmanager
def tarpit(port):
    """Accepts TCP on ``port`` and never says a word (a stalled relay)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    held, stop = [], threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield held
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def mail_port():
    return free_port()


@pytest.fixture
def procs(on_postgres, tmp_path, mail_port, redis_db):
    processes = Processes(tmp_path, mail_port)
    processes.broker(redis_db)
    yield processes
    processes.stop_all()


ENQUEUE = """
import sys
import django
django.setup()
from django.db import transaction
from incidents.models import Incident
from notifications.models import EventKind
from incidents.notify import enqueue_incident_event
incident = Incident.objects.get(pk=int(sys.argv[1]))
with transaction.atomic():
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
print(event.pk)
"""


def publish(procs, service):
    """Publish an incident on ``service`` from another process, as a request would: its event
    commits there and is dispatched on commit to the workers' broker."""
    from incidents.models import Incident

    incident = Incident.objects.create(title="Payments down", public_status="investigating")
    incident.services.add(service)
    out = subprocess.run(
        [sys.executable, "-c", ENQUEUE, str(incident.pk)],
        cwd=ROOT,
        env=procs.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def email_subscribers(n, service):
    org = OrganizationFactory()
    Contact.objects.bulk_create(
        Contact(organization=org, name=f"c{i}", email=f"c{i}@load.test") for i in range(n)
    )
    Subscription.objects.create(organization=org, service=service)


def hooks(receiver, service, n):
    for i in range(n):
        Subscription.objects.create(
            organization=OrganizationFactory(),
            service=service,
            channel=Channel.WEBHOOK,
            webhook_url=receiver.url(f"/hook/{i}"),
        )


def sent(event_id, channel=None):
    rows = Notification.objects.filter(event_id=event_id, status=NotificationStatus.SENT)
    return rows.filter(channel=channel).count() if channel else rows.count()


# --- the tests --------------------------------------------------------------------------------


def test_a_batch_that_outlives_its_lease_is_sent_once(procs, slow_receiver):
    """60 receivers answering in 2.5 s gave 13 duplicates. Here: 12 receivers answering in 1 s
    in one batch, a 3 s lease and a sweep every second, two worker processes."""
    slow_receiver.delay = 1.0
    service = ServiceFactory()
    hooks(slow_receiver, service, 12)
    procs.env["NOTIFY_WEBHOOK_TIMEOUT"] = "3"
    procs.worker("worker", concurrency=2)
    procs.beat()
    event_id = publish(procs, service)
    wait_for(lambda: sent(event_id) == 12, 60, "all 12 webhooks to be sent", procs)
    time.sleep(2)  # a duplicate from a second claim would arrive now
    paths = slow_receiver.paths()
    assert sorted(paths) == sorted(f"/hook/{i}" for i in range(12)), paths


def test_a_stalled_relay_holds_no_worker_and_mail_goes_once_it_recovers(
    procs, slow_receiver, mail_port
):
    """A relay that accepts TCP and never greets: webhooks in the same event arrive at once and
    once; the emails wait for the relay (no attempt used) and all arrive after it recovers."""
    service = ServiceFactory()
    email_subscribers(20, service)
    hooks(slow_receiver, service, 3)
    procs.env["EMAIL_URL"] = f"smtp://127.0.0.1:{mail_port}?timeout=2"
    procs.env["NOTIFY_BACKOFF_MAX"] = "2"
    with tarpit(mail_port) as held:
        procs.worker("worker", concurrency=2)
        procs.beat()
        event_id = publish(procs, service)  # committed and dispatched when this returns
        started = time.monotonic()
        wait_for(lambda: sent(event_id, "webhook") == 3, 20, "the webhooks", procs)
        webhooks_after = time.monotonic() - started
        time.sleep(4)  # the relay stays stalled a while: workers must not pile up on it
        assert held, "the worker never reached the relay"
        assert ChannelCircuit.objects.filter(key="email").exists()
        emails = Notification.objects.filter(event_id=event_id, channel=Channel.EMAIL)
        assert not emails.filter(status=NotificationStatus.FAILED).exists()
        assert max(emails.values_list("attempts", flat=True)) == 0
    print(f"webhooks sent {webhooks_after:.1f} s after the commit, beside a stalled relay")
    assert webhooks_after < 8  # (it was 322 s; a send's deadline here is 2 s)
    with smtp_on(mail_port) as sink:
        wait_for(lambda: sent(event_id, "email") == 20, 40, "the emails after recovery", procs)
        time.sleep(1)
        ids = sink.message_ids()
    assert len(ids) == len(set(ids)) == 20
    assert sorted(slow_receiver.paths()) == ["/hook/0", "/hook/1", "/hook/2"]
    assert not ChannelCircuit.objects.exists()


def test_a_30_minute_relay_outage_loses_nothing(procs, mail_port):
    """The clock scaled 1:600: a 30-minute outage lasts 3 s, the 30 s backoff base is 0.05 s,
    the 1 h cap 6 s, the 48 h retry window 288 s. Before, 6 attempts over 8 to 16 (scaled)
    minutes and the message was failed for good."""
    scale = 600
    service = ServiceFactory()
    email_subscribers(30, service)
    procs.env.update(
        NOTIFY_BACKOFF_BASE=str(30 / scale),
        NOTIFY_BACKOFF_MAX=str(3600 / scale),
        NOTIFY_RETRY_HOURS=str(48 / scale),
        NOTIFY_MAX_ATTEMPTS="6",  # the old default, for the code before the fix
    )
    procs.worker("worker", concurrency=2)
    procs.beat()
    event_id = publish(procs, service)  # the relay is down: nothing listens on its port
    wait_for(
        lambda: Notification.objects.filter(event_id=event_id).count() == 30,
        20,
        "the rows to be written",
        procs,
    )
    time.sleep(30 * 60 / scale)
    emails = Notification.objects.filter(event_id=event_id)
    assert not emails.filter(status=NotificationStatus.FAILED).exists()
    with smtp_on(mail_port) as sink:
        wait_for(lambda: sent(event_id) == 30, 40, "every email after the outage", procs)
        time.sleep(1)
        ids = sink.message_ids()
    assert len(ids) == len(set(ids)) == 30
    assert max(emails.values_list("attempts", flat=True)) == 0


def pool_processes(pid):
    """The live children of the Celery worker ``pid`` (its pool processes), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(stat.parent.name))
    return children


def test_a_message_whose_send_kills_the_worker_fails_and_the_rest_goes_once(procs, slow_receiver):
    """Each POST to /poison kills the pool process sending it (SIGKILL, as a segfault or the
    OOM killer would): its row stays 'sending' until the lease (3 s) runs out and the sweep
    gives it back. Before, it was reclaimed and killed a worker again forever; now it fails
    after three deaths, with the reason, and the rest of its batch arrives once."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the pool processes")
    service = ServiceFactory()
    paths = ["/ok/0", "/ok/1", "/poison", "/ok/2", "/ok/3"]
    for path in paths:
        Subscription.objects.create(
            organization=OrganizationFactory(),
            service=service,
            channel=Channel.WEBHOOK,
            webhook_url=slow_receiver.url(path),
        )
    procs.env["NOTIFY_WEBHOOK_TIMEOUT"] = "1"  # the lease stays at 3 s
    worker = procs.worker("worker", concurrency=1)
    kills = []

    def kill_the_sender(path):
        if path == "/poison":
            for pid in pool_processes(worker.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)

    slow_receiver.on_request = kill_the_sender
    procs.beat()
    event_id = publish(procs, service)
    rows = Notification.objects.filter(event_id=event_id)
    wait_for(
        lambda: rows.count() == 5 and not rows.filter(status__in=["pending", "sending"]).exists(),
        90,
        "every row to be sent or failed",
        procs,
    )
    poison = rows.get(address=slow_receiver.url("/poison"))
    assert (poison.status, poison.last_error) == ("failed", "worker died while sending, 3 times")
    assert set(rows.exclude(pk=poison.pk).values_list("status", flat=True)) == {"sent"}
    time.sleep(2)  # a late duplicate, or a fourth try of the poison, would arrive now
    got = slow_receiver.paths()
    assert sorted(p for p in got if p != "/poison") == ["/ok/0", "/ok/1", "/ok/2", "/ok/3"]
    assert got.count("/poison") == 3 and len(kills) == 3, (got, kills)
    assert worker.poll() is None  # the worker replaced its pool process each time

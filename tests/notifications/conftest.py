"""Real receivers for the notification tests: an SMTP server (aiosmtpd) and an HTTP server on
loopback, each collecting what arrives."""

import asyncio
import email
import email.policy
import http.server
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from incidents.models import Incident
from notifications import delivery, outbox

LOCALE_PO = Path(__file__).resolve().parents[2] / "notifications/locale/ro/LC_MESSAGES/django.po"


def _compile_catalog():
    """The .mo is not committed (make test compiles it); compile ours atomically so the
    Romanian tests run under a bare ``pytest`` too, even with two xdist workers racing."""
    mo = LOCALE_PO.with_suffix(".mo")
    if mo.exists() and mo.stat().st_mtime >= LOCALE_PO.stat().st_mtime:
        return
    fd, tmp = tempfile.mkstemp(dir=mo.parent, suffix=".mo.tmp")
    os.close(fd)
    subprocess.run(["msgfmt", "-o", tmp, str(LOCALE_PO)], check=True)
    os.replace(tmp, mo)


_compile_catalog()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """Collects every message delivered to it, parsed."""

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
        for rcpts, message in self.messages:
            for rcpt in rcpts:
                out.setdefault(rcpt, []).append(message)
        return out

    def message_ids(self):
        return [m["Message-ID"] for _r, m in self.messages]


@pytest.fixture
def smtp(settings):
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    sink.port = settings.EMAIL_PORT
    yield sink
    controller.stop()


class HookReceiver:
    def __init__(self):
        self.requests = []
        self.status = 204
        self.lock = threading.Lock()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver(settings):
    hooks = HookReceiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with hooks.lock:
                hooks.requests.append((self.path, dict(self.headers), body))
            self.send_response(hooks.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hooks.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    yield hooks
    server.shutdown()
    server.server_close()


class Dispatched(list):
    """Delivery dispatches as (event id, copies); ``expansions`` the events expanded."""

    def __init__(self):
        super().__init__()
        self.expansions = []


@pytest.fixture
def dispatched(monkeypatch):
    """Record delivery dispatches instead of publishing them; tests deliver synchronously.
    An expansion dispatched (on commit) runs at once, as an eager worker would."""
    calls = Dispatched()

    def record(event_id, copies=1):
        calls.append((event_id, copies))
        return True

    def expand(event_id):
        calls.expansions.append(event_id)
        outbox.expand_event(event_id)
        return True

    monkeypatch.setattr(delivery, "dispatch_event", record)
    monkeypatch.setattr(delivery, "dispatch_expansion", expand)
    return calls


def make_incident(*services, organization=None, title="Payments are slow", public_status=""):
    incident = Incident.objects.create(
        title=title,
        organization=organization,
        public_status=public_status,
        published_at=timezone.now() if public_status else None,
    )
    for service in services:
        incident.services.add(service)
    return incident


def deliver_all(event):
    """Expand an event (a no-op when that happened already) and deliver its due rows now, as
    workers would."""
    outbox.expand_event(event.pk)
    return delivery.deliver_event(event.pk)

"""Real receivers for the notification tests: an SMTP server (aiosmtpd) and an HTTP server on
loopback, each collecting what arrives."""

import http.server
import threading

import pytest
from django.utils import timezone

from incidents.models import Incident
from notifications import delivery, outbox
from tests.live import smtp_server


@pytest.fixture
def smtp(settings):
    with smtp_server() as sink:
        _use_smtp(settings, sink.port)
        yield sink


def _use_smtp(settings, port):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5


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

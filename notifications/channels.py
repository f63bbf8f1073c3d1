"""Delivery channels, one small class each. A channel is opened once per batch, sends one
notification at a time, and says through the error it raises whether trying again can help.
A chat channel (e.g. through Apprise) is one more class registered in ``CHANNELS``."""

import contextlib
import http.client
import json
import smtplib
import socket
import ssl
import threading
import time

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend
from django.core.mail.message import sanitize_address
from django.utils import timezone
from standardwebhooks import Webhook

from itsm import netguard
from notifications.rendering import UNSUBSCRIBE_PLACEHOLDER, render_email


class DeliveryError(Exception):
    pass


class PermanentError(DeliveryError):
    """Trying again cannot help (bad address, refused target, 404/410)."""


class TransientError(DeliveryError):
    """Trying again later may work for this message (a 5xx, 408/429 from a receiver, a
    recipient the relay defers). Retried with capped backoff for the retry window."""


class ClientError(TransientError):
    """A 4xx other than 404/408/410/429: maybe the receiver is being fixed, so retried, but only
    ``NOTIFY_CLIENT_ERROR_ATTEMPTS`` times."""


class ChannelDown(DeliveryError):
    """The channel itself is out (connection refused or timed out, DNS failure, the relay
    refusing service): not this message's fault. The message waits for the channel without
    using up an attempt, and so do the others for the same target (see ``delivery``)."""


# --- a total deadline per send ---------------------------------------------------------------


class SendDeadline:
    """A total time limit for one send (connect, greeting, request, every byte of the answer).
    Socket timeouts bound each read, not the whole: a peer sending one byte every 0.5 s never
    trips them. A watcher thread shuts the sockets of a send down when its deadline passes,
    which makes the blocked read return at once; ``expired`` then says why it failed."""

    _lock = threading.Lock()
    _active = set()
    _watcher = None
    _local = threading.local()
    TICK = 0.05

    def __init__(self, seconds):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.sockets = []
        self.expired = False

    @classmethod
    def current(cls):
        return getattr(cls._local, "deadline", None)

    def add(self, sock):
        if sock is None:
            return
        with self._lock:
            self.sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def __enter__(self):
        with self._lock:
            self._active.add(self)
            if SendDeadline._watcher is None or not SendDeadline._watcher.is_alive():
                SendDeadline._watcher = threading.Thread(
                    target=SendDeadline._watch, name="itsm-send-deadline", daemon=True
                )
                SendDeadline._watcher.start()
        self._local.deadline = self
        return self

    def __exit__(self, *exc):
        self._local.deadline = None
        with self._lock:
            self._active.discard(self)

    def remaining(self):
        return max(self.expires - time.monotonic(), 0.001)

    @classmethod
    def _watch(cls):
        while True:
            time.sleep(cls.TICK)
            now = time.monotonic()
            with cls._lock:
                due = [d for d in cls._active if not d.expired and d.expires <= now]
                for deadline in due:
                    deadline.expired = True
                sockets = [sock for deadline in due for sock in deadline.sockets]
            for sock in sockets:
                _shutdown(sock)


def _shutdown(sock):
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched(sock):
    deadline = SendDeadline.current()
    if deadline is not None:
        deadline.add(sock)
    return sock


class BaseChannel:
    name = ""

    def circuit_key(self, notification):
        """What an outage is an outage of: the relay for email, the endpoint for a webhook."""
        return self.name

    def send_timeout(self):
        """The total seconds one send may take (the lease must outlast it)."""
        return 10.0

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self):
        pass

    def close(self):
        pass

    def send(self, notification):
        """Send one notification; raise PermanentError or TransientError on failure."""
        raise NotImplementedError


# --- email -----------------------------------------------------------------------------------


# Stand-ins replaced per recipient in a message prepared once per event and language.
_TO_MARK = b"itsm-recipient-placeholder@invalid.example"
_MESSAGE_ID_MARK = b"<itsm-message-id-placeholder@invalid.example>"


class _WatchedSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        return _watched(super()._get_socket(host, port, timeout))


class _WatchedSMTPSSL(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        return _watched(super()._get_socket(host, port, timeout))


class SMTPBackend(DjangoSMTPBackend):
    """Django's SMTP backend whose sockets a ``SendDeadline`` can cut, with ``EMAIL_TIMEOUT``
    (default 10 s) as the socket timeout. The email channel uses it in place of Django's."""

    def __init__(self, *args, timeout=None, **kwargs):
        if timeout is None:
            timeout = getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_EMAIL_TIMEOUT
        super().__init__(*args, timeout=timeout, **kwargs)

    @property
    def connection_class(self):
        return _WatchedSMTPSSL if self.use_ssl else _WatchedSMTP


DEFAULT_EMAIL_TIMEOUT = 10.0
_DJANGO_SMTP = "django.core.mail.backends.smtp.EmailBackend"

# SMTP replies that mean the relay, not this message, is the problem: 421 "service not
# available", and anything refusing our sender (every message would get the same answer).
_RELAY_DOWN_CODES = {421}


class EmailChannel(BaseChannel):
    """HTML + text email over one SMTP connection per batch, rendered once per event and
    language, with a Message-ID unique to this install and RFC 8058 one-click unsubscribe
    headers. Each send (connect and greeting included) has a total deadline of
    ``EMAIL_TIMEOUT`` seconds."""

    name = "email"

    def __init__(self, connection=None):
        self.connection = connection
        self._rendered = {}
        self._prepared_bytes = {}
        self._install_id = None

    def send_timeout(self):
        return float(getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_EMAIL_TIMEOUT)

    def open(self):
        # Connecting is left to the first send, under its deadline: a relay that accepts TCP
        # and never greets costs one send's deadline, not a worker.
        if self.connection is None:
            backend = settings.EMAIL_BACKEND
            if backend == _DJANGO_SMTP:
                backend = "notifications.channels.SMTPBackend"
            self.connection = get_connection(backend, fail_silently=False)

    def close(self):
        if self.connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.connection.close()

    def message_id(self, notification):
        if self._install_id is None:
            from notifications.models import install_id

            self._install_id = install_id()
        return notification.message_id_for(self._install_id)

    def _render(self, event, language):
        key = (event.pk, language)
        if key not in self._rendered:
            self._rendered[key] = render_email(event.kind, event.payload, language)
        return self._rendered[key]

    def build_message(self, notification):
        from notifications.unsubscribe import unsubscribe_url

        subject, text, html = self._render(notification.event, notification.language)
        headers = {
            "Message-ID": self.message_id(notification),
            "Auto-Submitted": "auto-generated",
            "Content-Language": notification.language,
        }
        if notification.contact_id:
            url = unsubscribe_url(notification.contact_id)
            text = text.replace(UNSUBSCRIBE_PLACEHOLDER, url)
            html = html.replace(UNSUBSCRIBE_PLACEHOLDER, url)
            headers["List-Unsubscribe"] = f"<{url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message = EmailMultiAlternatives(
            subject,
            text,
            settings.DEFAULT_FROM_EMAIL,
            [notification.address],
            headers=headers,
            connection=self.connection,
        )
        message.attach_alternative(html, "text/html")
        return message

    def _prepared(self, notification):
        """The message as SMTP bytes, built once per (event, language) and completed per
        recipient by replacing placeholders: Django's MIME building is most of an email's cost
        at 100,000 recipients. None when this message cannot take that path (a non-ASCII
        address, a body whose encoding would split a placeholder); it is then built in full."""
        if not notification.address.isascii() or not hasattr(self.connection, "connection"):
            return None
        key = (notification.event_id, notification.language, bool(notification.contact_id))
        if key not in self._prepared_bytes:
            self._prepared_bytes[key] = self._prepare(notification, key[2])
        prepared = self._prepared_bytes[key]
        if prepared is None:
            return None
        raw = prepared.replace(_TO_MARK, notification.address.encode())
        raw = raw.replace(_MESSAGE_ID_MARK, self.message_id(notification).encode())
        if notification.contact_id:
            from notifications.unsubscribe import unsubscribe_url

            raw = raw.replace(
                UNSUBSCRIBE_PLACEHOLDER.encode(), unsubscribe_url(notification.contact_id).encode()
            )
        return raw

    def _prepare(self, notification, with_unsubscribe):
        subject, text, html = self._render(notification.event, notification.language)
        headers = {
            "Message-ID": _MESSAGE_ID_MARK.decode(),
            "Auto-Submitted": "auto-generated",
            "Content-Language": notification.language,
        }
        if with_unsubscribe:
            headers["List-Unsubscribe"] = f"<{UNSUBSCRIBE_PLACEHOLDER}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message = EmailMultiAlternatives(
            subject, text, settings.DEFAULT_FROM_EMAIL, [_TO_MARK.decode()], headers=headers
        )
        message.attach_alternative(html, "text/html")
        raw = message.message().as_bytes(linesep="\r\n")
        unsubscribe_marks = (
            text.count(UNSUBSCRIBE_PLACEHOLDER) + html.count(UNSUBSCRIBE_PLACEHOLDER) + 1
            if with_unsubscribe
            else 0
        )
        intact = (
            raw.count(_TO_MARK) == 1
            and raw.count(_MESSAGE_ID_MARK) == 1
            and raw.count(UNSUBSCRIBE_PLACEHOLDER.encode()) == unsubscribe_marks
        )
        return raw if intact else None

    def send(self, notification):
        raw = self._prepared(notification)
        message = None if raw is not None else self.build_message(notification)
        with SendDeadline(self.send_timeout()) as deadline:
            try:
                self._send(notification, raw, message, deadline)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _msg in exc.recipients.values()]
                error = f"recipient refused: {exc.recipients}"
                if codes and all(500 <= code < 600 for code in codes):
                    raise PermanentError(error) from exc
                if any(code in _RELAY_DOWN_CODES for code in codes):
                    self._reset()
                    raise ChannelDown(error) from exc
                raise TransientError(error) from exc
            except smtplib.SMTPSenderRefused as exc:
                self._reset()
                error = f"SMTP {exc.smtp_code}: sender refused {exc.smtp_error!r}"
                raise ChannelDown(error) from exc
            except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as exc:
                self._reset()
                raise ChannelDown(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
            except smtplib.SMTPResponseException as exc:
                self._reset()
                error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
                if exc.smtp_code in _RELAY_DOWN_CODES:
                    raise ChannelDown(error) from exc
                if 500 <= exc.smtp_code < 600:
                    raise PermanentError(error) from exc
                raise TransientError(error) from exc
            except (smtplib.SMTPException, OSError) as exc:
                self._reset()
                if deadline.expired or "timed out" in str(exc):
                    raise ChannelDown(
                        f"SMTP: no answer within {deadline.seconds:g} s (EMAIL_TIMEOUT)"
                    ) from exc
                raise ChannelDown(f"SMTP: {exc!r}") from exc

    def _send(self, notification, raw, message, deadline):
        smtp = getattr(self.connection, "connection", False)
        if smtp is None:
            # Not connected (first send of the batch, or after a reset): open here, under this
            # send's deadline, or send_messages would open and close one per message.
            self.connection.open()
        elif smtp:
            deadline.add(smtp.sock)
        if raw is not None:
            self.connection.connection.sendmail(
                sanitize_address(settings.DEFAULT_FROM_EMAIL, "utf-8"),
                [notification.address],
                raw,
            )
            return
        if not self.connection.send_messages([message]):
            raise TransientError("the mail backend accepted nothing")

    def _reset(self):
        """Drop a connection in an unknown state; the next send opens a fresh one."""
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.connection.close()
        if hasattr(self.connection, "connection"):
            self.connection.connection = None


# --- webhook ---------------------------------------------------------------------------------


def check_address(ip):
    """Raise PermanentError when a webhook must not reach ``ip`` (SSRF guard)."""
    try:
        netguard.check_address(ip)
    except netguard.RefusedTarget as exc:
        raise PermanentError(str(exc)) from exc


def resolve_target(url):
    """(scheme, host, port, path, ip) for ``url``, the address checked by the SSRF guard. The
    request then goes to that very address, so a DNS answer cannot change between check and
    connect (rebinding)."""
    try:
        scheme, host, port, path = netguard.split_url(url)
        addresses = netguard.resolve_checked(host, port)
    except netguard.UnresolvableTarget as exc:
        raise ChannelDown(str(exc)) from exc
    except netguard.RefusedTarget as exc:
        raise PermanentError(str(exc)) from exc
    return scheme, host, port, path, addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self):
        self.sock = _watched(socket.create_connection((self._ip, self.port), self.timeout))


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self):
        sock = _watched(socket.create_connection((self._ip, self.port), self.timeout))
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def webhook_body(event):
    """The JSON body for an event: the same bytes on every resend."""
    return json.dumps(
        {
            "type": event.kind,
            "event_id": event.pk,
            "created_at": event.created_at.isoformat(),
            "data": event.payload,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def integrator_body(event):
    """The JSON body for an integrator's endpoint: the event's payload (``type``,
    ``timestamp``, ``data``), the same bytes on every resend."""
    return json.dumps(event.payload, sort_keys=True, separators=(",", ":"))


class WebhookChannel(BaseChannel):
    """A JSON POST signed with its endpoint's secret following Standard Webhooks, within a
    total deadline of ``NOTIFY_WEBHOOK_TIMEOUT`` seconds."""

    name = "webhook"

    def __init__(self):
        self._bodies = {}
        self._secrets = {}
        self._install_id = None

    def circuit_key(self, notification):
        try:
            _scheme, host, port, _path = netguard.split_url(notification.address)
        except netguard.RefusedTarget:
            return f"webhook:{notification.address}"
        return f"webhook:{host}:{port}"

    def send_timeout(self):
        return float(getattr(settings, "NOTIFY_WEBHOOK_TIMEOUT", 10.0))

    def _install(self):
        """The install id, read once per batch (it is part of every webhook-id)."""
        if self._install_id is None:
            from notifications.models import install_id

            self._install_id = install_id()
        return self._install_id

    def _secret(self, notification):
        """The endpoint's secret: one per URL, whichever subscription or incident led here."""
        from services.models import Subscription

        url = notification.address
        if url not in self._secrets:
            self._secrets[url] = Subscription.endpoint_secret(url)
        return self._secrets[url]

    def _signed_as(self, notification):
        """(secret, body) of a row: an integrator's endpoint signs with its own secret and
        sends the event's ``{"type", "timestamp", "data"}``; a status-page subscription signs
        with its URL's secret and sends ``webhook_body``."""
        event = notification.event
        if notification.endpoint_id is not None:
            endpoint = notification.endpoint
            secret = endpoint.secret if endpoint is not None else ""
            make_body = integrator_body
        else:
            subscription = notification.subscription
            secret = self._secret(notification) if subscription is not None else ""
            make_body = webhook_body
        if not secret:
            raise PermanentError("no webhook subscription or signing secret")
        key = (event.pk, make_body)
        if key not in self._bodies:
            self._bodies[key] = make_body(event)
        return secret, self._bodies[key]

    def send(self, notification):
        secret, body = self._signed_as(notification)
        msg_id = notification.webhook_id_for(self._install())
        timeout = self.send_timeout()
        with SendDeadline(timeout) as deadline:
            scheme, host, port, path, ip = resolve_target(notification.address)
            now = timezone.now()
            signature = Webhook(secret).sign(msg_id, now, body)
            conn_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
            conn = conn_class(host, port, ip, deadline.remaining())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "itsm-webhooks/1",
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature,
            }
            try:
                conn.request("POST", path, body=body.encode(), headers=headers)
                response = conn.getresponse()
                status = response.status
                detail = response.read(500).decode(errors="replace")
            except (ConnectionRefusedError, socket.gaierror) as exc:
                raise ChannelDown(f"POST {notification.address}: {exc!r}") from exc
            except (OSError, http.client.HTTPException) as exc:
                if conn.sock is None:  # never connected: the endpoint is down or unreachable
                    raise ChannelDown(f"POST {notification.address}: {exc!r}") from exc
                if deadline.expired:
                    error = f"POST {notification.address}: no full answer within {timeout:g} s"
                    raise TransientError(error) from exc
                raise TransientError(f"POST {notification.address}: {exc!r}") from exc
            finally:
                conn.close()
        if 200 <= status < 300:
            return
        error = f"HTTP {status} from {notification.address}: {detail[:200]}"
        if status in (408, 429) or status >= 500:
            raise TransientError(error)
        if status in (404, 410) or status < 400:
            # Gone, or a redirect (not followed: it could point anywhere).
            raise PermanentError(error)
        raise ClientError(error)


CHANNELS = {cls.name: cls for cls in (EmailChannel, WebhookChannel)}


def get_channel(name):
    try:
        return CHANNELS[name]()
    except KeyError:
        raise PermanentError(f"unknown channel {name!r}") from None

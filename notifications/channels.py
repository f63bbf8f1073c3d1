"""Delivery channels, one small class each. A channel is opened once per batch, sends one
notification at a time, and says through the error it raises whether trying again can help.
A chat channel (e.g. through Apprise) is one more class registered in ``CHANNELS``."""

import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
import urllib.parse

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import sanitize_address
from django.utils import timezone
from standardwebhooks import Webhook

from notifications.rendering import UNSUBSCRIBE_PLACEHOLDER, render_email


class DeliveryError(Exception):
    pass


class PermanentError(DeliveryError):
    """Trying again cannot help (bad address, refused target, 4xx)."""


class TransientError(DeliveryError):
    """Trying again later may work (timeout, 5xx, connection lost)."""


class BaseChannel:
    name = ""

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


class EmailChannel(BaseChannel):
    """HTML + text email over one SMTP connection per batch, rendered once per event and
    language, with a deterministic Message-ID and RFC 8058 one-click unsubscribe headers."""

    name = "email"

    def __init__(self, connection=None):
        self.connection = connection
        self._rendered = {}
        self._prepared_bytes = {}

    def open(self):
        if self.connection is None:
            self.connection = get_connection(fail_silently=False)
        try:
            self.connection.open()
        except (smtplib.SMTPException, OSError):
            # Not fatal here: each send retries the connection and reports a TransientError.
            self.connection.close()

    def close(self):
        if self.connection is not None:
            self.connection.close()

    def _render(self, event, language):
        key = (event.pk, language)
        if key not in self._rendered:
            self._rendered[key] = render_email(event.kind, event.payload, language)
        return self._rendered[key]

    def build_message(self, notification):
        from notifications.unsubscribe import unsubscribe_url

        subject, text, html = self._render(notification.event, notification.language)
        headers = {"Message-ID": notification.message_id, "Auto-Submitted": "auto-generated"}
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
        raw = raw.replace(_MESSAGE_ID_MARK, notification.message_id.encode())
        if notification.contact_id:
            from notifications.unsubscribe import unsubscribe_url

            raw = raw.replace(
                UNSUBSCRIBE_PLACEHOLDER.encode(), unsubscribe_url(notification.contact_id).encode()
            )
        return raw

    def _prepare(self, notification, with_unsubscribe):
        subject, text, html = self._render(notification.event, notification.language)
        headers = {"Message-ID": _MESSAGE_ID_MARK.decode(), "Auto-Submitted": "auto-generated"}
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
        try:
            if getattr(self.connection, "connection", False) is None:
                # The SMTP backend lost its connection: reopen it here, or send_messages would
                # open and close one per message.
                self.connection.open()
            if raw is not None:
                self.connection.connection.sendmail(
                    sanitize_address(settings.DEFAULT_FROM_EMAIL, "utf-8"),
                    [notification.address],
                    raw,
                )
                return
            sent = self.connection.send_messages([message])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _msg in exc.recipients.values()]
            error = f"recipient refused: {exc.recipients}"
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentError(error) from exc
            raise TransientError(error) from exc
        except smtplib.SMTPResponseException as exc:
            self._reset()
            error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentError(error) from exc
            raise TransientError(error) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._reset()
            raise TransientError(f"SMTP: {exc!r}") from exc
        if not sent:
            raise TransientError("the mail backend accepted nothing")

    def _reset(self):
        """Drop a connection in an unknown state; the next send opens a fresh one."""
        try:
            self.connection.close()
        except (smtplib.SMTPException, OSError):
            self.connection.connection = None


# --- webhook ---------------------------------------------------------------------------------

# Cloud metadata endpoints are refused even if an operator allows their network.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}


def _allowed_networks():
    return [
        ipaddress.ip_network(cidr.strip(), strict=False)
        for cidr in getattr(settings, "NOTIFY_WEBHOOK_ALLOWED_NETWORKS", [])
        if cidr.strip()
    ]


def check_address(ip):
    """Raise PermanentError when a webhook must not reach ``ip`` (SSRF guard)."""
    ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        raise PermanentError(f"refused: {ip} is a cloud metadata address")
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        if any(ip in network for network in _allowed_networks()):
            return
        raise PermanentError(
            f"refused: {ip} is not a public address (allow it in NOTIFY_WEBHOOK_ALLOWED_NETWORKS)"
        )


def resolve_target(url):
    """(scheme, host, port, path, ip) for ``url``, the address checked by the SSRF guard. The
    request then goes to that very address, so a DNS answer cannot change between check and
    connect (rebinding)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"not an http(s) URL: {url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransientError(f"cannot resolve {parts.hostname}: {exc}") from exc
    addresses = [info[4][0] for info in infos]
    for address in addresses:  # every answer must be acceptable, not just the first
        check_address(address)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path, addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self):
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self):
        sock = socket.create_connection((self._ip, self.port), self.timeout)
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


class WebhookChannel(BaseChannel):
    """A JSON POST signed per subscription following Standard Webhooks."""

    name = "webhook"

    def __init__(self):
        self._bodies = {}

    def send(self, notification):
        subscription = notification.subscription
        if subscription is None or not subscription.webhook_secret:
            raise PermanentError("no webhook subscription or signing secret")
        event = notification.event
        if event.pk not in self._bodies:
            self._bodies[event.pk] = webhook_body(event)
        body = self._bodies[event.pk]
        msg_id = notification.webhook_id
        now = timezone.now()
        signature = Webhook(subscription.webhook_secret).sign(msg_id, now, body)
        scheme, host, port, path, ip = resolve_target(notification.address)
        timeout = getattr(settings, "NOTIFY_WEBHOOK_TIMEOUT", 10.0)
        conn_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        conn = conn_class(host, port, ip, timeout)
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
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise TransientError(f"POST {notification.address}: {exc!r}") from exc
        finally:
            conn.close()
        if 200 <= status < 300:
            return
        error = f"HTTP {status} from {notification.address}: {detail[:200]}"
        if status in (408, 429) or status >= 500:
            raise TransientError(error)
        # 3xx (redirects are not followed: they could point anywhere) and other 4xx.
        raise PermanentError(error)


CHANNELS = {cls.name: cls for cls in (EmailChannel, WebhookChannel)}


def get_channel(name):
    try:
        return CHANNELS[name]()
    except KeyError:
        raise PermanentError(f"unknown channel {name!r}") from None

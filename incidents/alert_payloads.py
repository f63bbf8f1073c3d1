"""What monitoring sends, read into plain values: pure functions, no database.

``parse(source, data)`` turns a decoded JSON body into ``AlertIn`` values or raises
``PayloadError`` naming each wrong field by its path (``alerts[1].startsAt``), for the 400 answer
and the kept ``RejectedPayload``. Also here: the rule matchers and the safe title template.

Shapes read:

- Alertmanager webhook version 4: ``{version, groupKey, status, receiver, groupLabels,
  commonLabels, commonAnnotations, externalURL, truncatedAlerts, alerts[]}``, each alert
  ``{status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint}``; ``endsAt`` is
  ``0001-01-01T00:00:00Z`` while firing (read as none).
- Grafana alerting's webhook: the same alert list with ``orgId, state, title, message`` around it
  and ``silenceURL, dashboardURL, panelURL, values`` on each alert.
- PagerDuty Events API v2: ``{routing_key, event_action, dedup_key, payload{summary, source,
  severity, timestamp, component, group, class, custom_details}}``. The alert's labels are
  ``severity, source, component, group, class`` (those given), its annotations ``summary`` and
  ``custom_details`` (as JSON text); its fingerprint the ``dedup_key`` (a new one when a trigger
  has none, as PagerDuty does), its group key ``payload.group`` or else the ``dedup_key``.

A missing fingerprint (an old Alertmanager) is derived from the sorted labels, as Alertmanager
itself derives it: the same labels are the same alert.
"""

import datetime as dt
import functools
import hashlib
import json
import re
import string
import uuid
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

ZERO_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
# Times a monitoring system can mean; beyond them a time is an error (and year 9999 in a zone
# west of UTC would not read back from the database).
EARLIEST, LATEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
MAX_KEY = 255  # a fingerprint or dedup key
MAX_GROUP_KEY = 1000
SEVERITIES = ("critical", "error", "warning", "info")
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass
class AlertIn:
    """One alert of a payload, as the ingest reads it."""

    fingerprint: str
    status: str  # "firing" | "resolved"
    labels: dict
    annotations: dict = field(default_factory=dict)
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    group_key: str = ""
    raw: dict = field(default_factory=dict)
    acknowledge: bool = False  # an Events API "acknowledge"


class PayloadError(ValueError):
    """The payload is malformed: ``errors`` maps a field path to its messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


class _Errors:
    def __init__(self):
        self.found = {}

    def add(self, path, message):
        self.found.setdefault(path, []).append(str(message))

    def raise_if_any(self):
        if self.found:
            raise PayloadError(self.found)


def decode(body):
    """``body`` (bytes) as JSON, or ``PayloadError``. Refuses what PostgreSQL's JSON cannot
    store (NaN, Infinity, NUL characters) and nesting too deep to read, so none of it turns into
    a server error later."""

    def no_constant(name):
        raise ValueError(f"{name} is not JSON")

    try:
        data = json.loads(body, parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError({"non_field_errors": [_("The body is not JSON.")]}) from exc
    if "\\u0000" in json.dumps(data):
        raise PayloadError({"non_field_errors": [_("Text may not contain NUL characters.")]})
    return data


def parse(source, data):
    """The alerts of ``data`` (decoded JSON) sent by ``source``."""
    readers = {"alertmanager": parse_alertmanager, "grafana": parse_grafana, "events": parse_events}
    return readers[source](data)


# --- Alertmanager and Grafana --------------------------------------------------------------------


def parse_alertmanager(data):
    errors = _Errors()
    if not isinstance(data, dict):
        raise PayloadError({"non_field_errors": [_("Expected a JSON object.")]})
    version = data.get("version")
    if version is not None and str(version) != "4":
        errors.add("version", _("Only version 4 of the Alertmanager webhook is understood."))
    return _read_alert_list(data, errors)


def parse_grafana(data):
    errors = _Errors()
    if not isinstance(data, dict):
        raise PayloadError({"non_field_errors": [_("Expected a JSON object.")]})
    return _read_alert_list(data, errors)


def _read_alert_list(data, errors):
    group_key = data.get("groupKey", "")
    if not isinstance(group_key, str):
        errors.add("groupKey", _("Must be a string."))
        group_key = ""
    elif len(group_key) > MAX_GROUP_KEY:
        errors.add("groupKey", _("At most %(n)d characters.") % {"n": MAX_GROUP_KEY})
    status = data.get("status")
    if status is not None and status not in ("firing", "resolved"):
        errors.add("status", _('Must be "firing" or "resolved".'))
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        errors.add("alerts", _("A non-empty list of alerts is required."))
        errors.raise_if_any()
    found = []
    for index, raw in enumerate(alerts):
        alert = _read_alert(raw, f"alerts[{index}]", errors)
        if alert is not None:
            alert.group_key = group_key
            found.append(alert)
    errors.raise_if_any()
    return found


def _read_alert(raw, path, errors):
    if not isinstance(raw, dict):
        errors.add(path, _("Expected a JSON object."))
        return None
    before = len(errors.found)
    status = raw.get("status")
    if status not in ("firing", "resolved"):
        errors.add(f"{path}.status", _('Must be "firing" or "resolved".'))
    labels = _string_map(raw.get("labels"), f"{path}.labels", errors, required=True)
    annotations = _string_map(raw.get("annotations", {}), f"{path}.annotations", errors)
    starts_at = _time(raw.get("startsAt"), f"{path}.startsAt", errors, required=True)
    ends_at = _time(raw.get("endsAt"), f"{path}.endsAt", errors)
    fingerprint = raw.get("fingerprint")
    if fingerprint in (None, ""):
        fingerprint = labels_fingerprint(labels or {})
    elif not isinstance(fingerprint, str) or len(fingerprint) > MAX_KEY:
        errors.add(
            f"{path}.fingerprint", _("A string of at most %(n)d characters.") % {"n": MAX_KEY}
        )
    if len(errors.found) > before:
        return None
    return AlertIn(
        fingerprint=fingerprint,
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        raw=raw,
    )


def labels_fingerprint(labels):
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _string_map(value, path, errors, *, required=False):
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or (required and not value):
        errors.add(
            path,
            _("A non-empty object of strings is required.")
            if required
            else _("An object of strings is required."),
        )
        return None
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    for key in bad:
        errors.add(f"{path}.{key}", _("Must be a string."))
    return None if bad else dict(value)


def _time(value, path, errors, *, required=False):
    """An RFC 3339 time (aware); none for Go's zero time."""
    if value in (None, ""):
        if required:
            errors.add(path, _("This field is required."))
        return None
    parsed = None
    if isinstance(value, str) and "T" in value:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        errors.add(path, _("Not an RFC 3339 time with a zone, e.g. 2024-05-01T10:00:00Z."))
        return None
    if parsed <= ZERO_TIME:
        return None
    if not EARLIEST <= parsed <= LATEST:
        errors.add(path, _("Not a time between 1970 and 9000."))
        return None
    return parsed


# --- PagerDuty Events API v2 ---------------------------------------------------------------------


def parse_events(data):
    errors = _Errors()
    if not isinstance(data, dict):
        raise PayloadError({"non_field_errors": [_("Expected a JSON object.")]})
    routing_key = data.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key.strip():
        errors.add("routing_key", _("This field is required."))
    action = data.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.add("event_action", _('Must be "trigger", "acknowledge" or "resolve".'))
    dedup_key = data.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > MAX_KEY):
        errors.add("dedup_key", _("A string of at most %(n)d characters.") % {"n": MAX_KEY})
    elif not dedup_key and action in ("acknowledge", "resolve"):
        errors.add("dedup_key", _("Required to acknowledge or resolve."))
    payload = data.get("payload")
    labels, annotations, starts_at, group = {}, {}, None, ""
    if action == "trigger" or payload is not None:
        if not isinstance(payload, dict):
            errors.add("payload", _("An object with summary, source and severity is required."))
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.add("payload.summary", _("This field is required."))
            elif len(summary) > 1024:
                errors.add("payload.summary", _("At most 1024 characters."))
            else:
                annotations["summary"] = summary
            for name in ("source", "severity"):
                value = payload.get(name)
                if not isinstance(value, str) or not value.strip():
                    errors.add(f"payload.{name}", _("This field is required."))
            if isinstance(payload.get("severity"), str) and payload["severity"] not in SEVERITIES:
                errors.add("payload.severity", _("One of critical, error, warning, info."))
            for name in ("source", "severity", "component", "group", "class"):
                value = payload.get(name)
                if value is not None and not isinstance(value, str):
                    errors.add(f"payload.{name}", _("Must be a string."))
                elif value:
                    labels[name] = value
            starts_at = _time(payload.get("timestamp"), "payload.timestamp", errors)
            if payload.get("custom_details") is not None:
                annotations["custom_details"] = json.dumps(
                    payload["custom_details"], sort_keys=True
                )[:4000]
            group = labels.get("group", "")
    errors.raise_if_any()
    fingerprint = dedup_key or uuid.uuid4().hex
    return [
        AlertIn(
            fingerprint=fingerprint,
            status="resolved" if action == "resolve" else "firing",
            labels=labels,
            annotations=annotations,
            starts_at=starts_at,
            group_key=(group or fingerprint)[:MAX_GROUP_KEY],
            raw={k: v for k, v in data.items() if k != "routing_key"},  # kept, never the key
            acknowledge=action == "acknowledge",
        )
    ]


# --- rules: matchers and the title template -----------------------------------------------------

_OPERATORS = ("=~", "!~", "!=")


def _split(expected):
    for op in _OPERATORS:
        if expected.startswith(op):
            return op, expected[len(op) :]
    return "=", expected


@functools.lru_cache(maxsize=512)
def _regex(pattern):
    return re.compile(pattern)


def matchers_problem(matchers):
    """Why ``matchers`` cannot be used (a message), or None."""
    if not isinstance(matchers, dict):
        return _('An object of label name to value, e.g. {"severity": "critical"}.')
    for name, expected in matchers.items():
        if not isinstance(expected, str):
            return _("The matcher for %(name)s must be a string.") % {"name": name}
        op, value = _split(expected)
        if op in ("=~", "!~"):
            try:
                _regex(value)
            except re.error as exc:
                return _("The regular expression for %(name)s is not valid: %(error)s") % {
                    "name": name,
                    "error": exc,
                }
    return None


def matches(matchers, labels):
    """Whether every matcher holds for ``labels`` (a missing label reads as empty, as in
    Alertmanager)."""
    for name, expected in matchers.items():
        op, value = _split(expected)
        actual = labels.get(name, "")
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
        if op == "=~" and not _regex(value).fullmatch(actual):
            return False
        if op == "!~" and _regex(value).fullmatch(actual):
            return False
    return True


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def template_problem(template):
    """Why ``template`` cannot be rendered (a message), or None."""
    try:
        list(string.Formatter().parse(template or ""))
    except ValueError as exc:
        return _("The template is not valid: %(error)s") % {"error": exc}
    return None


def render(template, labels, annotations):
    """``template`` with each ``{name}`` replaced by that label (else annotation). Safe for a
    template staff type: a missing name renders empty, and there is no attribute or index
    access, conversion or format spec (``{x.__class__}``, ``{x:>99999}`` render empty or
    plain), unlike ``str.format``."""
    try:
        parts = list(string.Formatter().parse(template or ""))
    except ValueError:
        return ""
    out = []
    for literal, name, _spec, _conversion in parts:
        out.append(literal)
        if name is not None and _NAME.fullmatch(name):
            value = labels.get(name)
            if value is None:
                value = annotations.get(name, "")
            out.append(str(value))
    return "".join(out)


def default_title(alert, source_label):
    """The title of an alert no rule (or an empty template) names: its summary, else its alert
    name, else the integration's name."""
    for text in (
        alert.annotations.get("summary"),
        alert.annotations.get("title"),
        alert.labels.get("alertname"),
    ):
        if text and text.strip():
            return text.strip()
    return _("Alert from %(source)s") % {"source": source_label}

"""Alerts in: monitoring's alerts become incidents, through ``incidents.workflow`` only.

``ingest(source, alerts, actor=…)`` takes the ``AlertIn`` values ``incidents.alert_payloads``
read from a payload and, one alert per transaction:

- A new alert (source, fingerprint) gets its own ``Alert`` row; its rule (the first enabled
  ``AlertRule`` of the integration, by order, whose matchers hold) names the grouping key. The
  group's open incident takes the alert (a work note says so, unless this same payload opened
  the incident); with none, one is opened with ``workflow.create_incident`` (the rule's
  service, impact, urgency and title).
- A repeat of a firing alert whose incident is still open only moves ``last_seen``: no incident,
  no timeline event (Alertmanager resends each repeat interval and retries on errors). The
  repeats of a payload are found and touched together, in one transaction, before the rest.
- A resolved alert writes a work note on its incident; when no alert of the incident is firing
  any more and the rule says ``auto_resolve``, ``workflow.resolve`` resolves it.
- An alert firing again once its incident was resolved or closed (by this or by staff) opens a
  new incident: the group's row is closed and a new one opened.
- No matching rule (the default): no service, impact and urgency 2 (P3), the title the alert's
  summary annotation, else its ``alertname`` label; grouped by the payload's group key (the
  Alertmanager route's ``group_by``; for the Events API ``payload.group``, else the dedup key),
  resolved automatically when all its alerts have.

Distinct fingerprints stay distinct alerts whatever they share (a summary, an alert name):
only the grouping key, never the text, decides which incident they share.

Concurrency: the alert row is found or inserted under its unique (source, fingerprint) and
locked (``SELECT … FOR UPDATE``), so copies of one alert run one after the other and all but the
first are repeats. A new group is an ``AlertGroup`` row under a partial unique constraint (one
open group per key), locked before its incident is opened or looked at, so two different alerts
of one new group open one incident. Locks are always taken alert, then group, then incident (the
workflow's): one transaction per alert never holds two alerts or two groups, so none deadlocks.
"""

import hashlib
import json
import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents import alert_payloads, workflow
from incidents.models import (
    OPEN_STATES,
    Alert,
    AlertGroup,
    AlertRule,
    AlertStatus,
    Grouping,
    Incident,
    IncidentState,
    IntegrationSource,
    ResolutionCode,
)

log = logging.getLogger(__name__)

DEFAULT_IMPACT = DEFAULT_URGENCY = 2


@dataclass
class Outcome:
    """What one payload did, for the endpoint's answer and the tests."""

    new: int = 0
    repeats: int = 0
    refired: int = 0
    resolved: int = 0
    ignored: int = 0
    opened: list = field(default_factory=list)  # ids of incidents opened
    auto_resolved: list = field(default_factory=list)
    fingerprints: list = field(default_factory=list)

    def as_dict(self):
        return {
            "new": self.new,
            "repeats": self.repeats,
            "refired": self.refired,
            "resolved": self.resolved,
            "ignored": self.ignored,
            "incidents_opened": self.opened,
            "incidents_resolved": self.auto_resolved,
        }


def ingest(source, alerts, *, actor, now=None):
    """Apply each alert of a payload; returns an ``Outcome``. ``actor`` is the integration
    (``itsm.actors.Actor.integration``); every incident change is made as it."""
    source = IntegrationSource(source)
    rules = _Rules(source)
    outcome = Outcome()
    now = now or timezone.now()
    repeated = _touch_repeats(source, alerts, now)
    for alert in alerts:
        outcome.fingerprints.append(alert.fingerprint)
        if alert.fingerprint in repeated and _is_firing(alert):
            outcome.repeats += 1
            continue
        with transaction.atomic():
            _apply(source, alert, actor=actor, rules=rules, now=now, out=outcome)
    return outcome


def _is_firing(alert_in):
    return alert_in.status == AlertStatus.FIRING and not alert_in.acknowledge


def _touch_repeats(source, alerts, now):
    """The fingerprints of the payload's firing alerts that are repeats (known, firing, their
    incident open), their ``last_seen`` moved in one transaction of two statements; the rest
    go one by one through ``_apply``. Most of a storm's alerts are repeats: Alertmanager
    resends a group's every alert each repeat interval, so this is the hot path.

    The rows are locked in id order (``ORDER BY … FOR UPDATE``): two payloads sharing alerts
    wait for each other instead of deadlocking, and a repeat waits for a copy of its alert that
    is being inserted or changed, then counts as a repeat only if it still is one. No group or
    incident is locked here, so the module's lock order holds."""
    fingerprints = {a.fingerprint for a in alerts if _is_firing(a)}
    if not fingerprints:
        return set()
    with transaction.atomic():
        found = list(
            Alert.objects.select_for_update(of=("self",))
            .filter(
                source=source,
                fingerprint__in=fingerprints,
                status=AlertStatus.FIRING,
                incident__state__in=OPEN_STATES,
            )
            .order_by("pk")
            .values_list("pk", "fingerprint")
        )
        if found:
            Alert.objects.filter(pk__in=[pk for pk, _fp in found]).update(last_seen=now)
    return {fingerprint for _pk, fingerprint in found}


class _Rules:
    """The integration's enabled rules, read once per payload and only if a new alert needs
    them (a payload of repeats reads none)."""

    def __init__(self, source):
        self.source, self._rules = source, None

    def pick(self, labels):
        if self._rules is None:
            self._rules = list(
                AlertRule.objects.filter(source=self.source, enabled=True)
                .select_related("service")
                .order_by("order", "id")
            )
        for rule in self._rules:
            if isinstance(rule.matchers, dict) and alert_payloads.matches(rule.matchers, labels):
                return rule
        return None


def _apply(source, alert_in, *, actor, rules, now, out):
    if alert_in.acknowledge:
        _acknowledged(source, alert_in, actor=actor, now=now, out=out)
    elif alert_in.status == AlertStatus.FIRING:
        alert, created = _lock_alert(source, alert_in, now)
        _firing(source, alert, created, alert_in, actor=actor, rules=rules, now=now, out=out)
    else:
        alert, created = _lock_alert(source, alert_in, now)
        _resolved(alert, created, alert_in, actor=actor, now=now, out=out)


def _acknowledged(source, alert_in, *, actor, now, out):
    """An Events API "acknowledge": someone took the alert's incident. It never opens one, not
    for an alert never seen nor for one already resolved."""
    alert = _lock_alert(source, alert_in, now, create=False)[0]
    if alert is None or alert.status != AlertStatus.FIRING or not _is_open(alert.incident):
        out.ignored += 1
        return
    Alert.objects.filter(pk=alert.pk).update(last_seen=now)
    out.repeats += 1
    _acknowledge(alert.incident, actor=actor)


def _lock_alert(source, alert_in, now, *, create=True):
    """(the alert row, locked; whether it was just inserted). Copies racing to insert meet on
    the unique constraint: the losers wait for the winner's commit, then lock its row."""
    rows = Alert.objects.select_for_update(of=("self",)).select_related("incident", "rule")
    try:
        return rows.get(source=source, fingerprint=alert_in.fingerprint), False
    except Alert.DoesNotExist:
        if not create:
            return None, False
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                source=source,
                fingerprint=alert_in.fingerprint,
                status=alert_in.status,
                labels=alert_in.labels,
                annotations=alert_in.annotations,
                starts_at=alert_in.starts_at,
                ends_at=alert_in.ends_at,
                first_seen=now,
                last_seen=now,
                payload=alert_in.raw,
            )
        return alert, True
    except IntegrityError:
        return rows.get(source=source, fingerprint=alert_in.fingerprint), False


def _firing(source, alert, created, alert_in, *, actor, rules, now, out):
    if not created and alert.status == AlertStatus.FIRING and _is_open(alert.incident):
        # A repeat: one UPDATE, nothing on the timeline.
        Alert.objects.filter(pk=alert.pk).update(last_seen=now)
        out.repeats += 1
        return
    if created:
        out.new += 1
    else:
        out.refired += 1
    rule = rules.pick(alert_in.labels)
    key = group_key(rule, alert_in)
    group = _lock_group(source, key, rule, now)
    title = incident_title(rule, alert_in, source)
    incident = Incident.objects.filter(pk=group.incident_id).first() if group.incident_id else None
    if not _is_open(incident):
        if incident is not None:  # resolved or closed since: this group is over
            _close_group(group, now)
            group = _lock_group(source, key, rule, now)
        incident = workflow.create_incident(
            actor=actor,
            title=title,
            description=_description(alert_in),
            impact=rule.impact if rule else DEFAULT_IMPACT,
            urgency=rule.urgency if rule else DEFAULT_URGENCY,
            services={rule.service: rule.service_status} if rule and rule.service else {},
            source=source,
            now=now,
        )
        group.incident = incident
        group.save(update_fields=["incident"])
        out.opened.append(incident.pk)
        log.info("alert %s %s opened incident %s", source, alert_in.fingerprint, incident.pk)
    elif incident.pk not in out.opened:
        # A later alert joining the group is news; one of the payload that opened the incident
        # is not (it is listed with the incident's alerts).
        _note(incident, _("Alert firing: %(title)s (%(fp)s).") % _said(title, alert_in), actor)
    alert.status = AlertStatus.FIRING
    alert.labels, alert.annotations = alert_in.labels, alert_in.annotations
    alert.starts_at, alert.ends_at = alert_in.starts_at, None
    alert.last_seen, alert.payload = now, alert_in.raw
    alert.incident, alert.rule, alert.group_key = incident, rule, key
    alert.save()


def _resolved(alert, created, alert_in, *, actor, now, out):
    if created or alert.status == AlertStatus.RESOLVED:
        # Resolved and never seen firing (it fired before we listened), or a resend: keep the
        # record, open nothing.
        if created:
            out.ignored += 1
        else:
            Alert.objects.filter(pk=alert.pk).update(last_seen=now)
            out.repeats += 1
        return
    out.resolved += 1
    alert.status = AlertStatus.RESOLVED
    alert.ends_at = alert_in.ends_at or now
    alert.last_seen, alert.payload = now, alert_in.raw
    alert.save(update_fields=["status", "ends_at", "last_seen", "payload"])
    incident = alert.incident
    if incident is None or incident.state == IncidentState.CLOSED:
        return
    # The group's lock, so that two alerts of one incident resolving at once see each other.
    group = AlertGroup.objects.select_for_update().filter(incident=incident, is_open=True).first()
    title = incident_title(alert.rule, alert_in, alert.source)
    _note(incident, _("Alert resolved: %(title)s (%(fp)s).") % _said(title, alert_in), actor)
    auto_resolve = alert.rule.auto_resolve if alert.rule else True
    still_firing = Alert.objects.filter(incident=incident, status=AlertStatus.FIRING).exists()
    # Without auto_resolve the group stays open with its incident: a person resolves it, and
    # alerts of the group arriving meanwhile still join it.
    if auto_resolve and not still_firing and incident.state in OPEN_STATES:
        try:
            workflow.resolve(
                incident,
                actor=actor,
                code=ResolutionCode.FIXED,
                notes=_("Every alert of this incident has resolved."),
            )
        except workflow.WorkflowError as exc:  # staff resolved it meanwhile, or hid it from us
            log.info("incident %s not resolved by its alerts: %s", incident.pk, exc)
            return
        if group is not None:
            _close_group(group, now)
        out.auto_resolved.append(incident.pk)


def _lock_group(source, key, rule, now):
    """The open group of ``key``, locked; created (and locked, being ours) when there is none."""
    rows = AlertGroup.objects.select_for_update().filter(source=source, key=key, is_open=True)
    group = rows.first()
    if group is not None:
        return group
    try:
        with transaction.atomic():
            return AlertGroup.objects.create(source=source, key=key, rule=rule, opened_at=now)
    except IntegrityError:  # another alert of the group made it first: wait for it, then join
        return rows.get()


def _close_group(group, now):
    group.is_open, group.closed_at = False, now
    group.save(update_fields=["is_open", "closed_at"])


def _is_open(incident):
    return incident is not None and incident.state in OPEN_STATES


def _note(incident, body, actor):
    """A work note on the incident's timeline, unless the integration may no longer see or
    write it (made confidential, closed): the alert row still records what happened."""
    try:
        workflow.post_update(incident, actor=actor, body=body, is_public=False)
    except workflow.WorkflowError as exc:
        log.info("no work note on incident %s: %s", incident.pk, exc)


def _acknowledge(incident, *, actor):
    if incident is not None and incident.state == IncidentState.NEW:
        try:
            workflow.acknowledge(incident, actor=actor)
        except workflow.WorkflowError as exc:
            log.info("incident %s not acknowledged: %s", incident.pk, exc)


def _said(title, alert_in):
    return {"title": title, "fp": alert_in.fingerprint}


# --- rule outcomes: pure ------------------------------------------------------------------------


def group_key(rule, alert_in):
    """The key of the group the alert joins, namespaced by its rule (two rules never share an
    incident by accident): per fingerprint, per the payload's group key, or per the values of
    the rule's ``group_by`` labels."""
    grouping = rule.grouping if rule else Grouping.GROUP_KEY
    prefix = f"r{rule.pk}" if rule else "default"
    if grouping == Grouping.FINGERPRINT:
        key = f"{prefix}:fp:{alert_in.fingerprint}"
    elif grouping == Grouping.LABELS:
        names = rule.group_by if isinstance(rule.group_by, list) else []
        values = {name: alert_in.labels.get(name, "") for name in names if isinstance(name, str)}
        key = f"{prefix}:labels:{json.dumps(values, sort_keys=True, ensure_ascii=False)}"
    else:
        key = f"{prefix}:gk:{alert_in.group_key or alert_in.fingerprint}"
    if len(key) > 1000:  # a very long group key: its digest names the same group
        key = f"{prefix}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def incident_title(rule, alert_in, source):
    label = IntegrationSource(source).label
    title = ""
    if rule is not None and rule.title_template:
        title = alert_payloads.render(rule.title_template, alert_in.labels, alert_in.annotations)
    title = " ".join(title.split()) or alert_payloads.default_title(alert_in, label)
    return title[:200]


def _description(alert_in):
    lines = []
    for name in ("description", "message", "custom_details"):
        text = alert_in.annotations.get(name)
        if text:
            lines += [text, ""]
    lines += [f"{k}={v}" for k, v in sorted(alert_in.labels.items())]
    url = alert_in.raw.get("generatorURL") if isinstance(alert_in.raw, dict) else None
    if isinstance(url, str) and url:
        lines += ["", url]
    return "\n".join(lines)[:10000]

"""Writing the outbox: who hears about what.

Each ``enqueue_*`` function runs inside the caller's transaction. It records one
``NotificationEvent`` (unique by key, so a retried request or two racing sweeps make one event),
writes one ``Notification`` row per recipient and channel in a single ``INSERT ... SELECT`` per
channel (a fan-out to 100,000 contacts is one statement, not a Python loop), and
asks for delivery with ``transaction.on_commit``: nothing is sent before the change is committed,
and if the broker is down then, the outbox sweep delivers later.
"""

import math

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from notifications.models import (
    EmailOptOut,
    EventKind,
    Notification,
    NotificationEvent,
    NotificationStatus,
)
from services.graph import hurt_service_ids
from services.models import Channel, Contact, Organization, Subscription

INCIDENT_KINDS = {
    EventKind.INCIDENT_PUBLISHED,
    EventKind.INCIDENT_UPDATED,
    EventKind.INCIDENT_RESOLVED,
}
MAINTENANCE_KINDS = {
    EventKind.MAINTENANCE_SCHEDULED,
    EventKind.MAINTENANCE_STARTED,
    EventKind.MAINTENANCE_COMPLETED,
}
# Rows per delivery task copy, and the most copies one event gets: a big fan-out is shared by
# the workers there are instead of waiting for one.
ROWS_PER_TASK = 1000
MAX_TASK_COPIES = 8


# --- payloads: computed once per event, all the templates need ------------------------------


def incident_url(incident):
    return f"{settings.SITE_URL}/incidents/{incident.pk}/"


def _service_names(services):
    """Public service names; private ones only when nothing public is affected (their own
    subscribers must read what is hurt, but public subscribers never see internal names)."""
    services = list(services)
    public = [s.name for s in services if s.is_public]
    return public or [s.name for s in services]


def incident_payload(incident, *, kind, body="", public_status=""):
    return {
        "incident_id": incident.pk,
        "reference": incident.reference,
        "title": incident.title,
        "public_status": public_status or incident.public_status or "",
        "body": body,
        "services": _service_names(incident.services.order_by("display_order", "name")),
        "url": incident_url(incident),
        "kind": str(kind),
        "site_url": settings.SITE_URL,
    }


def maintenance_payload(window, *, kind):
    return {
        "maintenance_id": window.pk,
        "title": window.title,
        "description": window.public_description,
        "status": window.status,
        "scheduled_start": window.scheduled_start.isoformat(),
        "scheduled_end": window.scheduled_end.isoformat(),
        "services": _service_names(window.services.order_by("display_order", "name")),
        "url": f"{settings.SITE_URL}/",
        "kind": str(kind),
        "site_url": settings.SITE_URL,
    }


# --- recipients -------------------------------------------------------------------------------


def notified_service_ids(services):
    """The services whose subscribers hear about trouble on ``services``: every public one and
    everything that transitively depends on it, plus the private ones themselves (a private
    service notifies only its own subscribers)."""
    services = list(services)
    public = [s.pk for s in services if s.is_public]
    private = {s.pk for s in services if not s.is_public}
    return hurt_service_ids(public) | private


def _tables():
    return {
        "notification": Notification._meta.db_table,
        "contact": Contact._meta.db_table,
        "organization": Organization._meta.db_table,
        "subscription": Subscription._meta.db_table,
        "optout": EmailOptOut._meta.db_table,
    }


_INSERT_COLUMNS = (
    "event_id, channel, recipient_key, contact_id, subscription_id, address, language, "
    "status, attempts, next_attempt_at, created_at, last_error"
)

# Contacts reached by email: subscribed themselves, through their organisation, or members of
# the reporting organisation; active, in an active organisation, not opted out. ``IN (... UNION
# ...)`` deduplicates a contact reached by several paths before the insert.
#
# No ON CONFLICT: these statements only ever run for an event created in this very transaction
# (a second call with the same key gets the existing event and writes nothing), and each SELECT
# yields a recipient once, so nothing can conflict; speculative insertion would double the cost
# of a 100,000-row fan-out. The unique constraint still guards the table.
_EMAIL_SQL = """
INSERT INTO {notification} ({columns})
SELECT %s, 'email', 'contact:' || c.id, c.id, NULL, c.email, c.language,
       'pending', 0, %s, %s, ''
FROM {contact} c
JOIN {organization} o ON o.id = c.organization_id
WHERE c.is_active AND o.is_active
  AND NOT EXISTS (SELECT 1 FROM {optout} x WHERE x.contact_id = c.id)
  AND c.id IN (
    SELECT s.contact_id FROM {subscription} s
    WHERE s.is_active AND s.channel = 'email' AND s.contact_id IS NOT NULL
      AND s.service_id IN ({services})
    UNION
    SELECT c2.id FROM {contact} c2
    JOIN {subscription} s ON s.organization_id = c2.organization_id
    WHERE s.is_active AND s.channel = 'email' AND s.service_id IN ({services})
    UNION
    SELECT c3.id FROM {contact} c3 WHERE c3.organization_id = %s
  )
"""

# Webhook subscriptions: one POST per URL per event (the lowest subscription id speaks for a
# URL subscribed to several hurt services), owner active.
_WEBHOOK_SQL = """
INSERT INTO {notification} ({columns})
SELECT %s, 'webhook', 'subscription:' || s.id, s.contact_id, s.id, s.webhook_url,
       COALESCE(c.language, 'en'), 'pending', 0, %s, %s, ''
FROM {subscription} s
LEFT JOIN {contact} c ON c.id = s.contact_id
WHERE s.id IN (
    SELECT MIN(s2.id) FROM {subscription} s2
    LEFT JOIN {contact} c2 ON c2.id = s2.contact_id
    JOIN {organization} o2 ON o2.id = COALESCE(s2.organization_id, c2.organization_id)
    WHERE s2.is_active AND s2.channel = 'webhook' AND s2.webhook_url <> ''
      AND s2.service_id IN ({services}) AND o2.is_active
      AND (c2.id IS NULL OR c2.is_active)
    GROUP BY s2.webhook_url
)
"""


def _fan_out(event, service_ids, reporting_organization_id=None):
    """Write the customer rows for ``event``; return how many were written. Two statements
    whatever the number of recipients."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    service_ids = sorted(int(pk) for pk in service_ids)
    written = 0
    with connection.cursor() as cursor:
        # No hurt service: still reach the reporting organisation; ``IN (NULL)`` matches nothing.
        services_sql = ", ".join(["%s"] * len(service_ids)) or "NULL"
        sql = _EMAIL_SQL.format(columns=_INSERT_COLUMNS, services=services_sql, **_tables())
        cursor.execute(
            sql, [event.pk, now, now, *service_ids, *service_ids, reporting_organization_id]
        )
        written += max(cursor.rowcount, 0)
        if service_ids:
            sql = _WEBHOOK_SQL.format(columns=_INSERT_COLUMNS, services=services_sql, **_tables())
            cursor.execute(sql, [event.pk, now, now, *service_ids])
            written += max(cursor.rowcount, 0)
    return written


def _record_event(*, kind, key, payload, incident=None, maintenance=None):
    """The event, or None when this key was recorded already (a duplicate call)."""
    event, created = NotificationEvent.objects.get_or_create(
        key=key,
        defaults={
            "kind": kind,
            "payload": payload,
            "incident": incident,
            "maintenance": maintenance,
        },
    )
    return event if created else None


def _deliver_on_commit(event, rows):
    if rows <= 0:
        return
    from notifications.delivery import dispatch_event

    copies = min(MAX_TASK_COPIES, max(1, math.ceil(rows / ROWS_PER_TASK)))
    transaction.on_commit(lambda: dispatch_event(event.pk, copies=copies))


# --- the API the workflows call ---------------------------------------------------------------


def enqueue_incident_event(*, incident, kind, update=None):
    """Queue the customer notifications for a public incident change.

    Call inside the transaction that makes the change. ``update`` is the public
    ``IncidentUpdate`` that caused it, if any. Returns the new event, or None when this event
    (same incident, kind and update) was queued already. Delivery starts on commit."""
    if kind not in INCIDENT_KINDS:
        raise ValueError(f"not an incident event kind: {kind}")
    key = f"incident:{incident.pk}:{kind}:{update.pk if update else ''}"
    services = list(incident.services.all())
    payload = incident_payload(
        incident,
        kind=kind,
        body=update.body if update else "",
        public_status=(update.public_status if update else "") or incident.public_status,
    )
    event = _record_event(kind=kind, key=key, payload=payload, incident=incident)
    if event is None:
        return None
    rows = _fan_out(event, notified_service_ids(services), incident.organization_id)
    _deliver_on_commit(event, rows)
    return event


def enqueue_maintenance_event(*, window, kind):
    """Queue the customer notifications for a maintenance window being scheduled, started or
    completed: the subscribers of its services and of everything depending on them."""
    if kind not in MAINTENANCE_KINDS:
        raise ValueError(f"not a maintenance event kind: {kind}")
    key = f"maintenance:{window.pk}:{kind}"
    payload = maintenance_payload(window, kind=kind)
    event = _record_event(kind=kind, key=key, payload=payload, maintenance=window)
    if event is None:
        return None
    rows = _fan_out(event, notified_service_ids(window.services.all()))
    _deliver_on_commit(event, rows)
    return event


def _group_addresses(groups):
    """(recipient key, user, address) for each group: the team's own address when it has one,
    else its active members with an email."""
    from django.contrib.auth.models import Group

    out = []
    groups = Group.objects.filter(pk__in=[g.pk for g in groups]).select_related("team")
    for group in groups:
        team_email = getattr(getattr(group, "team", None), "email", "")
        if team_email:
            out.append((f"email:{team_email.lower()}", None, team_email))
            continue
        for user in group.user_set.filter(is_active=True).exclude(email=""):
            out.append((f"user:{user.pk}", user, user.email))
    return out


def notify_staff(*, kind, key, subject, body, users=(), groups=(), emails=(), incident=None):
    """Queue a message to staff (SLA warning or breach, escalation, assignment): to ``users``,
    to each of ``groups`` (its team address, else its members) and to plain ``emails``. One
    message per address. ``key`` names the happening, so calling twice queues it once.
    Returns the new event, or None when ``key`` was queued already."""
    payload = {
        "subject": str(subject),
        "body": str(body),
        "kind": str(kind),
        "site_url": settings.SITE_URL,
    }
    if incident is not None:
        payload.update(
            incident_id=incident.pk,
            reference=incident.reference,
            title=incident.title,
            url=f"{settings.SITE_URL}/admin/incidents/incident/{incident.pk}/change/",
        )
    event = _record_event(kind=kind, key=f"staff:{key}", payload=payload, incident=incident)
    if event is None:
        return None
    recipients = [(f"user:{u.pk}", u, u.email) for u in users if u.email and u.is_active]
    recipients += _group_addresses(groups)
    recipients += [(f"email:{e.strip().lower()}", None, e.strip()) for e in emails if e.strip()]
    seen = set()
    rows = []
    for recipient_key, user, address in recipients:
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        rows.append(
            Notification(
                event=event,
                channel=Channel.EMAIL,
                recipient_key=recipient_key,
                user=user,
                address=address,
                language=settings.LANGUAGE_CODE,
                status=NotificationStatus.PENDING,
            )
        )
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    _deliver_on_commit(event, len(rows))
    return event


__all__ = [
    "enqueue_incident_event",
    "enqueue_maintenance_event",
    "notify_staff",
    "notified_service_ids",
    "incident_payload",
    "maintenance_payload",
]

"""Writing the outbox: who hears about what.

Each ``enqueue_*`` function runs inside the caller's transaction and writes one row: the
``NotificationEvent`` (unique by key, so a retried request or two racing sweeps make one event),
with its ``audience``: the ids of the services whose subscribers hear (the dependency closure,
one recursive query) and the reporting organisation. It commits with the change, so nothing is
lost, and costs the same whether 10 or 100,000 people will hear.

On commit a worker expands the event (``expand_event``): one ``Notification`` row per recipient
and channel, a chunk of contacts at a time (keyset pagination on the contact id, ``INSERT ...
SELECT ... ON CONFLICT DO NOTHING``), each chunk committed and handed to delivery at once, so
sending starts while later chunks are still being written. A re-run, a second expander, or the
outbox sweep finishing the work of a killed worker never writes a row twice.

Staff messages (a handful of addresses) are written inline by ``notify_staff``.

Notifications know no other app's subject: the caller (``incidents.notify``, the catalog's
maintenance announcements through the port in ``services.announcements``) builds the payload
and names the event's subject by kind and id.
"""

import datetime as dt
import hashlib
import json
import math
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from itsm import arrays
from notifications import delivery
from notifications.delivery import MAX_TASK_COPIES, ROWS_PER_TASK
from notifications.models import (
    INCIDENT_KINDS,
    MAINTENANCE_KINDS,
    REQUESTED_KINDS,
    WEBHOOK_KINDS,
    EmailOptOut,
    EventKind,
    Notification,
    NotificationEvent,
    NotificationStatus,
)
from services.graph import hurt_service_ids
from services.models import Channel, Contact, MaintenanceStatus, Organization, Subscription

CUSTOMER_KINDS = INCIDENT_KINDS | MAINTENANCE_KINDS
MAINTENANCE_SUBJECT = "maintenance"
_MAINTENANCE_KIND = {
    MaintenanceStatus.SCHEDULED: EventKind.MAINTENANCE_SCHEDULED,
    MaintenanceStatus.IN_PROGRESS: EventKind.MAINTENANCE_STARTED,
    MaintenanceStatus.COMPLETED: EventKind.MAINTENANCE_COMPLETED,
}
# Contacts per expansion chunk: one INSERT ... SELECT and one commit each. Small enough that the
# first emails leave within a fraction of a second, big enough that 100,000 take 20 statements.
EXPANSION_CHUNK = 5000
# An expansion stops after this long and re-dispatches itself, well inside its time limit.
EXPANSION_TIME_BUDGET_SECONDS = 120


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
    "status, attempts, next_attempt_at, created_at, last_error, waiting_for"
)

# The next chunk of contacts reached by email, in contact id order after the cursor: subscribed
# themselves, through their organisation, or members of the reporting organisation. Each path
# yields its own first ``n`` distinct ids (so the first ``n`` of the union are exactly right),
# which keeps every chunk's cost bounded by the chunk, not by the audience.
_EMAIL_CHUNK_SQL = """
SELECT id FROM (
    SELECT DISTINCT s.contact_id AS id FROM {subscription} s
    WHERE s.is_active AND s.channel = 'email' AND s.contact_id > %s
      AND s.service_id IN ({services})
    ORDER BY s.contact_id LIMIT %s
) direct_subscribers
UNION
SELECT id FROM (
    SELECT c.id FROM {contact} c
    WHERE c.id > %s AND c.organization_id IN (
        SELECT s.organization_id FROM {subscription} s
        WHERE s.is_active AND s.channel = 'email' AND s.organization_id IS NOT NULL
          AND s.service_id IN ({services})
    )
    ORDER BY c.id LIMIT %s
) organization_subscribers
UNION
SELECT id FROM (
    SELECT c.id FROM {contact} c WHERE c.organization_id = %s AND c.id > %s
    ORDER BY c.id LIMIT %s
) reporting_contacts
ORDER BY id LIMIT %s
"""

# One row per mailbox of a chunk that may hear from us: active, in an active organisation (or
# in none: a public subscriber of the status page), not opted out. Keyed by the normalised
# address, so a mailbox that is a contact of two organisations, or appears in two letter cases,
# gets one message (the lowest contact id's).
# ON CONFLICT DO NOTHING: a re-run, a second expander or that second contact writes nothing.
_EMAIL_INSERT_SQL = """
INSERT INTO {notification} ({columns})
SELECT %s, 'email', 'email:' || LOWER(TRIM(c.email)), c.id, NULL, c.email, c.language,
       'pending', 0, %s, %s, '', ''
FROM {contact} c
LEFT JOIN {organization} o ON o.id = c.organization_id
WHERE c.id {in_ids} AND c.is_active AND (c.organization_id IS NULL OR o.is_active)
  AND NOT EXISTS (SELECT 1 FROM {optout} x WHERE x.contact_id = c.id)
ORDER BY c.id
ON CONFLICT DO NOTHING
"""

# Webhook subscriptions: one POST per URL per event (the lowest subscription id speaks for a
# URL subscribed to several hurt services), owner active. Few rows: written with the first chunk.
_WEBHOOK_SQL = """
INSERT INTO {notification} ({columns})
SELECT %s, 'webhook', 'subscription:' || s.id, s.contact_id, s.id, s.webhook_url,
       COALESCE(c.language, 'en'), 'pending', 0, %s, %s, '', ''
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
ON CONFLICT DO NOTHING
"""


def _in_ids(ids):
    """``IN`` over a list of ids as one parameter, whatever its length."""
    if connection.vendor == "postgresql":
        return "= ANY(%s)", list(ids)
    return "IN (SELECT value FROM json_each(%s))", json.dumps(list(ids))


def _expand_chunk(event, after, chunk_size):
    """Write the rows of the next ``chunk_size`` email recipients after contact id ``after``
    (and, with the first chunk, the webhook rows). Returns (last contact id of the chunk or None
    when none is left, rows written, whether the audience is exhausted)."""
    service_ids = sorted(int(pk) for pk in event.audience.get("services", []))
    organization_id = event.audience.get("organization")
    # No hurt service: still reach the reporting organisation; ``IN (NULL)`` matches nothing.
    services_sql = ", ".join(["%s"] * len(service_ids)) or "NULL"
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    written = 0
    with connection.cursor() as cursor:
        if after == 0 and service_ids:
            sql = _WEBHOOK_SQL.format(columns=_INSERT_COLUMNS, services=services_sql, **_tables())
            cursor.execute(sql, [event.pk, now, now, *service_ids])
            written += max(cursor.rowcount, 0)
        sql = _EMAIL_CHUNK_SQL.format(services=services_sql, **_tables())
        cursor.execute(
            sql,
            [
                *(after, *service_ids, chunk_size),
                *(after, *service_ids, chunk_size),
                *(organization_id, after, chunk_size),
                chunk_size,
            ],
        )
        ids = [row[0] for row in cursor.fetchall()]
        if ids:
            in_ids, param = _in_ids(ids)
            sql = _EMAIL_INSERT_SQL.format(columns=_INSERT_COLUMNS, in_ids=in_ids, **_tables())
            cursor.execute(sql, [event.pk, now, now, param])
            written += max(cursor.rowcount, 0)
    return (max(ids) if ids else None), written, len(ids) < chunk_size


def _lease_seconds():
    return getattr(settings, "NOTIFY_LEASE_SECONDS", 120)


def expand_event(
    event_id, *, chunk_size=None, max_chunks=None, time_budget=EXPANSION_TIME_BUDGET_SECONDS
):
    """Write ``event_id``'s per-recipient rows, chunk by chunk, each chunk committed and handed
    to delivery at once; set ``expanded_at`` at the end. Returns how many rows this call wrote.

    Run it outside any transaction (it is a task). Safe to run twice or twice at once: each
    chunk holds the event's row lock, so a second expander goes on after the first one's chunk,
    and rows are unique per (event, recipient, channel) and inserted with ON CONFLICT DO NOTHING
    (a re-run from an older cursor writes nothing twice). ``max_chunks`` stops early (tests use
    it to play a worker killed half-way); the outbox sweep then finishes the expansion once the
    lease has run out."""
    chunk_size = chunk_size or getattr(settings, "NOTIFY_EXPANSION_CHUNK", EXPANSION_CHUNK)
    deadline = time.monotonic() + time_budget
    written = chunks = copies_sent = 0
    while True:
        with transaction.atomic():
            # Locked and re-read for each chunk: a second expander waits for this chunk, then
            # goes on from where it ended instead of redoing it.
            event = (
                NotificationEvent.objects.select_for_update()
                .filter(pk=event_id, expanded_at__isnull=True)
                .first()
            )
            if event is None:
                return written
            last, rows, done = _expand_chunk(event, event.expansion_cursor, chunk_size)
            now = timezone.now()
            progress = {"expansion_cursor": last or event.expansion_cursor}
            if rows:  # delivery is dispatched once this commits: see delivery.sweep_outbox
                progress["delivery_dispatched_at"] = now
            if done:
                progress.update(expanded_at=now, expansion_lease_expires_at=None)
            else:  # still alive: the sweep leaves the event to this worker a while longer
                progress["expansion_lease_expires_at"] = now + dt.timedelta(
                    seconds=_lease_seconds()
                )
            NotificationEvent.objects.filter(pk=event_id).update(**progress)
        written += rows
        chunks += 1
        if rows:
            # The first chunks start up to MAX_TASK_COPIES deliverers; each later chunk adds one,
            # in case the earlier ones caught up and stopped.
            copies = max(1, min(math.ceil(rows / ROWS_PER_TASK), MAX_TASK_COPIES - copies_sent))
            delivery.dispatch_event(event_id, copies=copies)
            copies_sent += copies
        if done or (max_chunks and chunks >= max_chunks):
            return written
        if time.monotonic() > deadline:
            delivery.dispatch_expansion(event_id)
            return written


def _record_event(*, kind, key, payload, audience=None, subject_kind="", subject_id=None):
    """The event, or None when this key was recorded already (a duplicate call). An event with
    nobody to find (staff messages, whose rows are written inline, or an empty audience) is
    expanded from the start."""
    now = timezone.now()
    audience = audience or {}
    defaults = {
        "kind": kind,
        "payload": payload,
        "audience": audience,
        "subject_kind": subject_kind,
        "subject_id": subject_id,
        "created_at": now,
    }
    if audience.get("services") or audience.get("organization"):
        # The expander dispatched on commit holds the event for a lease; after it, the outbox
        # sweep takes over (the broker was down, or the worker died).
        defaults["expansion_lease_expires_at"] = now + dt.timedelta(seconds=_lease_seconds())
    else:
        defaults["expanded_at"] = now
    event = NotificationEvent(key=key, **defaults)
    event.pk = _insert_unless_recorded(event)
    if event.pk is None:
        return None
    event._state.adding, event._state.db = False, connection.alias
    return event


def _insert_unless_recorded(event):
    """INSERT the event unless its key is recorded already: its new id, else None. One
    statement (``ON CONFLICT DO NOTHING RETURNING``) where ``get_or_create`` takes a read, a
    savepoint and an insert; a concurrent duplicate waits for the first one's commit and then
    inserts nothing."""
    fields = [f for f in NotificationEvent._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    params = [f.get_db_prep_save(f.pre_save(event, True), connection) for f in fields]
    table = connection.ops.quote_name(NotificationEvent._meta.db_table)
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))}) "  # noqa: S608
        f"ON CONFLICT ({connection.ops.quote_name('key')}) DO NOTHING RETURNING "
        f"{connection.ops.quote_name(NotificationEvent._meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _expand_on_commit(event):
    transaction.on_commit(lambda: delivery.dispatch_expansion(event.pk))


def _deliver_on_commit(event, rows):
    if rows <= 0:
        return
    copies = min(MAX_TASK_COPIES, max(1, math.ceil(rows / ROWS_PER_TASK)))
    transaction.on_commit(lambda: delivery.dispatch_event(event.pk, copies=copies))


# --- the API the workflows call ---------------------------------------------------------------


def enqueue_customer_event(
    *,
    kind,
    key,
    payload,
    services,
    organization_id=None,
    subject_kind="",
    subject_id=None,
    notified_ids=None,
):
    """Queue the customer notifications for a public change (an incident published, updated or
    resolved, a maintenance scheduled, started or completed): the subscribers of ``services`` and
    of everything depending on them, and the contacts of ``organization_id`` (the reporting
    organisation), if any. ``payload`` is all the templates need; ``key`` names the happening.

    Call inside the transaction that makes the change: the event row commits with it. Returns
    the new event, or None when ``key`` was queued already. Writes the event only, in a constant
    number of queries (one recursive query for the dependency closure, however many
    subscribers, none when the caller read ``notified_service_ids(services)`` already:
    ``notified_ids``); its rows are written by ``expand_event``, started on commit."""
    if kind not in CUSTOMER_KINDS:
        raise ValueError(f"not a customer event kind: {kind}")
    audience = {
        "services": sorted(
            notified_service_ids(services) if notified_ids is None else set(notified_ids)
        ),
        "organization": organization_id,
    }
    event = _record_event(
        kind=kind,
        key=key,
        payload=payload,
        audience=audience,
        subject_kind=subject_kind,
        subject_id=subject_id,
    )
    if event is not None and event.expanded_at is None:
        _expand_on_commit(event)
    return event


def enqueue_maintenance_event(*, window, status, payload, revision=None):
    """The catalog's outbox port (``services.announcements``, registered by
    ``NotificationsConfig.ready()``): queue the customer notifications for ``window`` having
    become ``status``, with the ``payload`` the catalog built. Runs in the caller's
    transaction; None when this announcement was queued already. ``revision`` tells a changed
    schedule or set of services from the first announcement (each is news once)."""
    kind = _MAINTENANCE_KIND[status]
    key = f"maintenance:{window.pk}:{kind}"
    if revision:
        key = f"{key}:{hashlib.sha256(revision.encode()).hexdigest()[:16]}"
    return enqueue_customer_event(
        kind=kind,
        key=key,
        payload={**payload, "kind": str(kind)},
        services=window.services.all(),
        subject_kind=MAINTENANCE_SUBJECT,
        subject_id=window.pk,
    )


def cancel_maintenance_events(window_id):
    """The catalog's port for a deleted maintenance window (``services.announcements``)."""
    return cancel_for_subject(
        MAINTENANCE_SUBJECT,
        window_id,
        reason=f"not sent: maintenance {window_id} was cancelled or deleted",
    )


def discard_unsent(events):
    """Send nothing more for ``events`` (a queryset): mark them expanded, so no row is written
    for them any more, and cancel their rows not yet sent. For loading history (the demo), where
    nobody must be mailed today about what happened weeks ago."""
    now = timezone.now()
    events.filter(expanded_at__isnull=True).update(expanded_at=now, expansion_lease_expires_at=None)
    return Notification.objects.filter(event__in=events, status=NotificationStatus.PENDING).update(
        status=NotificationStatus.CANCELLED, last_error="discarded, not sent"
    )


def cancel_for_subject(kind, subject_id, *, reason):
    """Send nothing more about subject ``(kind, subject_id)``, which was deleted: its events
    are marked cancelled (and expanded: no row is written for them any more) and their rows
    not yet sent are cancelled with ``reason``. Sent rows stay, as the record of what was said.
    A row a worker holds right now is cancelled by the worker (``send_claimed`` reads the
    event before it sends), unless its send has already started.

    Call it in the transaction that deletes the subject (the owner's post_delete receiver):
    the cancellation commits, or rolls back, with the deletion. Returns how many rows were
    cancelled."""
    now = timezone.now()
    events = NotificationEvent.objects.filter(subject_kind=kind, subject_id=subject_id)
    # An expander holding an event's lock finishes its chunk first; its rows are then visible
    # to the UPDATE below (READ COMMITTED reads each statement's own snapshot).
    events.filter(cancelled_at__isnull=True).update(
        cancelled_at=now,
        cancel_reason=str(reason)[:200],
        expanded_at=Coalesce(F("expanded_at"), Value(now)),
        expansion_lease_expires_at=None,
    )
    return Notification.objects.filter(event__in=events, status=NotificationStatus.PENDING).update(
        status=NotificationStatus.CANCELLED,
        lease_expires_at=None,
        waiting_for="",
        last_error=str(reason)[:2000],
    )


def notify_contact(*, kind, key, contact, payload, language=None):
    """Queue one message that ``contact`` has just asked for (a subscription confirmation):
    one row, written here in the caller's transaction and delivered on commit, like a staff
    message, but to a contact, so it carries the one-click unsubscribe. ``key`` names the
    happening (calling twice queues it once). Returns the new event, or None when ``key`` was
    queued already."""
    if kind not in REQUESTED_KINDS:
        raise ValueError(f"not a requested message kind: {kind}")
    event = _record_event(kind=kind, key=f"contact:{key}", payload={**payload, "kind": str(kind)})
    if event is None:
        return None
    NotificationEvent.objects.filter(pk=event.pk).update(delivery_dispatched_at=event.created_at)
    Notification.objects.create(
        event=event,
        channel=Channel.EMAIL,
        recipient_key=f"email:{contact.email.strip().lower()}",
        contact=contact,
        address=contact.email,
        language=language or contact.language,
        status=NotificationStatus.PENDING,
        next_attempt_at=event.created_at,
    )
    _deliver_on_commit(event, 1)
    return event


def enqueue_webhook_event(*, kind, key, data, endpoints, subject_kind="", subject_id=None):
    """Queue one signed POST of event ``kind`` (``incident.created``, ``ping``, ...) to each of
    ``endpoints`` (objects with ``pk`` and ``url``, already chosen by the caller: those that
    want the event and may read its subject). The body is the event's payload, ``{"type",
    "timestamp", "data"}``, the same bytes on every retry.

    Runs in the caller's transaction: the event and its rows (a handful) are written here and
    delivered on commit, with the retries, circuit and SSRF guard of every webhook. ``key``
    names the happening (calling twice queues it once). Returns the event, or None when there
    is no endpoint or ``key`` was queued already."""
    if kind not in WEBHOOK_KINDS:
        raise ValueError(f"not a webhook event kind: {kind}")
    endpoints = list(endpoints)
    if not endpoints:
        return None
    now = timezone.now()
    payload = {"type": str(kind), "timestamp": now.isoformat(), "data": data}
    event = _record_event(
        kind=kind,
        key=f"webhook:{key}",
        payload=payload,
        subject_kind=subject_kind,
        subject_id=subject_id,
    )
    if event is None:
        return None
    NotificationEvent.objects.filter(pk=event.pk).update(delivery_dispatched_at=event.created_at)
    Notification.objects.bulk_create(
        Notification(
            event=event,
            channel=Channel.WEBHOOK,
            recipient_key=f"endpoint:{endpoint.pk}",
            endpoint_id=endpoint.pk,
            address=endpoint.url,
            status=NotificationStatus.PENDING,
            next_attempt_at=event.created_at,
            created_at=event.created_at,
        )
        for endpoint in endpoints
    )
    _deliver_on_commit(event, len(endpoints))
    return event


def _group_addresses(groups):
    """(recipient key, user, address) for each group: the team's own address when it has one,
    else its active members with an email."""
    by_group = _group_addresses_by_group({g.pk for g in groups})
    return [address for g in groups for address in by_group.get(g.pk, ())]


def _group_addresses_by_group(group_ids, *, members_only=False):
    """{group id: [(recipient key, user, address)]} in two queries, however many groups: the
    team's own address when it has one (unless ``members_only``), else its reachable members."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db.models import Prefetch

    if not group_ids:
        return {}
    reachable = Prefetch(
        "user_set",
        queryset=get_user_model().objects.filter(is_active=True).exclude(email="").order_by("pk"),
        to_attr="reachable_members",
    )
    found = {}
    groups = Group.objects.filter(pk__in=group_ids).select_related("team")
    for group in groups.prefetch_related(reachable):
        team_email = getattr(getattr(group, "team", None), "email", "")
        if team_email and not members_only:
            found[group.pk] = [(f"email:{team_email.lower()}", None, team_email)]
        else:
            found[group.pk] = [(f"user:{u.pk}", u, u.email) for u in group.reachable_members]
    return found


@dataclass(frozen=True)
class StaffMessage:
    """One message to staff, as ``notify_staff`` takes it, for ``notify_staff_batch``."""

    kind: str
    key: str
    subject: str
    body: str
    users: tuple = ()
    groups: tuple = ()
    emails: tuple = ()
    details: dict = field(default_factory=dict)
    subject_kind: str = ""
    subject_id: int | None = None
    # Who may read what the message is about (a queryset of users), None: anyone addressed.
    # Given, only those users are mailed: a group member by member (a team mailbox may reach
    # anyone, so it is not used), plain ``emails`` not at all.
    readers: object = None


def notify_staff(
    *,
    kind,
    key,
    subject,
    body,
    users=(),
    groups=(),
    emails=(),
    details=None,
    subject_kind="",
    subject_id=None,
    readers=None,
):
    """Queue a message to staff (SLA warning or breach, escalation, assignment): to ``users``,
    to each of ``groups`` (its team address, else its members) and to plain ``emails``. One
    message per address. ``key`` names the happening, so calling twice queues it once.
    ``details`` adds the caller's own fields to the payload (an incident's reference, title
    and link); ``subject_kind`` and ``subject_id`` name what the event is about.
    Returns the new event, or None when ``key`` was queued already. A handful of rows, so they
    are written here, in the caller's transaction (the event is expanded at once).
    ``readers``: see ``StaffMessage``."""
    message = StaffMessage(
        kind=kind,
        key=key,
        subject=subject,
        body=body,
        users=tuple(users),
        groups=tuple(groups),
        emails=tuple(emails),
        details=details or {},
        subject_kind=subject_kind,
        subject_id=subject_id,
        readers=readers,
    )
    return notify_staff_batch([message])[0]


def notify_staff_batch(messages):
    """``notify_staff`` for many messages in a constant number of statements (the SLA sweep
    raises hundreds at once when an outage opens many incidents). Returns, per message, its new
    event or None when its key was queued already (earlier, or by an earlier message here)."""
    messages = list(messages)
    if not messages:
        return []
    keys = [f"staff:{m.key}" for m in messages]
    taken = set(NotificationEvent.objects.filter(key__in=keys).values_list("key", flat=True))
    now = timezone.now()
    fresh = {}
    for message, key in zip(messages, keys, strict=True):
        if key not in taken and key not in fresh:
            fresh[key] = NotificationEvent(
                kind=message.kind,
                key=key,
                payload={
                    "subject": str(message.subject),
                    "body": str(message.body),
                    "kind": str(message.kind),
                    "site_url": settings.SITE_URL,
                    **message.details,
                },
                subject_kind=message.subject_kind,
                subject_id=message.subject_id,
                created_at=now,
                expanded_at=now,  # the rows are written here: nothing to expand
                delivery_dispatched_at=now,  # on commit (delivery.sweep_outbox)
            )
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # One statement from arrays: bulk_create's per-object work was most of the cost
                # of the sweep's hundreds of messages.
                events, ids = list(fresh.values()), {}
                if events:
                    inserted = arrays.insert(
                        NotificationEvent,
                        {
                            "kind": [e.kind for e in events],
                            "key": [e.key for e in events],
                            "payload": [e.payload for e in events],
                            "subject_kind": [e.subject_kind for e in events],
                            "subject_id": [e.subject_id for e in events],
                        },
                        values={
                            "created_at": now,
                            "expanded_at": now,
                            "delivery_dispatched_at": now,
                        },
                        returning=("id", "key"),
                    )
                    ids = {key: pk for pk, key in inserted}
                for event in events:
                    event.pk = ids[event.key]
                    event._state.adding, event._state.db = False, connection.alias
            else:
                NotificationEvent.objects.bulk_create(fresh.values())
    except IntegrityError:
        # Another transaction queued one of these keys meanwhile: one at a time, each once.
        if len(messages) == 1:
            return [None]
        return [notify_staff_batch([m])[0] for m in messages]
    by_group = _group_addresses_by_group({g.pk for m in messages for g in m.groups})
    # Messages with readers reach groups member by member (two more queries, only for them).
    members_by_group = _group_addresses_by_group(
        {g.pk for m in messages if m.readers is not None for g in m.groups}, members_only=True
    )
    result, rows, counts = [], [], []
    for message, key in zip(messages, keys, strict=True):
        event = fresh.pop(key, None)
        result.append(event)
        if event is None:
            continue
        recipients = [
            (f"user:{u.pk}", u, u.email) for u in message.users if u.email and u.is_active
        ]
        if message.readers is None:
            recipients += [a for g in message.groups for a in by_group.get(g.pk, ())]
            recipients += [
                (f"email:{e.strip().lower()}", None, e.strip()) for e in message.emails if e.strip()
            ]
        else:
            recipients += [a for g in message.groups for a in members_by_group.get(g.pk, ())]
            addressed = {user.pk for _key, user, _address in recipients}
            allowed = set(message.readers.filter(pk__in=addressed).values_list("pk", flat=True))
            recipients = [r for r in recipients if r[1].pk in allowed]
        seen = set()
        mine = 0
        for recipient_key, user, address in recipients:
            if address.lower() in seen:
                continue
            seen.add(address.lower())
            mine += 1
            rows.append((event, recipient_key, user, address))
        counts.append((event, mine))
    same = {
        "channel": Channel.EMAIL,
        "language": settings.LANGUAGE_CODE,
        "status": NotificationStatus.PENDING,
        # Due when their delivery is dispatched, not after: the sweep leaves them to that task.
        "next_attempt_at": now,
    }
    if connection.vendor == "postgresql":
        # Plain tuples into one INSERT from arrays, not ~10 model instances per message.
        if rows:
            arrays.insert(
                Notification,
                {
                    "event": [event.pk for event, _key, _user, _address in rows],
                    "recipient_key": [key for _event, key, _user, _address in rows],
                    "user": [user.pk if user else None for _event, _key, user, _address in rows],
                    "address": [address for _event, _key, _user, address in rows],
                },
                values=same,
                on_conflict_do_nothing=True,
            )
    else:
        Notification.objects.bulk_create(
            (
                Notification(event=event, recipient_key=key, user=user, address=address, **same)
                for event, key, user, address in rows
            ),
            ignore_conflicts=True,
        )
    for event, mine in counts:
        _deliver_on_commit(event, mine)
    return result


__all__ = [
    "cancel_for_subject",
    "discard_unsent",
    "enqueue_customer_event",
    "enqueue_maintenance_event",
    "enqueue_webhook_event",
    "expand_event",
    "notify_contact",
    "notify_staff",
    "notify_staff_batch",
    "StaffMessage",
    "notified_service_ids",
]

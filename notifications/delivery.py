"""Delivering the outbox: claim rows with a lease, send outside any transaction, mark each.

A claim is one conditional UPDATE (on PostgreSQL over ``FOR UPDATE SKIP LOCKED``, so workers
sharing an event take disjoint rows without waiting on each other). The lease instant stamped
by the claim is the claim's token: marks are conditional on it, so a worker that outlived its
lease (and whose rows the sweep handed to another) changes nothing. A worker killed mid-batch
leaves rows in ``sending``; the sweep puts them back once the lease has expired. Each row is
marked sent right after its own send, so a killed worker resends at most the message it had in
flight (with the same Message-ID / webhook-id, for the receiver to drop).
"""

import contextlib
import datetime as dt
import logging
import random
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from notifications.channels import PermanentError, TransientError, get_channel
from notifications.models import Notification, NotificationEvent, NotificationStatus
from services.models import Contact

logger = logging.getLogger(__name__)

# A delivery task stops claiming after this long and re-dispatches itself, well inside its
# Celery time limit.
TIME_BUDGET_SECONDS = 120
MAX_BACKOFF_SECONDS = 6 * 3600


def _setting(name, default):
    return getattr(settings, name, default)


def _publish(task, event_id, what):
    """Publish ``task(event_id)``; False instead of an exception when the broker is down."""
    try:
        task.delay(event_id)
    except Exception:  # kombu/redis raise many types; the sweep is the safety net
        logger.warning(
            "could not publish %s of event %s; the outbox sweep will", what, event_id, exc_info=True
        )
        return False
    return True


def dispatch_event(event_id, *, copies=1):
    """Ask the workers to deliver ``event_id``'s due rows. Never raises: when the broker is
    down the rows stay committed and the outbox sweep dispatches them later."""
    from notifications.tasks import deliver_event

    return all(_publish(deliver_event, event_id, "delivery") for _ in range(copies))


def dispatch_expansion(event_id):
    """Ask the workers to expand ``event_id`` into its rows. Never raises: when the broker is
    down the event stays committed, its lease is dropped, and the next outbox sweep dispatches
    the expansion."""
    from notifications.tasks import expand_event

    if _publish(expand_event, event_id, "expansion"):
        return True
    NotificationEvent.objects.filter(pk=event_id, expanded_at__isnull=True).update(
        expansion_lease_expires_at=None
    )
    return False


def backoff_seconds(attempts):
    """Delay before try ``attempts + 1``: the base doubled per try, with jitter (half fixed,
    half random) so rows failing together do not retry together."""
    delay = min(
        _setting("NOTIFY_BACKOFF_BASE", 30.0) * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS
    )
    return delay / 2 + random.uniform(0, delay / 2)


_CLAIM_SQL = """
UPDATE {table} SET status = 'sending', lease_expires_at = %s, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM {table}
    WHERE event_id = %s AND status = 'pending' AND next_attempt_at <= %s
    ORDER BY id LIMIT %s {lock}
)
RETURNING id
"""


def claim_batch(event_id, batch_size=None):
    """Claim up to ``batch_size`` due rows of an event. Returns (ids, lease)."""
    batch_size = batch_size or _setting("NOTIFY_BATCH_SIZE", 200)
    now = timezone.now()
    lease = now + dt.timedelta(seconds=_setting("NOTIFY_LEASE_SECONDS", 120))
    # SQLite has no row locks: its IMMEDIATE transactions run one writer at a time, so the plain
    # conditional update is already exclusive.
    lock = "FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = _CLAIM_SQL.format(table=Notification._meta.db_table, lock=lock)
    adapt = connection.ops.adapt_datetimefield_value
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [adapt(lease), event_id, adapt(now), batch_size])
        ids = sorted(row[0] for row in cursor.fetchall())
    return ids, lease


def _claimed(ids, lease):
    return Notification.objects.filter(
        pk__in=ids, status=NotificationStatus.SENDING, lease_expires_at=lease
    )


def _cancel_unwanted(ids, lease):
    """Cancel claimed rows whose recipient must not hear from us any more: a contact who
    unsubscribed or was deactivated, a deactivated subscription or staff user."""
    contact_gone = ~Exists(Contact.objects.filter(pk=OuterRef("contact_id")))
    unwanted = (
        Q(contact__isnull=False, contact__is_active=False)
        | (Q(contact_id__isnull=False) & contact_gone)  # deleted without the ORM's cascade
        | Q(channel="email", contact__email_opt_out__isnull=False)
        | Q(subscription__isnull=False, subscription__is_active=False)
        | Q(user__isnull=False, user__is_active=False)
    )
    doomed = list(_claimed(ids, lease).filter(unwanted).values_list("pk", flat=True))
    if doomed:
        _claimed(doomed, lease).update(
            status=NotificationStatus.CANCELLED,
            lease_expires_at=None,
            last_error="recipient unsubscribed or inactive",
        )
    return doomed


_MARK_SENT_SQL = """
UPDATE {table} SET status = 'sent', sent_at = %s, lease_expires_at = NULL, last_error = ''
WHERE id = %s AND status = 'sending' AND lease_expires_at = %s
"""


def mark_sent(ids, lease):
    """Mark claimed rows sent, one statement each (the hot path marks one row right after its
    send); a row whose lease was lost (and maybe re-claimed) is left alone."""
    adapt = connection.ops.adapt_datetimefield_value
    sql = _MARK_SENT_SQL.format(table=Notification._meta.db_table)
    now, lease = adapt(timezone.now()), adapt(lease)
    with connection.cursor() as cursor:
        for pk in ids:
            cursor.execute(sql, [now, pk, lease])


@contextlib.contextmanager
def _commits_without_waiting_for_disk():
    """On PostgreSQL, for the batch, commits do not wait for the WAL flush. A mark lost in a
    database crash (not a worker crash: the server has it) only means a resend with the same
    Message-ID; waiting for the disk after every email would cost more than the send."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def mark_failed(notification, error, lease, *, permanent):
    """Retry later with backoff, or give up after the last attempt (or a permanent error)."""
    max_attempts = _setting("NOTIFY_MAX_ATTEMPTS", 6)
    message = str(error)[:2000] or error.__class__.__name__
    if permanent or notification.attempts >= max_attempts:
        changes = {"status": NotificationStatus.FAILED}
    else:
        changes = {
            "status": NotificationStatus.PENDING,
            "next_attempt_at": timezone.now()
            + dt.timedelta(seconds=backoff_seconds(notification.attempts)),
        }
    _claimed([notification.pk], lease).update(lease_expires_at=None, last_error=message, **changes)


def send_claimed(ids, lease):
    """Send claimed rows (outside any transaction) and mark each one right after its send.
    Returns how many were sent. The channel (one SMTP connection) stays open for the batch."""
    _cancel_unwanted(ids, lease)
    rows = list(
        _claimed(ids, lease).select_related("event", "subscription").order_by("channel", "id")
    )
    sent_total = 0
    by_channel = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row)
    for name, group in by_channel.items():
        try:
            channel = get_channel(name)
        except PermanentError as exc:
            for row in group:
                mark_failed(row, exc, lease, permanent=True)
            continue
        with channel, _commits_without_waiting_for_disk():
            for row in group:
                try:
                    channel.send(row)
                except PermanentError as exc:
                    mark_failed(row, exc, lease, permanent=True)
                except TransientError as exc:
                    mark_failed(row, exc, lease, permanent=False)
                except Exception as exc:  # a bug must not leave the row stuck in 'sending'
                    logger.exception("sending notification %s failed", row.pk)
                    mark_failed(row, repr(exc), lease, permanent=False)
                else:
                    # At once: a worker killed after this send resends only the message in flight.
                    mark_sent([row.pk], lease)
                    sent_total += 1
    return sent_total


def deliver_event(event_id, *, batch_size=None, time_budget=TIME_BUDGET_SECONDS):
    """Claim and send an event's due rows, batch after batch, until none is left or the time
    budget is spent (then hand over to a fresh task). Safe to run many times at once."""
    deadline = time.monotonic() + time_budget
    sent = 0
    while True:
        ids, lease = claim_batch(event_id, batch_size)
        if not ids:
            return sent
        sent += send_claimed(ids, lease)
        if time.monotonic() > deadline:
            dispatch_event(event_id)
            return sent


def reclaim_expired_leases(now=None):
    """Rows left in 'sending' past their lease (a worker died) go back to pending."""
    now = now or timezone.now()
    return Notification.objects.filter(
        status=NotificationStatus.SENDING, lease_expires_at__lt=now
    ).update(status=NotificationStatus.PENDING, lease_expires_at=None)


# Expansions the sweep re-dispatches at most per run; the next run takes the rest.
SWEEP_EXPANSIONS = 100


def redispatch_expansions(now=None):
    """Dispatch the expansion of every event not expanded whose lease ran out (its expander
    died) or was dropped (the broker was down at commit). Each is taken with a conditional
    UPDATE that renews the lease, so two sweeps never dispatch the same event twice."""
    now = now or timezone.now()
    lease = now + dt.timedelta(seconds=_setting("NOTIFY_LEASE_SECONDS", 120))
    stale = Q(expansion_lease_expires_at__isnull=True) | Q(expansion_lease_expires_at__lt=now)
    unexpanded = NotificationEvent.objects.filter(stale, expanded_at__isnull=True)
    dispatched = 0
    for event_id in unexpanded.order_by("pk").values_list("pk", flat=True)[:SWEEP_EXPANSIONS]:
        if unexpanded.filter(pk=event_id).update(expansion_lease_expires_at=lease):
            dispatched += dispatch_expansion(event_id)
    return dispatched


def sweep_outbox(now=None):
    """The beat's safety net: reclaim expired leases, re-dispatch expansions that stalled, and
    dispatch delivery for every event with due pending rows (after a broker outage, a retry's
    backoff, a dead worker). Idempotent."""
    from notifications.outbox import MAX_TASK_COPIES, ROWS_PER_TASK

    now = now or timezone.now()
    reclaimed = reclaim_expired_leases(now)
    expansions = redispatch_expansions(now)
    due = (
        Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
        .values("event_id")
        .annotate(rows=Count("id"))
        .order_by("event_id")
    )
    dispatched = 0
    for row in due:
        copies = min(MAX_TASK_COPIES, max(1, -(-row["rows"] // ROWS_PER_TASK)))
        if dispatch_event(row["event_id"], copies=copies):
            dispatched += 1
    return {"reclaimed": reclaimed, "expansions": expansions, "events": dispatched}


def retry_notifications(queryset, *, actor):
    """Staff retry: failed rows back to pending with their attempts reset, and dispatched.
    Re-sending is a change: the actor needs the change permission on notifications (the admin
    action checks it too; this holds for any other caller)."""
    if not actor.has_perm("notifications.change_notification"):
        raise PermissionDenied
    ids = list(queryset.filter(status=NotificationStatus.FAILED).values_list("pk", flat=True))
    if not ids:
        return 0
    Notification.objects.filter(pk__in=ids, status=NotificationStatus.FAILED).update(
        status=NotificationStatus.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        lease_expires_at=None,
    )
    event_ids = set(
        Notification.objects.filter(pk__in=ids).values_list("event_id", flat=True).distinct()
    )
    for event_id in sorted(event_ids):
        transaction.on_commit(lambda event_id=event_id: dispatch_event(event_id))
    return len(ids)

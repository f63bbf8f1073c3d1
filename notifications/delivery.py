"""Delivering the outbox: claim rows with a lease, send outside any transaction, mark each.

A claim is one conditional UPDATE (on PostgreSQL over ``FOR UPDATE SKIP LOCKED``, so workers
sharing an event take disjoint rows without waiting on each other). The lease instant stamped
by the claim is the claim's token: marks are conditional on it, so a worker that outlived its
lease (and whose rows the sweep handed to another) changes nothing. A worker killed mid-batch
leaves rows in ``sending``; the sweep puts them back once the lease has expired, counting a
worker death on each (a message whose send kills its worker fails after a few, see
``reclaim_expired_leases``). Each row is
marked sent right after its own send, so a killed worker resends at most the message it had in
flight (with the same Message-ID / webhook-id, for the receiver to drop).

A row is sent only while its claim is valid: before each send the worker checks that the lease
outlasts the send's total deadline and extends it (for the rows it still holds) when it does
not, so a slow batch is never handed to a second worker while the first is still sending.

Failures: a permanent one fails the row; a message-level transient one retries it with capped
exponential backoff until the retry window ends; an outage of the channel itself (the relay or
a webhook endpoint is down) opens a circuit (``ChannelCircuit``): the row and every other row
for that target wait for it without using up an attempt, and one worker probes it when due.
"""

import contextlib
import datetime as dt
import logging
import random
import time

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, Value, When
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from itsm.bounded import BoundedCaller
from notifications.channels import (
    ChannelDown,
    ClientError,
    PermanentError,
    TransientError,
    get_channel,
)
from notifications.models import (
    REQUESTED_KINDS,
    ChannelCircuit,
    Notification,
    NotificationEvent,
    NotificationStatus,
)
from services.models import Channel, Contact, Subscription

logger = logging.getLogger(__name__)

# A delivery task stops claiming after this long and re-dispatches itself, well inside its
# Celery time limit.
TIME_BUDGET_SECONDS = 120
# A send starts only when the lease outlasts its deadline by this much (clock reads, the mark).
LEASE_MARGIN_SECONDS = 2.0


def _setting(name, default):
    return getattr(settings, name, default)


_publisher = BoundedCaller("publish")

# Rows per delivery task copy, and the most copies one event gets: a big fan-out is shared by
# the workers there are instead of waiting for one.
ROWS_PER_TASK = 1000
MAX_TASK_COPIES = 8


def _task(name):
    """The Celery task registered as ``name``. Looked up by name because ``notifications.tasks``
    imports this module (importing it back would be a cycle); NotificationsConfig.ready()
    imports the tasks, so every process has them registered."""
    return current_app.tasks[name]


def _publish(task, event_id, what):
    """Publish ``task(event_id)``; False instead of an exception when the broker is down, and
    within ``BROKER_PUBLISH_WAIT`` seconds when it hangs (the caller is often a request)."""
    try:
        if task.app.conf.task_always_eager:
            task.delay(event_id)  # runs the task here: no broker to wait for
        else:
            _publisher.call(lambda: task.delay(event_id), _setting("BROKER_PUBLISH_WAIT", 0.25))
    except Exception:  # kombu/redis raise many types; the sweep is the safety net
        logger.warning(
            "could not publish %s of event %s; the outbox sweep will", what, event_id, exc_info=True
        )
        return False
    return True


def dispatch_event(event_id, *, copies=1):
    """Ask the workers to deliver ``event_id``'s due rows. Never raises: when the broker is
    down the rows stay committed, the event's dispatch mark is dropped, and the next outbox
    sweep dispatches them (without waiting for the mark to be overdue).

    The caller marks the event dispatched (``delivery_dispatched_at``), in its own write where
    it has one (the expansion's chunk, the staff message's insert) or with ``mark_dispatched``,
    so the sweep does not dispatch it again while this task waits in the queue."""
    task = _task("notifications.deliver_event")
    if all(_publish(task, event_id, "delivery") for _ in range(copies)):
        return True
    NotificationEvent.objects.filter(pk=event_id).update(delivery_dispatched_at=None)
    return False


def mark_dispatched(event_ids, now=None):
    """Record that delivery of ``event_ids`` is being dispatched now (see ``dispatch_event``)."""
    NotificationEvent.objects.filter(pk__in=list(event_ids)).update(
        delivery_dispatched_at=now or timezone.now()
    )


def _dispatch_overdue(now):
    """Before this instant a dispatch whose task never claimed anything counts as lost (a
    broker that dropped it, a worker killed while the task was prefetched): a lease, the time
    in which a claimed row comes back from a dead worker too."""
    return now - dt.timedelta(seconds=_setting("NOTIFY_LEASE_SECONDS", 120))


def dispatch_expansion(event_id):
    """Ask the workers to expand ``event_id`` into its rows. Never raises: when the broker is
    down the event stays committed, its lease is dropped, and the next outbox sweep dispatches
    the expansion."""
    if _publish(_task("notifications.expand_event"), event_id, "expansion"):
        return True
    NotificationEvent.objects.filter(pk=event_id, expanded_at__isnull=True).update(
        expansion_lease_expires_at=None
    )
    return False


def backoff_seconds(attempts):
    """Delay before try ``attempts + 1``: the base doubled per try up to ``NOTIFY_BACKOFF_MAX``,
    with jitter (half fixed, half random) so rows failing together do not retry together."""
    base = _setting("NOTIFY_BACKOFF_BASE", 30.0)
    cap = _setting("NOTIFY_BACKOFF_MAX", 3600.0)
    delay = min(base * 2 ** min(max(attempts - 1, 0), 40), cap)
    return delay / 2 + random.uniform(0, delay / 2)


def _retry_window():
    return dt.timedelta(hours=_setting("NOTIFY_RETRY_HOURS", 48.0))


_CLAIM_SQL = """
UPDATE {table} SET status = 'sending', lease_expires_at = %s
WHERE id IN (
    SELECT id FROM {table}
    WHERE event_id = %s AND status = 'pending' AND next_attempt_at <= %s AND {suspects}
    ORDER BY id LIMIT %s {lock}
)
RETURNING id
"""


def claim_batch(event_id, batch_size=None):
    """Claim up to ``batch_size`` due rows of an event. Returns (ids, lease).

    Rows a dead worker held (``worker_deaths``) are claimed one at a time, once no other row
    is due: one of them may be a message whose send kills the worker, and alone it is the
    only one to count that death again (see ``reclaim_expired_leases``)."""
    batch_size = batch_size or _setting("NOTIFY_BATCH_SIZE", 200)
    now = timezone.now()
    lease = now + dt.timedelta(seconds=_setting("NOTIFY_LEASE_SECONDS", 120))
    # SQLite has no row locks: its IMMEDIATE transactions run one writer at a time, so the plain
    # conditional update is already exclusive.
    lock = "FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    adapt = connection.ops.adapt_datetimefield_value
    for suspects, size in (("worker_deaths = 0", batch_size), ("worker_deaths > 0", 1)):
        sql = _CLAIM_SQL.format(table=Notification._meta.db_table, lock=lock, suspects=suspects)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [adapt(lease), event_id, adapt(now), size])
            ids = sorted(row[0] for row in cursor.fetchall())
        if ids:
            break
    return ids, lease


def _claimed(ids, lease):
    return Notification.objects.filter(
        pk__in=ids, status=NotificationStatus.SENDING, lease_expires_at=lease
    )


def _unwanted(event):
    """Rows whose recipient must not hear from us any more: a contact who unsubscribed or was
    deactivated, whose organisation was deactivated, or who is no longer subscribed to
    anything this event is about; a deactivated subscription (or its owner); a staff user
    deactivated. Checked at send time, so it covers rows queued before the change."""
    contact_gone = ~Exists(Contact.objects.filter(pk=OuterRef("contact_id")))
    unwanted = (
        Q(contact__isnull=False, contact__is_active=False)
        | Q(contact__isnull=False, contact__organization__is_active=False)
        | (Q(contact_id__isnull=False) & contact_gone)  # deleted without the ORM's cascade
        | Q(subscription__isnull=False, subscription__is_active=False)
        | Q(subscription__organization__is_active=False)
        | Q(user__isnull=False, user__is_active=False)
        # An integrator's endpoint deactivated (or its organisation) since the row was queued.
        | Q(endpoint__isnull=False, endpoint__is_active=False)
        | Q(endpoint__organization__is_active=False)
    )
    if event.kind not in REQUESTED_KINDS:
        # A message its recipient has just asked for (a subscription confirmation) goes even
        # to an address that once unsubscribed: its owner is asking again.
        unwanted |= Q(channel="email", contact__email_opt_out__isnull=False)
    services = [int(pk) for pk in (event.audience or {}).get("services", [])]
    organization = (event.audience or {}).get("organization")
    if services or organization:
        # A customer email goes to a contact still subscribed (itself or through its
        # organisation) to a service this event is about, or in the reporting organisation.
        # Two correlated probes, each on its own foreign-key index (an OR of both would scan
        # the event's subscriptions once per row).
        active = Subscription.objects.filter(
            is_active=True, channel=Channel.EMAIL, service_id__in=services
        )
        itself = Exists(active.filter(contact_id=OuterRef("contact_id")))
        through_organization = Exists(
            active.filter(organization_id=OuterRef("contact__organization_id"))
        )
        reporting = Q(contact__organization_id=organization) if organization else Q(pk__in=[])
        unwanted |= (
            Q(channel="email", subscription__isnull=True, contact__isnull=False)
            & ~reporting
            & ~Q(itself)
            & ~Q(through_organization)
        )
    return unwanted


def _cancel_unwanted(event, ids, lease):
    """Cancel claimed rows whose recipient must not hear from us any more (see ``_unwanted``)."""
    doomed = list(_claimed(ids, lease).filter(_unwanted(event)).values_list("pk", flat=True))
    if doomed:
        _claimed(doomed, lease).update(
            status=NotificationStatus.CANCELLED,
            lease_expires_at=None,
            last_error="recipient unsubscribed or inactive",
        )
    return doomed


def _new_lease(seconds_needed=0.0):
    seconds = max(_setting("NOTIFY_LEASE_SECONDS", 120), seconds_needed + LEASE_MARGIN_SECONDS)
    return timezone.now() + dt.timedelta(seconds=seconds)


def extend_lease(ids, lease, seconds_needed=0.0):
    """Renew the claim on the rows of ``ids`` still held under ``lease``. Returns (the ids still
    held, the new lease): a row the sweep took back (and maybe another worker claimed) is
    dropped, never sent."""
    new_lease = _new_lease(seconds_needed)
    held = _claimed(ids, lease)
    with transaction.atomic():
        kept = list(held.select_for_update().values_list("pk", flat=True))
        Notification.objects.filter(pk__in=kept, lease_expires_at=lease).update(
            lease_expires_at=new_lease
        )
    return kept, new_lease


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
    """Count a failed try: give up on a permanent error, after the last try a 4xx allows, or
    once the retry window since the row was queued has passed; otherwise retry with backoff."""
    message = str(error)[:2000] or error.__class__.__name__
    attempts = notification.attempts + 1
    now = timezone.now()
    limited = isinstance(error, ClientError)
    if (
        permanent
        or (limited and attempts >= _setting("NOTIFY_CLIENT_ERROR_ATTEMPTS", 3))
        or now >= notification.created_at + _retry_window()
    ):
        changes = {"status": NotificationStatus.FAILED}
    else:
        changes = {
            "status": NotificationStatus.PENDING,
            "next_attempt_at": now + dt.timedelta(seconds=backoff_seconds(attempts)),
        }
    _claimed([notification.pk], lease).update(
        lease_expires_at=None, last_error=message, attempts=attempts, waiting_for="", **changes
    )


def _circuit_delay(failures):
    return backoff_seconds(failures)


def trip_circuit(key, error):
    """Open (or keep open) the circuit for ``key``; returns when the next probe is due."""
    now = timezone.now()
    message = str(error)[:2000]
    circuit = ChannelCircuit.objects.filter(key=key).first()
    if circuit is None:
        retry_at = now + dt.timedelta(seconds=_circuit_delay(1))
        try:
            with transaction.atomic():
                ChannelCircuit.objects.create(
                    key=key, opened_at=now, retry_at=retry_at, last_error=message
                )
            logger.warning("delivery channel %s is down: %s", key, message)
            return retry_at
        except IntegrityError:  # another worker opened it at the same moment
            circuit = ChannelCircuit.objects.get(key=key)
    retry_at = now + dt.timedelta(seconds=_circuit_delay(circuit.failures + 1))
    ChannelCircuit.objects.filter(pk=circuit.pk).update(
        failures=F("failures") + 1, retry_at=retry_at, last_error=message
    )
    return retry_at


def take_probe(key, probe_seconds):
    """True when this worker may send one message to the open circuit ``key`` as a probe (its
    next probe is due and no other worker took it); the probe holds it ``probe_seconds``."""
    now = timezone.now()
    return bool(
        ChannelCircuit.objects.filter(key=key, retry_at__lte=now).update(
            retry_at=now + dt.timedelta(seconds=probe_seconds + LEASE_MARGIN_SECONDS)
        )
    )


def close_circuit(key):
    """The target answers again: delete its circuit and make what waited for it due now."""
    if ChannelCircuit.objects.filter(key=key).delete()[0]:
        logger.warning("delivery channel %s is back", key)
        woken = Notification.objects.filter(
            status=NotificationStatus.PENDING, waiting_for=key
        ).update(next_attempt_at=timezone.now(), waiting_for="")
        return woken
    return 0


def _wait_for_circuit(pks, lease, key, retry_at, reason):
    """Put claimed rows back to wait for the circuit ``key``, their attempts untouched; rows
    queued longer ago than the retry window fail instead."""
    if not pks:
        return
    now = timezone.now()
    held = _claimed(pks, lease)
    held.filter(created_at__lte=now - _retry_window()).update(
        status=NotificationStatus.FAILED,
        lease_expires_at=None,
        waiting_for="",
        last_error=f"gave up: {key} down for the whole retry window: {reason}"[:2000],
    )
    held.update(
        status=NotificationStatus.PENDING,
        lease_expires_at=None,
        next_attempt_at=retry_at,
        waiting_for=key,
        last_error=f"waiting for {key} (down): {reason}"[:2000],
    )


def _release(pks, lease):
    """Hand claimed rows not tried back to the queue, due now, attempts untouched."""
    if pks:
        _claimed(pks, lease).update(status=NotificationStatus.PENDING, lease_expires_at=None)


class _Batch:
    """The claim a worker holds while it sends: the ids still held and the current lease."""

    def __init__(self, ids, lease):
        self.held = set(ids)
        self.lease = lease
        self.done = set()

    def ensure(self, seconds_needed):
        """Make sure the lease outlasts a send of ``seconds_needed``; returns the ids still
        held (a row lost to the sweep is never sent)."""
        remaining = (self.lease - timezone.now()).total_seconds()
        if remaining < seconds_needed + LEASE_MARGIN_SECONDS:
            kept, self.lease = extend_lease(self.held - self.done, self.lease, seconds_needed)
            self.held = self.done | set(kept)
        return self.held

    def unsent(self):
        return list(self.held - self.done)


def send_claimed(ids, lease):
    """Send claimed rows (outside any transaction) and mark each one right after its send.
    Returns how many were sent. The channel (one SMTP connection) stays open for the batch.
    Webhooks go first: a handful of quick POSTs must not wait behind a slow mail relay."""
    if not ids:
        return 0
    event = NotificationEvent.objects.filter(
        pk__in=Notification.objects.filter(pk=ids[0]).values("event_id")
    ).first()
    if event is not None and event.cancelled_at is not None:
        # What it is about was deleted (``outbox.cancel_for_subject``) while this worker held
        # the rows, or they came back from a dead worker's lease: send none of them.
        _claimed(ids, lease).update(
            status=NotificationStatus.CANCELLED,
            lease_expires_at=None,
            last_error=event.cancel_reason or "cancelled",
        )
        return 0
    if event is not None:
        _cancel_unwanted(event, ids, lease)
    rows = list(
        _claimed(ids, lease).select_related("event", "subscription", "endpoint").order_by("id")
    )
    batch = _Batch([row.pk for row in rows], lease)
    by_channel = {}
    for row in sorted(rows, key=lambda r: (r.channel != Channel.WEBHOOK, r.channel, r.pk)):
        by_channel.setdefault(row.channel, []).append(row)
    circuits = {c.key: c for c in ChannelCircuit.objects.all()}
    sent_total = 0
    try:
        for name, group in by_channel.items():
            sent_total += _send_group(name, group, batch, circuits)
    except SoftTimeLimitExceeded:
        # The task is out of time: hand back what was not sent, and let Celery know.
        _release(batch.unsent(), batch.lease)
        raise
    return sent_total


def _send_group(name, group, batch, circuits):
    try:
        channel = get_channel(name)
    except PermanentError as exc:
        for row in group:
            mark_failed(row, exc, batch.lease, permanent=True)
            batch.done.add(row.pk)
        return 0
    sent = 0
    waiting = {}  # circuit key -> (retry_at, reason, [row ids])
    timeout = channel.send_timeout()
    with channel, _commits_without_waiting_for_disk():
        for row in group:
            key = channel.circuit_key(row)
            if key in waiting:
                waiting[key][2].append(row.pk)
                batch.done.add(row.pk)
                continue
            circuit = circuits.get(key)
            probing = False
            if circuit is not None:
                if circuit.retry_at > timezone.now() or not take_probe(key, timeout):
                    # Open, and not this worker's turn to probe: wait with the others.
                    fresh = ChannelCircuit.objects.filter(key=key).first() or circuit
                    waiting[key] = (fresh.retry_at, fresh.last_error, [row.pk])
                    batch.done.add(row.pk)
                    continue
                probing = True
            if row.pk not in batch.ensure(timeout):
                continue  # the lease ran out and the sweep took the row back
            try:
                channel.send(row)
            except PermanentError as exc:
                mark_failed(row, exc, batch.lease, permanent=True)
            except ChannelDown as exc:
                retry_at = trip_circuit(key, exc)
                circuits[key] = ChannelCircuit(key=key, retry_at=retry_at, last_error=str(exc))
                waiting[key] = (retry_at, str(exc), [row.pk])
            except TransientError as exc:
                mark_failed(row, exc, batch.lease, permanent=False)
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:  # a bug must not leave the row stuck in 'sending'
                logger.exception("sending notification %s failed", row.pk)
                mark_failed(row, repr(exc), batch.lease, permanent=False)
            else:
                # At once: a worker killed after this send resends only the message in flight.
                mark_sent([row.pk], batch.lease)
                sent += 1
                if probing:
                    close_circuit(key)
                    circuits.pop(key, None)
            batch.done.add(row.pk)
    for key, (retry_at, reason, pks) in waiting.items():
        _wait_for_circuit(pks, batch.lease, key, retry_at, reason)
    return sent


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
            mark_dispatched([event_id])
            dispatch_event(event_id)
            return sent


def _max_worker_deaths():
    return max(1, int(_setting("NOTIFY_MAX_WORKER_DEATHS", 3)))


def reclaim_expired_leases(now=None):
    """Rows left in 'sending' past their lease go back to pending, and the claim that ended
    without a result counts (``worker_deaths``): the worker died while it held them.

    A message whose send kills the worker (a segfault, the OOM killer) would otherwise be
    reclaimed and kill a worker again, forever. Its first death is shared with the rest of
    its batch (which of them was in flight is not recorded); from then on each of them is
    claimed alone, so only the culprit dies again, waits a backoff, and after
    ``NOTIFY_MAX_WORKER_DEATHS`` (3) is failed for good with the reason, for staff to see."""
    now = now or timezone.now()
    limit = _max_worker_deaths()
    expired = Notification.objects.filter(
        status=NotificationStatus.SENDING, lease_expires_at__lt=now
    )
    deaths = F("worker_deaths") + 1
    died = Concat(
        Value("worker died while sending, "),
        Cast(deaths, output_field=CharField()),
        Value(" times"),
        output_field=CharField(),
    )
    failed = expired.filter(worker_deaths__gte=limit - 1).update(
        status=NotificationStatus.FAILED,
        lease_expires_at=None,
        waiting_for="",
        worker_deaths=deaths,
        last_error=died,
    )
    if failed:
        logger.error("%d notifications failed: a worker died while sending them", failed)
    # The dispatch these rows were part of died with its worker: their events lose their
    # dispatch mark, so this sweep dispatches them again (see ``sweep_outbox``).
    NotificationEvent.objects.filter(pk__in=expired.values("event_id")).update(
        delivery_dispatched_at=None
    )
    # A first death is most often an innocent one (a deploy's kill -9): due again as it was. A
    # row that was alone when a worker died again may well be the culprit: after a backoff.
    again = now + dt.timedelta(seconds=backoff_seconds(1))
    retried = expired.update(
        status=NotificationStatus.PENDING,
        lease_expires_at=None,
        worker_deaths=deaths,
        last_error=died,
        next_attempt_at=Case(
            When(worker_deaths=0, then=F("next_attempt_at")), default=Value(again)
        ),
    )
    return failed + retried


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
    backoff, a dead worker). Idempotent.

    An event whose delivery was dispatched (``delivery_dispatched_at``) is left to that task
    while it may still be queued: its due rows were due already when it was dispatched, and the
    dispatch is not overdue (a lease old). Dispatching it again at every sweep multiplied a
    backlog (at a 1 s sweep, 5,315 of 5,668 deliveries of bench E1 found nothing to send).
    Rows that became due after the dispatch (a retry's backoff ended, a circuit closed, a dead
    worker's rows came back) are dispatched at once: the task may have run before them."""
    now = now or timezone.now()
    reclaimed = reclaim_expired_leases(now)
    expansions = redispatch_expansions(now)
    due = (
        Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
        .alias(mark=F("event__delivery_dispatched_at"))
        .filter(
            Q(mark__isnull=True)
            | Q(mark__lt=_dispatch_overdue(now))
            | Q(next_attempt_at__gt=F("mark"))
        )
        .values("event_id", "event__delivery_dispatched_at")
        .annotate(rows=Count("id"))
        .order_by("event_id")
    )
    dispatched = 0
    for row in due:
        event_id, seen = row["event_id"], row["event__delivery_dispatched_at"]
        # Taken only if no other sweep dispatched it since it was read.
        if not NotificationEvent.objects.filter(pk=event_id, delivery_dispatched_at=seen).update(
            delivery_dispatched_at=now
        ):
            continue
        copies = min(MAX_TASK_COPIES, max(1, -(-row["rows"] // ROWS_PER_TASK)))
        if dispatch_event(event_id, copies=copies):
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
    now = timezone.now()
    Notification.objects.filter(pk__in=ids, status=NotificationStatus.FAILED).update(
        status=NotificationStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        lease_expires_at=None,
        waiting_for="",
    )
    event_ids = set(
        Notification.objects.filter(pk__in=ids).values_list("event_id", flat=True).distinct()
    )
    mark_dispatched(event_ids, now)
    for event_id in sorted(event_ids):
        transaction.on_commit(lambda event_id=event_id: dispatch_event(event_id))
    return len(ids)

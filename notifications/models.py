"""The outbox: every message itsm sends starts as a ``NotificationEvent`` written in the same
transaction as the change that caused it. Workers expand a customer event into one
``Notification`` row per recipient, chunk by chunk, then claim rows with a lease, send, and mark
each one sent."""

import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class EventKind(models.TextChoices):
    INCIDENT_PUBLISHED = "incident_published", _("Incident published")
    INCIDENT_UPDATED = "incident_updated", _("Incident updated")
    INCIDENT_RESOLVED = "incident_resolved", _("Incident resolved")
    MAINTENANCE_SCHEDULED = "maintenance_scheduled", _("Maintenance scheduled")
    MAINTENANCE_STARTED = "maintenance_started", _("Maintenance started")
    MAINTENANCE_COMPLETED = "maintenance_completed", _("Maintenance completed")
    SLA_WARNING = "sla_warning", _("SLA warning")
    SLA_BREACH = "sla_breach", _("SLA breach")
    ESCALATION = "escalation", _("Escalation")
    ASSIGNMENT = "assignment", _("Assignment")
    ACTION_ITEM_OVERDUE = "action_item_overdue", _("Action item overdue")
    PROBLEM_PROPOSED = "problem_proposed", _("Problem proposed (recurring incidents)")
    SUBSCRIPTION_CONFIRMATION = "subscription_confirmation", _("Subscription confirmation")
    # Events for integrators' webhook endpoints (``WebhookEndpoint``), named as they are sent.
    WEBHOOK_INCIDENT_CREATED = "incident.created", _("Webhook: incident created")
    WEBHOOK_INCIDENT_UPDATED = "incident.updated", _("Webhook: incident updated")
    WEBHOOK_INCIDENT_RESOLVED = "incident.resolved", _("Webhook: incident resolved")
    WEBHOOK_SLA_WARNING = "sla.warning", _("Webhook: SLA warning")
    WEBHOOK_SLA_BREACHED = "sla.breached", _("Webhook: SLA breached")
    WEBHOOK_MAINTENANCE_SCHEDULED = "maintenance.scheduled", _("Webhook: maintenance scheduled")
    WEBHOOK_MAINTENANCE_STARTED = "maintenance.started", _("Webhook: maintenance started")
    WEBHOOK_MAINTENANCE_COMPLETED = "maintenance.completed", _("Webhook: maintenance completed")
    WEBHOOK_MAINTENANCE_CANCELLED = "maintenance.cancelled", _("Webhook: maintenance cancelled")
    WEBHOOK_PING = "ping", _("Webhook: ping")


INCIDENT_KINDS = frozenset(
    {EventKind.INCIDENT_PUBLISHED, EventKind.INCIDENT_UPDATED, EventKind.INCIDENT_RESOLVED}
)
# Messages to one contact who has just asked for them (the status page's double opt-in): sent
# even to an address that once unsubscribed, since its owner asks again (the asking is rate
# limited), and carrying the one-click unsubscribe like every customer email.
REQUESTED_KINDS = frozenset({EventKind.SUBSCRIPTION_CONFIRMATION})
MAINTENANCE_KINDS = frozenset(
    {
        EventKind.MAINTENANCE_SCHEDULED,
        EventKind.MAINTENANCE_STARTED,
        EventKind.MAINTENANCE_COMPLETED,
    }
)


# What an integrator's endpoint may subscribe to (``ping`` is sent on request only).
WEBHOOK_EVENT_TYPES = (
    EventKind.WEBHOOK_INCIDENT_CREATED,
    EventKind.WEBHOOK_INCIDENT_UPDATED,
    EventKind.WEBHOOK_INCIDENT_RESOLVED,
    EventKind.WEBHOOK_SLA_WARNING,
    EventKind.WEBHOOK_SLA_BREACHED,
    EventKind.WEBHOOK_MAINTENANCE_SCHEDULED,
    EventKind.WEBHOOK_MAINTENANCE_STARTED,
    EventKind.WEBHOOK_MAINTENANCE_COMPLETED,
    EventKind.WEBHOOK_MAINTENANCE_CANCELLED,
)
WEBHOOK_KINDS = frozenset({*WEBHOOK_EVENT_TYPES, EventKind.WEBHOOK_PING})


def new_webhook_secret():
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    import base64
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def validate_event_types(value):
    if not isinstance(value, list) or not value:
        raise ValidationError(_("Choose at least one event type."))
    unknown = sorted({str(v) for v in value} - set(WEBHOOK_EVENT_TYPES))
    if unknown:
        raise ValidationError(
            _("Unknown event types: %(types)s."), params={"types": ", ".join(unknown)}
        )


def validate_webhook_url(url):
    """The guard the webhook channel applies at send time, applied when the URL is typed. A
    name that does not resolve (yet) passes: the send-time guard checks every address then."""
    from itsm.netguard import RefusedTarget, UnresolvableTarget, check_url

    try:
        check_url(url)
    except UnresolvableTarget:
        pass
    except RefusedTarget as exc:
        raise ValidationError(str(exc)) from None


class WebhookEndpointQuerySet(models.QuerySet):
    def visible_to(self, actor):
        """The endpoints ``actor`` may manage: all of them for staff and unbound tokens (their
        permission is checked by the caller), its own organisation's for a bound token."""
        organization_id = getattr(actor, "organization_id", None)
        if organization_id is not None:
            return self.filter(organization_id=organization_id)
        return self

    def with_last_delivery(self):
        """Annotate the newest message's status, time and error (``last_status``,
        ``last_at``, ``last_error``): three correlated subqueries on the endpoint's partial
        index, in the list's one query."""
        newest = Notification.objects.filter(endpoint=models.OuterRef("pk")).order_by(
            "-created_at", "-id"
        )
        return self.annotate(
            last_status=models.Subquery(newest.values("status")[:1]),
            last_at=models.Subquery(newest.values("created_at")[:1]),
            last_sent_at=models.Subquery(newest.values("sent_at")[:1]),
            last_error=models.Subquery(newest.values("last_error")[:1]),
        )


class WebhookEndpoint(models.Model):
    """An integrator's URL that hears about the event types it chose, signed with its own
    Standard Webhooks secret. Bound to an organisation, it hears only of the incidents a token
    of that organisation may read (never a confidential one). Changed through
    ``notifications.webhooks`` (the API and the admin call it)."""

    url = models.URLField(_("URL"), max_length=500, validators=[validate_webhook_url])
    description = models.CharField(_("description"), max_length=200, blank=True, default="")
    event_types = models.JSONField(
        _("event types"), default=list, validators=[validate_event_types]
    )
    is_active = models.BooleanField(_("active"), default=True)
    secret = models.CharField(_("signing secret"), max_length=80, default=new_webhook_secret)
    organization = models.ForeignKey(
        "services.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
        verbose_name=_("organisation"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self):
        return self.description or self.url

    def wants(self, event_type):
        return self.is_active and str(event_type) in (self.event_types or ())


class NotificationEvent(models.Model):
    """One thing worth telling people about, and the outbox entry for it. Its ``payload`` holds
    what the templates need, so a fan-out to 100,000 recipients writes small rows and renders
    once per language; its ``audience`` holds what finds the recipients (see
    ``notifications.outbox``), so the caller's transaction writes this one row and workers write
    the per-recipient rows afterwards. ``expanded_at`` is set once every row is written."""

    kind = models.CharField(_("kind"), max_length=32, choices=EventKind.choices)
    # Unique so that the same happening (a retried request, two racing sweeps) makes one event.
    key = models.CharField(_("key"), max_length=200, unique=True)
    # What the event is about, named generically so that notifications know no other app:
    # ("incident", 42), ("maintenance", 7), or empty. The app that owns the subject builds the
    # payload and reads its events back by these two columns (event_subject_idx).
    subject_kind = models.CharField(_("subject kind"), max_length=32, blank=True, default="")
    subject_id = models.BigIntegerField(_("subject id"), null=True, blank=True)
    payload = models.JSONField(_("payload"), default=dict)
    # {"services": [ids whose subscribers hear], "organization": reporting organisation id}.
    audience = models.JSONField(_("audience"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expanded_at = models.DateTimeField(_("expanded"), null=True, blank=True)
    # Expansion progress: every email recipient with a contact id up to this one has its row.
    expansion_cursor = models.BigIntegerField(_("expanded up to contact"), default=0)
    # An expander extends this at each chunk; the outbox sweep re-dispatches the expansion of an
    # event whose lease ran out (its worker died) or that never got one (broker down at commit).
    expansion_lease_expires_at = models.DateTimeField(
        _("expansion lease expires"), null=True, blank=True
    )
    # When delivery of its rows was last dispatched (a deliver task published, or about to be
    # on commit). The outbox sweep dispatches the event again only once that is older than a
    # lease, or for rows that became due after it: a task still queued behind a backlog would
    # otherwise get a twin at every sweep, and the backlog would multiply.
    delivery_dispatched_at = models.DateTimeField(_("delivery dispatched"), null=True, blank=True)
    # Set when what the event is about was deleted: its unsent rows are cancelled, and a row a
    # worker still held then is cancelled when it comes back (sent rows stay, as the record).
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancel_reason = models.CharField(_("why cancelled"), max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("notification event")
        verbose_name_plural = _("notification events")
        indexes = [
            # The outbox sweep looks only at the few events still being expanded.
            models.Index(
                fields=["expansion_lease_expires_at"],
                name="event_unexpanded_idx",
                condition=models.Q(expanded_at__isnull=True),
            ),
            # "What was sent about incident 42", and which of its events are still expanding.
            models.Index(fields=["subject_kind", "subject_id"], name="event_subject_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.key})"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class Notification(models.Model):
    """One message to one recipient on one channel for one event."""

    event = models.ForeignKey(
        NotificationEvent,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("event"),
        # unique_notification and notification_event_idx both start with event_id.
        db_index=False,
    )
    channel = models.CharField(_("channel"), max_length=16)
    # Who, as a stable key: "contact:12", "user:3", "subscription:7", "email:ops@example.com".
    # Unique with the event and channel: a contact reached by two paths gets one message.
    recipient_key = models.CharField(_("recipient"), max_length=254)
    # The expansion writes up to 100,000 rows. A database FK here would take a KEY SHARE lock on
    # every contact row (seconds per chunk); Django's CASCADE runs in Python anyway, and delivery
    # cancels a row whose contact is gone. Mostly-NULL columns get
    # partial indexes (see Meta) so an email row does not pay for them.
    contact = models.ForeignKey(
        "services.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("contact"),
        db_constraint=False,
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("staff user"),
        db_index=False,
    )
    subscription = models.ForeignKey(
        "services.Subscription",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("subscription"),
        db_index=False,
    )
    # An integrator's endpoint (``WebhookEndpoint``): the row is signed with its secret.
    endpoint = models.ForeignKey(
        "notifications.WebhookEndpoint",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("webhook endpoint"),
        db_index=False,
    )
    address = models.CharField(_("address"), max_length=500)  # email address or webhook URL
    language = models.CharField(_("language"), max_length=5, default="en")
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=NotificationStatus.choices,
        default=NotificationStatus.PENDING,
    )
    # Tries that failed for this message's own reason: a channel outage does not count.
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # Claims that ended without a result: the worker died (segfault, OOM, kill -9) while it held
    # this row, so the lease ran out. A row with any is claimed alone from then on, so that a
    # message whose send kills the worker is the only one to count the next deaths, and fails
    # after NOTIFY_MAX_WORKER_DEATHS instead of killing workers in a loop.
    # (db_default too: the fan-out writes rows with raw INSERT ... SELECT.)
    worker_deaths = models.PositiveSmallIntegerField(_("worker deaths"), default=0, db_default=0)
    # The circuit (see ``ChannelCircuit``) this row waits for while its channel is down.
    waiting_for = models.CharField(_("waiting for"), max_length=300, blank=True, default="")
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    lease_expires_at = models.DateTimeField(_("lease expires"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [
            models.UniqueConstraint(
                fields=["event", "recipient_key", "channel"], name="unique_notification"
            )
        ]
        indexes = [
            # Workers and the outbox sweep look only at unfinished rows.
            models.Index(
                fields=["next_attempt_at"],
                name="notification_due_idx",
                condition=models.Q(status__in=["pending", "sending"]),
            ),
            models.Index(fields=["event", "status"], name="notification_event_idx"),
            # The claim's look for a dead worker's rows, to claim them one at a time: nearly
            # always none, found without reading the event's other rows.
            models.Index(
                fields=["event"],
                name="notification_suspect_idx",
                condition=models.Q(status="pending", worker_deaths__gt=0),
            ),
            models.Index(
                fields=["waiting_for"],
                name="notification_waiting_idx",
                condition=models.Q(status="pending") & ~models.Q(waiting_for=""),
            ),
            models.Index(
                fields=["user"],
                name="notification_user_idx",
                condition=models.Q(user__isnull=False),
            ),
            models.Index(
                fields=["subscription"],
                name="notification_subscription_idx",
                condition=models.Q(subscription__isnull=False),
            ),
            models.Index(
                fields=["endpoint", "-created_at"],
                name="notification_endpoint_idx",
                condition=models.Q(endpoint__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.channel} → {self.address} ({self.status})"

    @property
    def message_id(self):
        """Deterministic per notification: a resend carries the same id, so a receiver can
        drop the duplicate, and no two notifications ever share one, not even across installs
        or a rebuilt database (the install id is part of it)."""
        return self.message_id_for(install_id())

    def message_id_for(self, install):
        return f"<itsm.{self.event_id}.{self.pk}.{install}@{message_id_domain()}>"

    @property
    def webhook_id(self):
        """The Standard Webhooks ``webhook-id``: the same for every retry of this notification
        (a receiver drops the duplicate), and never another install's (or a rebuilt database's)
        for the same row ids, so a receiver deduping on it never drops a real event."""
        return self.webhook_id_for(install_id())

    def webhook_id_for(self, install):
        return f"msg_itsm_{install}_{self.event_id}_{self.pk}"


class EmailOptOut(models.Model):
    """A contact who unsubscribed. Checked when fanning out and again at send time, so a contact
    who opted out is never mailed again, even through an organisation-wide subscription or a row
    queued before the click. (Added by the notifications engineer, issue 5.)"""

    contact = models.OneToOneField(
        "services.Contact",
        on_delete=models.CASCADE,
        related_name="email_opt_out",
        verbose_name=_("contact"),
    )
    created_at = models.DateTimeField(_("unsubscribed"), default=timezone.now)

    class Meta:
        verbose_name = _("email opt-out")
        verbose_name_plural = _("email opt-outs")

    def __str__(self):
        return str(self.contact)


def message_id_domain():
    """``MESSAGE_ID_DOMAIN`` when set, else the host of the configured site (``SITE_URL``)."""
    return getattr(settings, "MESSAGE_ID_DOMAIN", "") or urlsplit(settings.SITE_URL).hostname


class Installation(models.Model):
    """One row: this install's identity, generated once (on first use) and kept in the
    database, so Message-IDs of two installs, or of a rebuilt database, never collide."""

    install_id = models.CharField(_("install id"), max_length=32, unique=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("installation")
        verbose_name_plural = _("installation")

    def __str__(self):
        return self.install_id


def install_id():
    """This install's id, created on first use (two processes racing make one)."""
    row = Installation.objects.filter(pk=1).first()
    if row is None:
        try:
            with transaction.atomic():
                row = Installation.objects.create(pk=1, install_id=uuid.uuid4().hex[:16])
        except IntegrityError:
            row = Installation.objects.get(pk=1)
    return row.install_id


class ChannelCircuit(models.Model):
    """An open circuit: a channel target (the SMTP relay, one webhook endpoint) that is down.
    While it is open its messages wait (``Notification.waiting_for``) without using up their
    attempts; at ``retry_at`` one worker sends one message as a probe, and a success closes the
    circuit (deletes this row) and wakes every waiting message."""

    key = models.CharField(_("channel"), max_length=300, unique=True)
    opened_at = models.DateTimeField(_("down since"), default=timezone.now)
    failures = models.PositiveIntegerField(_("failed probes"), default=1)
    retry_at = models.DateTimeField(_("next probe"))
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["opened_at"]
        verbose_name = _("channel outage")
        verbose_name_plural = _("channel outages")

    def __str__(self):
        return self.key

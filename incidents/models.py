"""Incidents: the record of a disruption, its timeline, its public updates and its SLA clock.

Every change goes through ``incidents/workflow.py``; nothing here holds a business rule.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from incidents import visibility
from itsm.actors import ActorKind
from services.models import Priority, ServiceStatus


class IncidentState(models.TextChoices):
    NEW = "new", _("New")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    ON_HOLD = "on_hold", _("On hold")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


OPEN_STATES = (IncidentState.NEW, IncidentState.ACKNOWLEDGED, IncidentState.ON_HOLD)


class Source(models.TextChoices):
    ADMIN = "admin", _("Admin")
    API = "api", _("API")
    ALERT = "alert", _("Alert")
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")


class PublicStatus(models.TextChoices):
    INVESTIGATING = "investigating", _("Investigating")
    IDENTIFIED = "identified", _("Identified")
    MONITORING = "monitoring", _("Monitoring")
    RESOLVED = "resolved", _("Resolved")


class ResolutionCode(models.TextChoices):
    FIXED = "fixed", _("Fixed")
    WORKAROUND = "workaround", _("Workaround applied")
    RESOLVED_BY_CALLER = "resolved_by_caller", _("Resolved by caller")
    DUPLICATE = "duplicate", _("Duplicate")
    NOT_REPRODUCIBLE = "not_reproducible", _("Not reproducible")
    NO_FAULT = "no_fault", _("No fault found")


class Level(models.IntegerChoices):
    HIGH = 1, _("1 – High")
    MEDIUM = 2, _("2 – Medium")
    LOW = 3, _("3 – Low")


class PriorityMatrixEntry(models.Model):
    """One cell of the impact × urgency → priority matrix; staff may change it in the admin."""

    impact = models.PositiveSmallIntegerField(_("impact"), choices=Level.choices)
    urgency = models.PositiveSmallIntegerField(_("urgency"), choices=Level.choices)
    priority = models.PositiveSmallIntegerField(_("priority"), choices=Priority.choices)

    class Meta:
        ordering = ["impact", "urgency"]
        verbose_name = _("priority matrix entry")
        verbose_name_plural = _("priority matrix")
        constraints = [
            models.UniqueConstraint(fields=["impact", "urgency"], name="unique_matrix_cell")
        ]

    def __str__(self):
        return f"{self.impact}×{self.urgency} → P{self.priority}"


class SlaTargetKind(models.TextChoices):
    RESPONSE = "response", _("Response")
    RESOLUTION = "resolution", _("Resolution")


class VisibleQuerySet(models.QuerySet):
    """Rows narrowed to what an actor may read: the incident's rule (``incidents.visibility``),
    reached through ``incident_path`` ("" on the incident itself)."""

    incident_path = ""

    def visible_to(self, actor):
        return visibility.scope(self, actor, self.incident_path)


class IncidentQuerySet(VisibleQuerySet):
    pass


class IncidentChildQuerySet(VisibleQuerySet):
    incident_path = "incident__"


class Incident(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=IncidentState.choices, default=IncidentState.NEW
    )
    impact = models.PositiveSmallIntegerField(
        _("impact"),
        choices=Level.choices,
        default=Level.MEDIUM,
        validators=[MinValueValidator(1), MaxValueValidator(3)],
    )
    urgency = models.PositiveSmallIntegerField(
        _("urgency"),
        choices=Level.choices,
        default=Level.MEDIUM,
        validators=[MinValueValidator(1), MaxValueValidator(3)],
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"),
        choices=Priority.choices,
        default=Priority.P3,
        help_text=_("Derived from impact and urgency through the priority matrix."),
    )
    services = models.ManyToManyField(
        "services.Service",
        through="IncidentService",
        related_name="incidents",
        verbose_name=_("affected services"),
    )
    organization = models.ForeignKey(
        "services.Organization",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        verbose_name=_("reporting organisation"),
    )
    contact = models.ForeignKey(
        "services.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        verbose_name=_("reporting contact"),
    )
    source = models.CharField(
        _("source"), max_length=16, choices=Source.choices, default=Source.ADMIN
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_incidents",
        verbose_name=_("assignee"),
    )
    assignment_group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_incidents",
        verbose_name=_("assignment group"),
    )
    is_major = models.BooleanField(_("major incident"), default=False)
    is_confidential = models.BooleanField(
        _("confidential"),
        default=False,
        help_text=_(
            "Seen only by the Security group, incident managers, its assignee and its "
            "commander; it does not move a public service status and tells customers nothing "
            "unless a public update is posted, which then names no detail."
        ),
    )
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="commanded_incidents",
        verbose_name=_("incident commander"),
    )
    communications_lead = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="communicated_incidents",
        verbose_name=_("communications lead"),
    )
    problem = models.ForeignKey(
        "problems.Problem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        verbose_name=_("problem"),
    )
    hold_reason = models.CharField(_("hold reason"), max_length=200, blank=True)
    resolution_code = models.CharField(
        _("resolution code"), max_length=32, choices=ResolutionCode.choices, blank=True
    )
    resolution_notes = models.TextField(_("resolution notes"), blank=True)
    public_status = models.CharField(
        _("public status"),
        max_length=16,
        choices=PublicStatus.choices,
        blank=True,
        help_text=_("The status of the latest public update; empty while unpublished."),
    )
    published_at = models.DateTimeField(_("published"), null=True, blank=True)

    opened_at = models.DateTimeField(_("opened"), default=timezone.now, db_index=True)
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    # When the response target was met: the first acknowledgement, or the resolution when
    # nobody acknowledged (SLA.md, "Meeting a target"). Kept apart from ``acknowledged_at`` so
    # MTTA counts only real acknowledgements.
    responded_at = models.DateTimeField(_("responded"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    # The first resolution meets the resolution target; a reopen clears ``resolved_at`` only.
    first_resolved_at = models.DateTimeField(_("first resolved"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    # The SLA clock. Targets are copied from the policy when computed so the record shows the
    # promise that applied; deadlines are stored so the sweep and the admin read columns.
    sla_policy = models.ForeignKey(
        "services.SlaPolicy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        verbose_name=_("SLA policy"),
    )
    response_target = models.DurationField(_("response target"), null=True, blank=True)
    resolution_target = models.DurationField(_("resolution target"), null=True, blank=True)
    response_due_at = models.DateTimeField(_("response due"), null=True, blank=True)
    resolve_due_at = models.DateTimeField(_("resolution due"), null=True, blank=True)
    response_breached_at = models.DateTimeField(_("response breached"), null=True, blank=True)
    resolve_breached_at = models.DateTimeField(_("resolution breached"), null=True, blank=True)
    # The earliest instant the sweep has something to do (a warning or a breach); NULL when
    # nothing is left. Indexed only over open incidents, see Meta.
    next_sla_check_at = models.DateTimeField(_("next SLA check"), null=True, blank=True)
    # Why each deadline is what it is: per target ("response", "resolution") the policy,
    # service and calendar that set it (ids and names), see ``incidents.deadlines``.
    sla_explain = models.JSONField(_("SLA explanation"), default=dict, blank=True)
    # Set when an SLA input (calendar, policy, target, contract, service) changed after the
    # deadlines were computed; the sweep recomputes them from the incident's history.
    sla_stale = models.BooleanField(_("SLA inputs changed"), default=False)
    # When the deadlines were last computed (real time): an input change after it makes the
    # incident stale, one before it was already taken into account.
    sla_computed_at = models.DateTimeField(_("SLA computed"), null=True, blank=True)
    # The last error the sweep met on this incident (it then retries later, not in a loop).
    sla_error = models.TextField(_("SLA error"), blank=True)

    version = models.PositiveIntegerField(_("version"), default=1)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["priority", "resolve_due_at"]
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        indexes = [
            # The sweep: cost grows with what is due, not with what is open.
            models.Index(
                fields=["next_sla_check_at"],
                name="incident_sla_due_idx",
                condition=models.Q(
                    state__in=["new", "acknowledged", "on_hold"], next_sla_check_at__isnull=False
                ),
            ),
            # The admin's default ordering, over all incidents and over open work alone (the
            # "open" filter would otherwise walk past every closed incident in the queue).
            models.Index(fields=["priority", "resolve_due_at"], name="incident_queue_idx"),
            models.Index(
                fields=["priority", "resolve_due_at"],
                name="incident_open_queue_idx",
                condition=models.Q(state__in=["new", "acknowledged", "on_hold"]),
            ),
            models.Index(fields=["state", "priority"], name="incident_state_idx"),
        ]
        permissions = [
            ("work_incident", _("Can work incidents (transitions)")),
            ("access_confidential", _("Can see and mark confidential incidents")),
        ]

    def __str__(self):
        return f"{self.reference} {self.title}"

    @property
    def reference(self):
        return format_reference(self.pk)

    @property
    def is_open(self):
        return self.state in OPEN_STATES


REFERENCE_PREFIX = "INC-"


def format_reference(pk):
    return f"{REFERENCE_PREFIX}{pk:06d}" if pk else f"{REFERENCE_PREFIX}new"


def parse_id(text):
    """A primary key typed or sent as text ("123"), or None: never a 500 for "²", "-1" or a
    number beyond the column's range."""
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not text or not (text.isascii() and text.isdigit()) or len(text) >= 19:
        return None
    return int(text)


def parse_reference(text):
    """The incident id in ``INC-000123``, ``inc-123`` or ``123``; None if it is not one."""
    text = text.strip().upper()
    if text.startswith(REFERENCE_PREFIX):
        text = text[len(REFERENCE_PREFIX) :]
    return parse_id(text)


class IncidentService(models.Model):
    """A service the incident affects, and the status it causes there."""

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="affected", verbose_name=_("incident")
    )
    service = models.ForeignKey(
        "services.Service",
        on_delete=models.CASCADE,
        related_name="incident_links",
        verbose_name=_("service"),
    )
    status = models.CharField(
        _("caused status"),
        max_length=32,
        choices=ServiceStatus.choices,
        default=ServiceStatus.PARTIAL_OUTAGE,
    )

    class Meta:
        verbose_name = _("affected service")
        verbose_name_plural = _("affected services")
        constraints = [
            models.UniqueConstraint(fields=["incident", "service"], name="unique_incident_service")
        ]
        # The unique constraint serves "services of an incident"; this serves "incidents of a
        # service" (the admin's service filter, the status of a service).
        indexes = [models.Index(fields=["service", "incident"], name="incident_service_rev_idx")]

    def __str__(self):
        return f"{self.service}: {self.get_status_display()}"


class IncidentPause(models.Model):
    """A period the SLA clock did not run: on hold, or resolved until a reopen."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="pauses")
    started_at = models.DateTimeField(_("from"))
    ended_at = models.DateTimeField(_("to"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        ordering = ["started_at"]
        verbose_name = _("SLA pause")
        verbose_name_plural = _("SLA pauses")

    def __str__(self):
        return f"{self.started_at:%Y-%m-%d %H:%M} – {self.ended_at or '…'} {self.reason}"


class EventKind(models.TextChoices):
    CREATED = "created", _("Created")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    ASSIGNED = "assigned", _("Assigned")
    PRIORITY_CHANGED = "priority_changed", _("Priority changed")
    HELD = "held", _("Put on hold")
    RESUMED = "resumed", _("Resumed")
    UPDATE_POSTED = "update_posted", _("Update posted")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")
    REOPENED = "reopened", _("Reopened")
    EDITED = "edited", _("Edited")
    SERVICES_CHANGED = "services_changed", _("Affected services changed")
    MAJOR_CHANGED = "major_changed", _("Major incident changed")
    PROBLEM_LINKED = "problem_linked", _("Linked to problem")
    SLA_WARNING = "sla_warning", _("SLA warning")
    SLA_BREACHED = "sla_breached", _("SLA breached")
    SLA_MOVED = "sla_moved", _("SLA deadlines moved")


class IncidentEvent(models.Model):
    """One line of the timeline: who did what, when, from what to what."""

    # No index of its own: incident_event_idx (incident, at) serves every read by incident
    # (and the cascade), and each index costs on every insert (the sweep writes thousands).
    incident = models.ForeignKey(
        Incident,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("incident"),
        db_index=False,
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    # Who acted (``itsm.actors.Actor``): its kind, the user when a person acted, and a label and
    # reference that outlive the user, token or integration (the label is what the timeline
    # shows; the reference is the user, token or integration id).
    actor_kind = models.CharField(
        _("actor kind"), max_length=16, choices=ActorKind.choices, default=ActorKind.SYSTEM
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("actor"),
        db_index=False,  # see incident_event_actor_idx
    )
    actor_label = models.CharField(_("actor label"), max_length=150, blank=True)
    actor_ref = models.CharField(_("actor reference"), max_length=64, blank=True)
    kind = models.CharField(_("kind"), max_length=32, choices=EventKind.choices)
    old_value = models.JSONField(_("from"), null=True, blank=True)
    new_value = models.JSONField(_("to"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    # The incident version this change produced: a stale form asks "what changed since my
    # version?" and is refused only where those changes touch what it changes. Empty for what
    # bumps no version (SLA signals, moved deadlines) and for events older than the column.
    version = models.PositiveIntegerField(_("version"), null=True, blank=True)

    objects = IncidentChildQuerySet.as_manager()

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("timeline event")
        verbose_name_plural = _("timeline")
        indexes = [
            models.Index(fields=["incident", "at"], name="incident_event_idx"),
            # Deleting a user finds their events by actor; events no person made (the sweep's,
            # integrations') have none and stay out of the index, so writing them costs less.
            models.Index(
                fields=["actor"],
                condition=models.Q(actor__isnull=False),
                name="incident_event_actor_idx",
            ),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_kind_display()}"


class IncidentUpdate(models.Model):
    """A work note (internal) or a public update customers see."""

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="updates", verbose_name=_("incident")
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("author"),
    )
    created_at = models.DateTimeField(_("posted"), default=timezone.now)
    is_public = models.BooleanField(_("public"), default=False)
    public_status = models.CharField(
        _("public status"), max_length=16, choices=PublicStatus.choices, blank=True
    )
    body = models.TextField(_("message"))

    objects = IncidentChildQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("update")
        verbose_name_plural = _("updates")
        indexes = [models.Index(fields=["incident", "created_at"], name="incident_update_idx")]

    def __str__(self):
        kind = _("public update") if self.is_public else _("work note")
        return f"{kind} {self.created_at:%Y-%m-%d %H:%M}"


class SlaSignal(models.Model):
    """A warning or breach already raised. The unique constraint makes each one happen once
    per incident, target and threshold, whatever number of sweeps race for it."""

    # No index of its own: unique_sla_signal starts with the incident and serves its reads.
    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="sla_signals", db_index=False
    )
    target = models.CharField(_("target"), max_length=16, choices=SlaTargetKind.choices)
    # Per mille of the target: 750 and 900 are warnings, 1000 is the breach.
    threshold = models.PositiveSmallIntegerField(_("threshold (‰)"))
    due_at = models.DateTimeField(_("crossed at"))
    raised_at = models.DateTimeField(_("raised"), default=timezone.now)

    objects = IncidentChildQuerySet.as_manager()

    class Meta:
        verbose_name = _("SLA signal")
        verbose_name_plural = _("SLA signals")
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "target", "threshold"], name="unique_sla_signal"
            )
        ]

    def __str__(self):
        return f"{self.target} {self.threshold / 10:g}% at {self.due_at:%Y-%m-%d %H:%M}"

    @property
    def is_breach(self):
        return self.threshold >= 1000

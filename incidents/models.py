"""Incidents: the record of a disruption, its timeline, its public updates and its SLA clock.

Every change goes through ``incidents/workflow.py``; nothing here holds a business rule.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from incidents import alert_payloads, visibility
from itsm.actors import ActorKind
from services.models import Priority, ServiceStatus

# The statuses an incident (or an alert rule) can cause a service: every one but operational.
# Its own name in the OpenAPI schema (HurtStatusEnum): as "service_status" it took the name of
# the service's full status enum, and the service's status was then documented without
# "operational" (schemathesis found it).
HURT_STATUS_CHOICES = [c for c in ServiceStatus.choices if c[0] != ServiceStatus.OPERATIONAL]


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
    ALERTMANAGER = "alertmanager", _("Alertmanager")
    GRAFANA = "grafana", _("Grafana")
    EVENTS = "events", _("Events API")
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
    # When the escalation sweep pages the next level (``incidents.escalation``); NULL when
    # nothing escalates. Indexed only where set, see Meta.
    next_escalation_at = models.DateTimeField(_("next escalation"), null=True, blank=True)
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
            # The escalation sweep, likewise: only the incidents with a page due.
            models.Index(
                fields=["next_escalation_at"],
                name="incident_escalation_due_idx",
                condition=models.Q(
                    state__in=["new", "acknowledged", "on_hold"], next_escalation_at__isnull=False
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
            # The API's list (``incidents.api``): its cursor walks (-opened_at, -id), alone or
            # within one state, and stops after a page instead of sorting every match. Neither
            # column changes once written, so a transition's UPDATE maintains them only when it
            # already maintains ``incident_state_idx``.
            models.Index(fields=["-opened_at", "-id"], name="incident_api_list_idx"),
            models.Index(fields=["state", "-opened_at", "-id"], name="incident_api_state_idx"),
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


class IncidentMetrics(Incident):
    """The metrics dashboard's place in the admin index (a proxy: no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = _("metrics")
        verbose_name_plural = _("metrics")


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
    PAGED = "paged", _("Paged")


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
    # The same public message in Romanian: Romanian subscribers and the Romanian status page get
    # it; where it is empty they get ``body``.
    # db_default: rows inserted by SQL (bulk loads, benchmarks) get it too.
    body_ro = models.TextField(_("message in Romanian"), blank=True, default="", db_default="")

    objects = IncidentChildQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("update")
        verbose_name_plural = _("updates")
        indexes = [models.Index(fields=["incident", "created_at"], name="incident_update_idx")]

    def __str__(self):
        kind = _("public update") if self.is_public else _("work note")
        return f"{kind} {self.created_at:%Y-%m-%d %H:%M}"

    def text_in(self, language):
        """The message in ``language``, falling back to the other one."""
        return (self.body_ro or self.body) if language == "ro" else (self.body or self.body_ro)


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


# --- alerts in ---------------------------------------------------------------------------------
#
# Monitoring pushes alerts (incidents.ingest); each alert is a row of its own, routed by the first
# matching rule of its integration to an incident opened, noted and resolved through the workflow.


class IntegrationSource(models.TextChoices):
    ALERTMANAGER = "alertmanager", _("Prometheus Alertmanager")
    GRAFANA = "grafana", _("Grafana alerting")
    EVENTS = "events", _("Events API (PagerDuty v2)")


class Grouping(models.TextChoices):
    FINGERPRINT = "fingerprint", _("One incident per alert (fingerprint)")
    GROUP_KEY = "group_key", _("One incident per notification group (group key)")
    LABELS = "labels", _("One incident per value of the chosen labels")


class AlertStatus(models.TextChoices):
    FIRING = "firing", _("Firing")
    RESOLVED = "resolved", _("Resolved")


class AlertRule(models.Model):
    """Where an integration's alerts go: the first enabled rule (by ``order``) whose matchers
    all match an alert's labels decides its service, priority, title and grouping."""

    source = models.CharField(_("integration"), max_length=16, choices=IntegrationSource.choices)
    name = models.CharField(_("name"), max_length=120)
    order = models.PositiveIntegerField(
        _("order"), default=100, help_text=_("Rules are tried from the lowest order up.")
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    matchers = models.JSONField(
        _("label matchers"),
        default=dict,
        blank=True,
        help_text=_(
            'Label name to value, all of which must match: "critical" (equal), "=~crit.*" '
            '(regular expression, whole value), "!=info" (not equal), "!~test.*" (does not '
            "match). Empty: every alert of the integration."
        ),
    )
    service = models.ForeignKey(
        "services.Service",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alert_rules",
        verbose_name=_("service"),
    )
    service_status = models.CharField(
        _("service status caused"),
        max_length=32,
        choices=HURT_STATUS_CHOICES,
        default=ServiceStatus.PARTIAL_OUTAGE,
    )
    impact = models.PositiveSmallIntegerField(_("impact"), choices=Level.choices, default=2)
    urgency = models.PositiveSmallIntegerField(_("urgency"), choices=Level.choices, default=2)
    title_template = models.CharField(
        _("title template"),
        max_length=200,
        blank=True,
        help_text=_(
            'Label and annotation names in braces, e.g. "{alertname} on {instance}"; a '
            "missing name renders empty. Empty: the alert's summary or alert name."
        ),
    )
    grouping = models.CharField(
        _("grouping"), max_length=16, choices=Grouping.choices, default=Grouping.GROUP_KEY
    )
    group_by = models.JSONField(
        _("group by labels"),
        default=list,
        blank=True,
        help_text=_('For "per value of the chosen labels": the label names, e.g. ["cluster"].'),
    )
    auto_resolve = models.BooleanField(
        _("resolve automatically"),
        default=True,
        help_text=_("Resolve the incident when every one of its alerts has resolved."),
    )

    class Meta:
        ordering = ["source", "order", "id"]
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        indexes = [models.Index(fields=["source", "enabled", "order"], name="alert_rule_pick_idx")]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        problem = alert_payloads.matchers_problem(self.matchers)
        if problem:
            errors["matchers"] = problem
        problem = alert_payloads.template_problem(self.title_template)
        if problem:
            errors["title_template"] = problem
        if self.grouping == Grouping.LABELS and not (
            isinstance(self.group_by, list)
            and self.group_by
            and all(isinstance(n, str) and n for n in self.group_by)
        ):
            errors["group_by"] = _("Give a list of label names to group by.")
        if errors:
            raise ValidationError(errors)


class AlertGroup(models.Model):
    """The incident that a group of alerts (one grouping key of one rule) feeds. At most one
    group per key is open: new alerts of the key attach to its incident; two alerts of a new
    group racing each other meet on this row (its unique constraint), so they open one incident."""

    source = models.CharField(_("integration"), max_length=16, choices=IntegrationSource.choices)
    key = models.CharField(_("group key"), max_length=1000)
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    incident = models.ForeignKey(
        Incident,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alert_groups",
        verbose_name=_("incident"),
    )
    is_open = models.BooleanField(_("open"), default=True)
    opened_at = models.DateTimeField(_("opened"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    class Meta:
        verbose_name = _("alert group")
        verbose_name_plural = _("alert groups")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "key"],
                condition=models.Q(is_open=True),
                name="one_open_alert_group",
            )
        ]

    def __str__(self):
        return f"{self.source} {self.key}"


class Alert(models.Model):
    """One alert as its source identifies it (source, fingerprint), over its whole life: each
    repeat moves ``last_seen``, each resolve or re-fire its status."""

    source = models.CharField(_("integration"), max_length=16, choices=IntegrationSource.choices)
    fingerprint = models.CharField(_("fingerprint"), max_length=255)
    group_key = models.CharField(_("group key"), max_length=1000, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=AlertStatus.choices)
    labels = models.JSONField(_("labels"), default=dict)
    annotations = models.JSONField(_("annotations"), default=dict)
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    first_seen = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen = models.DateTimeField(_("last seen"), default=timezone.now)
    incident = models.ForeignKey(
        Incident,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
        verbose_name=_("incident"),
    )
    rule = models.ForeignKey(
        AlertRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
        verbose_name=_("rule"),
    )
    payload = models.JSONField(_("raw payload"), default=dict)

    class Meta:
        ordering = ["-last_seen", "-id"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [
            models.UniqueConstraint(fields=["source", "fingerprint"], name="unique_alert")
        ]
        indexes = [
            # "is any alert of this incident still firing?", asked on every resolve.
            models.Index(fields=["incident", "status"], name="alert_incident_status_idx"),
            models.Index(fields=["-last_seen"], name="alert_last_seen_idx"),
        ]

    def __str__(self):
        name = self.labels.get("alertname") if isinstance(self.labels, dict) else None
        return f"{name or self.fingerprint} ({self.get_status_display()})"


class RejectedPayload(models.Model):
    """A body an integration endpoint refused, kept with the reason so staff see what was sent."""

    source = models.CharField(_("integration"), max_length=16, choices=IntegrationSource.choices)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    status_code = models.PositiveSmallIntegerField(_("answered"), default=400)
    error = models.TextField(_("error"))
    body = models.TextField(_("body (truncated)"), blank=True)
    body_size = models.PositiveIntegerField(_("body size (bytes)"), default=0)
    client_ip = models.GenericIPAddressField(_("client address"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("rejected alert payload")
        verbose_name_plural = _("rejected alert payloads")
        indexes = [models.Index(fields=["-received_at"], name="rejected_payload_recent_idx")]

    def __str__(self):
        return f"{self.get_source_display()} {self.received_at:%Y-%m-%d %H:%M:%S}"


# Post-incident reviews live in their own module; imported here so that Django finds them.
from incidents.reviews import ActionItem, ActionItemReminder, PostIncidentReview  # noqa: E402, F401

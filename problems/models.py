"""Problem records: the underlying cause behind one or more incidents, its investigation, the
known error (a workaround) and the permanent fix; and the recurrence proposals that suggest one.

Every change goes through ``problems/workflow.py``; nothing here holds a business rule.
Incidents link to a problem through ``incidents.Incident.problem`` (``problem.incidents``).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from itsm.actors import ActorKind, as_actor
from services.models import Priority


class ProblemState(models.TextChoices):
    NEW = "new", _("New")
    INVESTIGATING = "investigating", _("Investigating")
    KNOWN_ERROR = "known_error", _("Known error")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


OPEN_PROBLEM_STATES = (ProblemState.NEW, ProblemState.INVESTIGATING, ProblemState.KNOWN_ERROR)

REFERENCE_PREFIX = "PRB-"


def format_reference(pk):
    return f"{REFERENCE_PREFIX}{pk:06d}" if pk else f"{REFERENCE_PREFIX}new"


def parse_reference(text):
    """The problem id in ``PRB-000012``, ``prb-12`` or ``12``; None if it is not one."""
    text = (text or "").strip().upper().removeprefix(REFERENCE_PREFIX)
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def can_see_problems(actor):
    """Problems are internal records with no customer: a token bound to a customer
    organisation reads none, nor does an inactive user; staff, unbound tokens and the system
    read them all."""
    actor = as_actor(actor)
    if actor.kind == ActorKind.TOKEN and actor.organization_id is not None:
        return False
    return not (actor.kind == ActorKind.USER and not actor.user.is_active)


class ProblemQuerySet(models.QuerySet):
    def visible_to(self, actor):
        return self if can_see_problems(actor) else self.none()

    def known_errors(self):
        """Problems in ``known_error`` with a workaround to quote."""
        return self.filter(state=ProblemState.KNOWN_ERROR).exclude(workaround="")

    def known_errors_for_services(self, service_ids):
        """Known errors on any of ``service_ids``, each once (a subquery, not a join: no
        DISTINCT over the text columns)."""
        through = Problem.services.through
        matching = through.objects.filter(service_id__in=service_ids).values("problem_id")
        return self.known_errors().filter(pk__in=matching)


class Problem(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=ProblemState.choices, default=ProblemState.NEW
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=Priority.choices, default=Priority.P3, db_default=Priority.P3
    )
    services = models.ManyToManyField(
        "services.Service",
        blank=True,
        related_name="problems",
        verbose_name=_("affected services"),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_problems",
        verbose_name=_("owner"),
    )
    group = models.ForeignKey(
        "services.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="problems",
        verbose_name=_("group"),
    )
    root_cause = models.TextField(_("root cause"), blank=True, default="", db_default="")
    workaround = models.TextField(
        _("workaround"),
        blank=True,
        default="",
        db_default="",
        help_text=_("What an agent can do until the permanent fix; quoted on linked incidents."),
    )
    permanent_fix = models.TextField(_("permanent fix"), blank=True, default="", db_default="")
    version = models.PositiveIntegerField(_("version"), default=1, db_default=1)

    created_at = models.DateTimeField(_("created"), default=timezone.now)
    investigating_at = models.DateTimeField(_("investigation started"), null=True, blank=True)
    known_error_at = models.DateTimeField(_("known error since"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = ProblemQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("problem")
        verbose_name_plural = _("problems")
        indexes = [models.Index(fields=["state", "priority"], name="problem_state_idx")]
        permissions = [("work_problem", _("Can work problems (transitions, linking)"))]

    def __str__(self):
        return f"{self.reference} {self.title}"

    @property
    def reference(self):
        return format_reference(self.pk)

    @property
    def is_open(self):
        return self.state in OPEN_PROBLEM_STATES


class ProblemEventKind(models.TextChoices):
    CREATED = "created", _("Created")
    INVESTIGATING = "investigating", _("Investigation started")
    KNOWN_ERROR = "known_error", _("Known error recorded")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")
    REOPENED = "reopened", _("Reopened")
    EDITED = "edited", _("Edited")
    SERVICES_CHANGED = "services_changed", _("Affected services changed")
    INCIDENT_LINKED = "incident_linked", _("Incident linked")
    INCIDENT_UNLINKED = "incident_unlinked", _("Incident unlinked")


class ProblemEvent(models.Model):
    """One line of a problem's timeline: who did what, when, from what to what (typed values
    as on incidents': a person, group, service or incident is {"id", "label"})."""

    problem = models.ForeignKey(
        Problem,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("problem"),
        db_index=False,  # problem_event_idx (problem, at) serves every read by problem
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
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
    )
    actor_label = models.CharField(_("actor label"), max_length=150, blank=True)
    actor_ref = models.CharField(_("actor reference"), max_length=64, blank=True)
    kind = models.CharField(_("kind"), max_length=32, choices=ProblemEventKind.choices)
    old_value = models.JSONField(_("from"), null=True, blank=True)
    new_value = models.JSONField(_("to"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    # The problem version this change produced; empty for links (they bump no version).
    version = models.PositiveIntegerField(_("version"), null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("problem timeline event")
        verbose_name_plural = _("problem timeline")
        indexes = [models.Index(fields=["problem", "at"], name="problem_event_idx")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.get_kind_display()}"


class ProposalState(models.TextChoices):
    OPEN = "open", _("Open")
    ACCEPTED = "accepted", _("Problem opened")
    DISMISSED = "dismissed", _("Dismissed")


class RecurrenceProposal(models.Model):
    """A service had N or more incidents within the window: a problem is proposed, once per
    cluster. The cluster is keyed by its service and its first incident's opening time
    (``window_start``); the unique constraint makes two sweeps racing for it write one row.
    A later cluster counts only incidents opened after this one's last (``window_end``)."""

    service = models.ForeignKey(
        "services.Service",
        on_delete=models.CASCADE,
        related_name="recurrence_proposals",
        verbose_name=_("service"),
        db_index=False,  # unique_recurrence_cluster starts with the service
    )
    window_start = models.DateTimeField(_("first incident opened"))
    window_end = models.DateTimeField(_("last incident opened"))
    incident_count = models.PositiveIntegerField(_("incidents"))
    # The incidents of the cluster (ids): kept as data, since problems sit below incidents.
    incident_ids = models.JSONField(_("incident ids"), default=list)
    state = models.CharField(
        _("state"), max_length=16, choices=ProposalState.choices, default=ProposalState.OPEN
    )
    problem = models.ForeignKey(
        Problem,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="proposals",
        verbose_name=_("problem"),
    )
    created_at = models.DateTimeField(_("proposed"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("recurrence proposal")
        verbose_name_plural = _("recurrence proposals")
        constraints = [
            models.UniqueConstraint(
                fields=["service", "window_start"], name="unique_recurrence_cluster"
            )
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(state="open"),
                name="recurrence_open_idx",
            )
        ]

    def __str__(self):
        return _("%(count)d incidents on %(service)s since %(start)s") % {
            "count": self.incident_count,
            "service": self.service,
            "start": f"{self.window_start:%Y-%m-%d %H:%M}",
        }

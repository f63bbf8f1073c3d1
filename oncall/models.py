"""On-call schedules (a team's rotations and overrides) and escalation policies (who is paged,
in which order, how long apart), plus the record of each escalation and page.

Escalations name their subject generically (``subject_id``: an incident id), like the outbox:
this app sits below incidents and knows none."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oncall import rotation


def _feed_key():
    return secrets.token_urlsafe(16)


def _valid_zone(value):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(_("%(zone)s is not an IANA time zone.") % {"zone": value}) from exc


class Schedule(models.Model):
    team = models.ForeignKey(
        "services.Team", on_delete=models.CASCADE, related_name="schedules", verbose_name=_("team")
    )
    name = models.CharField(_("name"), max_length=120)
    # Part of the signed calendar feed URLs: changing it revokes every URL handed out.
    feed_key = models.CharField(_("feed key"), max_length=40, default=_feed_key, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("on-call schedule")
        verbose_name_plural = _("on-call schedules")

    def __str__(self):
        return self.name


class ShiftKind(models.TextChoices):
    DAILY = "daily", _("Daily")
    WEEKLY = "weekly", _("Weekly")
    CUSTOM = "custom", _("Custom (hours)")


class Layer(models.Model):
    """One rotation of a schedule. A higher ``level`` wins over a lower one where both have
    someone. The handoff time and weekday are those of ``start`` in ``zone``."""

    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="layers", verbose_name=_("schedule")
    )
    name = models.CharField(_("name"), max_length=120, blank=True)
    level = models.PositiveSmallIntegerField(_("level"), default=1)
    start = models.DateTimeField(_("first handoff"))
    zone = models.CharField(
        _("time zone"), max_length=64, default="Europe/Bucharest", validators=[_valid_zone]
    )
    shift_kind = models.CharField(
        _("shift length"), max_length=8, choices=ShiftKind.choices, default=ShiftKind.WEEKLY
    )
    shift_hours = models.PositiveIntegerField(
        _("custom shift hours"),
        default=12,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 28)],
    )
    # Optional restriction: the layer has someone only on these local weekdays (0 = Monday),
    # between these local times (an end at or before the start runs past midnight).
    restrict_weekdays = models.JSONField(_("only on weekdays"), default=list, blank=True)
    restrict_from = models.TimeField(_("only from"), null=True, blank=True)
    restrict_to = models.TimeField(_("only until"), null=True, blank=True)

    class Meta:
        ordering = ["schedule", "level", "pk"]
        verbose_name = _("rotation layer")
        verbose_name_plural = _("rotation layers")

    def __str__(self):
        return self.name or _("Layer %(level)s") % {"level": self.level}

    def clean(self):
        days = self.restrict_weekdays or []
        if not isinstance(days, list) or any(d not in range(7) for d in days):
            raise ValidationError(
                {"restrict_weekdays": _("A list of weekdays from 0 (Monday) to 6 (Sunday).")}
            )
        if (self.restrict_from is None) != (self.restrict_to is None):
            raise ValidationError(
                {"restrict_to": _("Give both times of the restriction, or none.")}
            )

    @property
    def shift(self):
        if self.shift_kind == ShiftKind.DAILY:
            return rotation.DAILY
        if self.shift_kind == ShiftKind.WEEKLY:
            return rotation.WEEKLY
        return timedelta(hours=self.shift_hours)

    def as_rotation(self, members):
        """The plain value for ``oncall.rotation`` (``members``: user ids in order), or None
        when nobody is in it."""
        if not members:
            return None
        restrictions = ()
        if self.restrict_weekdays or self.restrict_from is not None:
            start = _minutes(self.restrict_from) if self.restrict_from else 0
            end = _minutes(self.restrict_to) if self.restrict_to else rotation.MINUTES_PER_DAY
            days = frozenset(self.restrict_weekdays or range(7))
            restrictions = (rotation.Restriction(days, start, end),)
        return rotation.Layer(tuple(members), self.start, self.zone, self.shift, restrictions)


def _minutes(value):
    return value.hour * 60 + value.minute


class LayerMember(models.Model):
    layer = models.ForeignKey(
        Layer, on_delete=models.CASCADE, related_name="members", verbose_name=_("layer")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("person"),
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["layer", "position", "pk"]
        verbose_name = _("person in rotation")
        verbose_name_plural = _("people in rotation")

    def __str__(self):
        return str(self.user)


class Override(models.Model):
    """Someone covers a range of a schedule for whoever the layers put there."""

    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="overrides", verbose_name=_("schedule")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("person"),
    )
    start = models.DateTimeField(_("from"))
    end = models.DateTimeField(_("until"))
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["schedule", "start", "pk"]
        verbose_name = _("override")
        verbose_name_plural = _("overrides")
        indexes = [models.Index(fields=["schedule", "end"], name="override_schedule_end_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="override_end_after_start"
            )
        ]

    def __str__(self):
        return f"{self.user} {self.start:%Y-%m-%d %H:%M}–{self.end:%Y-%m-%d %H:%M}"

    def clean(self):
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": _("The end must be after the start.")})


class EscalationPolicy(models.Model):
    """Levels paged one after the other; the whole list is repeated ``repeat`` more times while
    nobody acknowledges. Services (or teams) name it; the default one serves the rest."""

    name = models.CharField(_("name"), max_length=120)
    is_default = models.BooleanField(_("default"), default=False)
    repeat = models.PositiveSmallIntegerField(
        _("repeat"), default=0, validators=[MaxValueValidator(10)]
    )
    starts_on_urgent = models.BooleanField(
        _("starts on new P1/P2 and alert incidents"),
        default=True,
        help_text=_("Otherwise only an SLA breach starts this policy."),
    )
    services = models.ManyToManyField(
        "services.Service",
        blank=True,
        related_name="+",
        verbose_name=_("services"),
    )
    teams = models.ManyToManyField(
        "services.Team", blank=True, related_name="+", verbose_name=_("teams")
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("escalation policy")
        verbose_name_plural = _("escalation policies")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_escalation_policy",
            )
        ]

    def __str__(self):
        return self.name


class TargetKind(models.TextChoices):
    SCHEDULE = "schedule", _("Who is on call in a schedule")
    USER = "user", _("A person")
    TEAM = "team", _("A team's group address")
    TEAM_CONTACT = "team_contact", _("The escalation contact of the incident's team")


class EscalationLevel(models.Model):
    policy = models.ForeignKey(
        EscalationPolicy, on_delete=models.CASCADE, related_name="levels", verbose_name=_("policy")
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    target = models.CharField(_("notify"), max_length=16, choices=TargetKind.choices)
    schedule = models.ForeignKey(
        Schedule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("schedule"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("person"),
    )
    team = models.ForeignKey(
        "services.Team",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("team"),
    )
    wait_minutes = models.PositiveIntegerField(
        _("then wait (minutes)"), default=15, validators=[MaxValueValidator(24 * 60)]
    )

    class Meta:
        ordering = ["policy", "position", "pk"]
        verbose_name = _("escalation level")
        verbose_name_plural = _("escalation levels")

    def __str__(self):
        return f"{self.position}: {self.get_target_display()}"

    def clean(self):
        needed = {
            TargetKind.SCHEDULE: "schedule",
            TargetKind.USER: "user",
            TargetKind.TEAM: "team",
        }.get(self.target)
        if needed and getattr(self, f"{needed}_id") is None:
            raise ValidationError({needed: _("Choose whom this level notifies.")})


class Escalation(models.Model):
    """The escalation of one subject (an incident): which policy, since when, and whether an
    acknowledgement stopped it. ``run`` counts restarts (a breach after an acknowledgement)."""

    subject_id = models.BigIntegerField(_("incident id"), unique=True)
    policy = models.ForeignKey(
        EscalationPolicy, on_delete=models.PROTECT, related_name="+", verbose_name=_("policy")
    )
    run = models.PositiveIntegerField(_("run"), default=1)
    reason = models.CharField(_("reason"), max_length=32)
    started_at = models.DateTimeField(_("started"))
    stopped_at = models.DateTimeField(_("stopped"), null=True, blank=True)

    class Meta:
        verbose_name = _("escalation")
        verbose_name_plural = _("escalations")

    def __str__(self):
        return f"#{self.subject_id} {self.policy}"


class Page(models.Model):
    """One level of one round paged: unique, so two sweeps never page a level twice."""

    escalation = models.ForeignKey(
        Escalation, on_delete=models.CASCADE, related_name="pages", verbose_name=_("escalation")
    )
    run = models.PositiveIntegerField(_("run"))
    round = models.PositiveSmallIntegerField(_("round"))
    level = models.PositiveSmallIntegerField(_("level"))
    at = models.DateTimeField(_("paged"))
    recipients = models.JSONField(_("recipients"), default=list)
    # The acknowledge link is single-use: set by the first acknowledgement through it.
    used_at = models.DateTimeField(_("acknowledged through link"), null=True, blank=True)

    class Meta:
        ordering = ["escalation", "run", "round", "level"]
        verbose_name = _("page")
        verbose_name_plural = _("pages")
        constraints = [
            models.UniqueConstraint(
                fields=["escalation", "run", "round", "level"], name="unique_page_per_level"
            )
        ]

    def __str__(self):
        return f"{self.escalation} {self.round}.{self.level}"

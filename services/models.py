"""The service catalog: services and their dependencies, customers, subscriptions, SLA policies,
business calendars and maintenance windows."""

import datetime as dt
import zoneinfo

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from itsm.publishing import public_side_changed
from services import visibility


class VisibleQuerySet(models.QuerySet):
    """Rows narrowed to what an actor may read (``services.visibility``): ``rule`` names the
    function of that module that gives the ``Q``."""

    rule = None

    def visible_to(self, actor):
        return visibility.scope(self, getattr(visibility, self.rule)(actor))


class ServiceQuerySet(VisibleQuerySet):
    rule = "service_q"


class OrganizationQuerySet(VisibleQuerySet):
    rule = "organization_q"


class ContactQuerySet(VisibleQuerySet):
    rule = "contact_q"


class SubscriptionQuerySet(VisibleQuerySet):
    rule = "subscription_q"


class MaintenanceQuerySet(VisibleQuerySet):
    rule = "maintenance_q"


class ServiceStatus(models.TextChoices):
    """Atlassian Statuspage's component status, ordered from best to worst."""

    OPERATIONAL = "operational", _("Operational")
    DEGRADED_PERFORMANCE = "degraded_performance", _("Degraded performance")
    PARTIAL_OUTAGE = "partial_outage", _("Partial outage")
    MAJOR_OUTAGE = "major_outage", _("Major outage")
    UNDER_MAINTENANCE = "under_maintenance", _("Under maintenance")


# How bad each status is, for "the worst status wins". Maintenance ranks above degraded
# performance but below any outage: an outage during maintenance is still an outage.
STATUS_SEVERITY = {
    ServiceStatus.OPERATIONAL: 0,
    ServiceStatus.DEGRADED_PERFORMANCE: 1,
    ServiceStatus.UNDER_MAINTENANCE: 2,
    ServiceStatus.PARTIAL_OUTAGE: 3,
    ServiceStatus.MAJOR_OUTAGE: 4,
}


def worst_status(statuses):
    """The worst of some statuses, ``operational`` when there are none."""
    return max(statuses, key=lambda s: STATUS_SEVERITY[s], default=ServiceStatus.OPERATIONAL)


class Criticality(models.IntegerChoices):
    CRITICAL = 1, _("Critical")
    HIGH = 2, _("High")
    MEDIUM = 3, _("Medium")
    LOW = 4, _("Low")


class Priority(models.IntegerChoices):
    P1 = 1, "P1"
    P2 = 2, "P2"
    P3 = 3, "P3"
    P4 = 4, "P4"
    P5 = 5, "P5"


class Language(models.TextChoices):
    EN = "en", _("English")
    RO = "ro", _("Romanian")


class ServiceGroup(models.Model):
    """A heading on the status page ("Payments", "Infrastructure")."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    display_order = models.PositiveIntegerField(_("display order"), default=0)

    class Meta:
        ordering = ["display_order", "name"]
        verbose_name = _("service group")
        verbose_name_plural = _("service groups")

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        public_side_changed(everything=True)  # headings of the status page

    def delete(self, *args, **kwargs):
        public_side_changed(everything=True)
        return super().delete(*args, **kwargs)


class Service(models.Model):
    name = models.CharField(_("name"), max_length=120)
    slug = models.SlugField(_("slug"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    group = models.ForeignKey(
        ServiceGroup,
        verbose_name=_("group"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="services",
    )
    is_public = models.BooleanField(
        _("public"), default=True, help_text=_("Shown on the public status page.")
    )
    owner_team = models.ForeignKey(
        Group,
        verbose_name=_("owner team"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_services",
    )
    criticality = models.PositiveSmallIntegerField(
        _("criticality"), choices=Criticality.choices, default=Criticality.MEDIUM
    )
    display_order = models.PositiveIntegerField(_("display order"), default=0)
    status = models.CharField(
        _("current status"),
        max_length=32,
        choices=ServiceStatus.choices,
        default=ServiceStatus.OPERATIONAL,
        help_text=_("Derived from open incidents and maintenance unless pinned by staff."),
    )
    status_pinned = models.BooleanField(
        _("status pinned"),
        default=False,
        help_text=_("Keep the status set by staff; incidents and maintenance do not change it."),
    )
    default_sla_policy = models.ForeignKey(
        "SlaPolicy",
        verbose_name=_("default SLA policy"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="services",
    )
    dependencies = models.ManyToManyField(
        "self",
        through="ServiceDependency",
        through_fields=("service", "depends_on"),
        symmetrical=False,
        related_name="dependents",
        blank=True,
        verbose_name=_("depends on"),
    )
    # What an hour in each status costs (the currency is settings.DOWNTIME_COST_CURRENCY); a
    # contract may set its own (``Contract``). db_default: rows copied in by SQL need no value.
    cost_major_per_hour = models.DecimalField(
        _("cost per hour of major outage"),
        max_digits=12,
        decimal_places=2,
        default=0,
        db_default=0,
        validators=[MinValueValidator(0)],
    )
    cost_partial_per_hour = models.DecimalField(
        _("cost per hour of partial outage"),
        max_digits=12,
        decimal_places=2,
        default=0,
        db_default=0,
        validators=[MinValueValidator(0)],
    )
    cost_degraded_per_hour = models.DecimalField(
        _("cost per hour of degraded performance"),
        max_digits=12,
        decimal_places=2,
        default=0,
        db_default=0,
        validators=[MinValueValidator(0)],
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["display_order", "name"]
        verbose_name = _("service")
        verbose_name_plural = _("services")

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        before = (
            Service.objects.filter(pk=self.pk).values_list("default_sla_policy_id", "is_public")
            if self.pk is not None
            else []
        )
        moved = bool(before) and before[0][0] != self.default_sla_policy_id
        went_public = self.is_public and (not before or not before[0][1])
        super().save(*args, **kwargs)
        if moved:
            sla_inputs_changed(services=[self.pk])
        if went_public:
            Subscription.add_followers(self)
        # Its name, group, order or visibility may show everywhere on the public side.
        public_side_changed(everything=True)

    def delete(self, *args, **kwargs):
        public_side_changed(everything=True)
        return super().delete(*args, **kwargs)


class CauseKind(models.TextChoices):
    """What put a service in a status. Incidents and maintenance windows are named by kind and
    id so that the catalog needs to know neither model."""

    INCIDENT = "incident", _("Incident")
    MAINTENANCE = "maintenance", _("Maintenance")
    PIN = "pin", _("Set by staff")
    DEPENDENCY = "dependency", _("Derived from a dependency")


IMPACT_CAUSES = (CauseKind.INCIDENT, CauseKind.MAINTENANCE)


class IntervalQuerySet(models.QuerySet):
    def overlapping(self, start, end):
        """The intervals that overlap the half-open range [start, end)."""
        return self.filter(valid_from__lt=end).filter(
            models.Q(valid_to__isnull=True) | models.Q(valid_to__gt=start)
        )


class ServiceImpact(models.Model):
    """A cause (an incident, a maintenance window) puts a service in a status from
    ``valid_from`` until ``valid_to`` (open: still does). Written by ``services.workflow``'s
    ``set_impacts``/``end_impacts``; the service's status is derived from its open impacts, and
    the closed ones answer "how long was Payments in major outage because of INC-42"."""

    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="impacts", verbose_name=_("service")
    )
    cause_kind = models.CharField(
        _("cause"), max_length=16, choices=[(c.value, c.label) for c in IMPACT_CAUSES]
    )
    cause_id = models.PositiveBigIntegerField(_("cause id"))
    status = models.CharField(_("caused status"), max_length=32, choices=ServiceStatus.choices)
    valid_from = models.DateTimeField(_("from"))
    valid_to = models.DateTimeField(_("to"), null=True, blank=True)

    objects = IntervalQuerySet.as_manager()

    class Meta:
        ordering = ["valid_from", "id"]
        verbose_name = _("service impact")
        verbose_name_plural = _("service impacts")
        constraints = [
            # A cause has at most one open impact on a service (its status may change: the old
            # interval ends, a new one starts).
            models.UniqueConstraint(
                fields=["service", "cause_kind", "cause_id"],
                condition=models.Q(valid_to__isnull=True),
                name="service_impact_one_open",
            ),
            models.CheckConstraint(
                condition=models.Q(valid_to__isnull=True)
                | models.Q(valid_to__gte=models.F("valid_from")),
                name="service_impact_ends_after_start",
            ),
        ]
        indexes = [
            # "What does this cause do", open or in the past.
            models.Index(
                fields=["cause_kind", "cause_id", "service"], name="service_impact_cause_idx"
            ),
            # "The impacts of service S over [a, b)".
            models.Index(fields=["service", "valid_from"], name="service_impact_when_idx"),
        ]

    def __str__(self):
        return f"{self.service_id} {self.status} ({self.cause_kind} {self.cause_id})"


class ServiceStatusInterval(models.Model):
    """One interval of a service's status history: ``status`` from ``valid_from`` until
    ``valid_to`` (open: the current status), and what caused it (blank: nothing hurt the
    service). Written in the transaction that changes ``Service.status``."""

    service = models.ForeignKey(
        Service,
        on_delete=models.CASCADE,
        related_name="status_history",
        verbose_name=_("service"),
    )
    status = models.CharField(_("status"), max_length=32, choices=ServiceStatus.choices)
    cause_kind = models.CharField(_("cause"), max_length=16, choices=CauseKind.choices, blank=True)
    cause_id = models.PositiveBigIntegerField(_("cause id"), null=True, blank=True)
    valid_from = models.DateTimeField(_("from"))
    valid_to = models.DateTimeField(_("to"), null=True, blank=True)

    objects = IntervalQuerySet.as_manager()

    class Meta:
        ordering = ["service", "valid_from", "id"]
        verbose_name = _("service status interval")
        verbose_name_plural = _("service status history")
        constraints = [
            # One current status per service; it also indexes the open intervals.
            models.UniqueConstraint(
                fields=["service"],
                condition=models.Q(valid_to__isnull=True),
                name="service_status_one_open",
            ),
        ]
        # "Status of service S over [a, b)": valid_from < b on this index, valid_to > a on the
        # rows it finds.
        indexes = [models.Index(fields=["service", "valid_from"], name="service_status_when_idx")]

    def __str__(self):
        until = self.valid_to or "…"
        return f"{self.service_id} {self.status} {self.valid_from:%Y-%m-%d %H:%M} – {until}"


class ServiceDependency(models.Model):
    """``service`` depends on ``depends_on``: when ``depends_on`` is hurt, so is ``service``."""

    service = models.ForeignKey(
        Service,
        on_delete=models.CASCADE,
        related_name="dependency_links",
        verbose_name=_("service"),
    )
    depends_on = models.ForeignKey(
        Service,
        on_delete=models.CASCADE,
        related_name="dependent_links",
        verbose_name=_("depends on"),
    )

    class Meta:
        verbose_name = _("service dependency")
        verbose_name_plural = _("service dependencies")
        constraints = [
            models.UniqueConstraint(fields=["service", "depends_on"], name="unique_dependency"),
            models.CheckConstraint(
                condition=~models.Q(service=models.F("depends_on")), name="no_self_dependency"
            ),
        ]

    def __str__(self):
        return f"{self.service} → {self.depends_on}"

    def clean(self):
        from services.graph import would_create_cycle

        if self.service_id and self.depends_on_id:
            if self.service_id == self.depends_on_id:
                raise ValidationError({"depends_on": _("A service cannot depend on itself.")})
            if would_create_cycle(self.service_id, self.depends_on_id):
                raise ValidationError(
                    {
                        "depends_on": _(
                            "%(target)s already depends on %(service)s, directly or through "
                            "other services; this dependency would make a cycle."
                        )
                        % {"target": self.depends_on, "service": self.service}
                    }
                )


class Organization(models.Model):
    """A customer."""

    name = models.CharField(_("name"), max_length=150, unique=True)
    slug = models.SlugField(_("slug"), max_length=150, unique=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self):
        return self.name


class Contact(models.Model):
    """A person we may email: a customer organisation's contact, or (no organisation) a member
    of the public who subscribed on the status page and confirmed by email (``confirmed_at``)."""

    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="contacts",
        verbose_name=_("organisation"),
        help_text=_("Empty for a public subscriber from the status page."),
    )
    name = models.CharField(_("name"), max_length=150)
    email = models.EmailField(_("email"))
    language = models.CharField(
        _("preferred language"), max_length=5, choices=Language.choices, default=Language.EN
    )
    is_active = models.BooleanField(_("active"), default=True)
    # When a public subscriber clicked the confirmation link (double opt-in): the record of
    # consent. Empty for an organisation's contacts, whom staff enter.
    confirmed_at = models.DateTimeField(_("subscription confirmed"), null=True, blank=True)
    # Chose "all services" on the status page: a public service added (or made public) later
    # gets a subscription for them too (``Subscription.add_followers``).
    follows_all_services = models.BooleanField(
        _("follows all public services"),
        default=False,
        db_default=False,  # rows copied in by SQL (bench data, imports) need no value
        help_text=_("Subscribed to every public service, including services added later."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ContactQuerySet.as_manager()

    class Meta:
        ordering = ["organization__name", "name"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "email"], name="unique_contact_email_per_org"
            ),
            # One public subscriber per mailbox, whatever the letter case.
            models.UniqueConstraint(
                Lower("email"),
                condition=models.Q(organization__isnull=True),
                name="unique_public_contact_email",
            ),
        ]

    def __str__(self):
        return f"{self.name} <{self.email}>"


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    WEBHOOK = "webhook", _("Webhook")


class Subscription(models.Model):
    """A contact, or a whole organisation (all its active contacts), subscribed to a service
    on a channel. A webhook subscription carries its URL and its own signing secret."""

    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="subscriptions", verbose_name=_("service")
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        verbose_name=_("contact"),
    )
    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        verbose_name=_("organisation"),
    )
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, default=Channel.EMAIL
    )
    webhook_url = models.URLField(_("webhook URL"), max_length=500, blank=True)
    webhook_secret = models.CharField(
        _("webhook signing secret"),
        max_length=80,
        blank=True,
        help_text=_("Standard Webhooks secret (whsec_…); generated when left empty."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(contact__isnull=False, organization__isnull=True)
                    | models.Q(contact__isnull=True, organization__isnull=False)
                ),
                name="subscription_contact_xor_organization",
                violation_error_message=_("Choose either a contact or an organisation, not both."),
            ),
            models.UniqueConstraint(
                fields=["service", "contact", "channel", "webhook_url"],
                condition=models.Q(contact__isnull=False),
                name="unique_contact_subscription",
            ),
            models.UniqueConstraint(
                fields=["service", "organization", "channel", "webhook_url"],
                condition=models.Q(organization__isnull=False),
                name="unique_organization_subscription",
            ),
        ]
        indexes = [models.Index(fields=["service", "is_active"])]

    def __str__(self):
        who = self.contact or self.organization
        return f"{who} → {self.service} ({self.get_channel_display()})"

    def save(self, *args, **kwargs):
        # A webhook subscription signs with its endpoint's secret: a URL subscribed already
        # (for another service, by another owner) keeps the secret its receiver holds; a new
        # URL gets a new Standard Webhooks secret.
        if self.channel == Channel.WEBHOOK and self.webhook_url:
            shared = (
                Subscription.objects.filter(channel=Channel.WEBHOOK, webhook_url=self.webhook_url)
                .exclude(pk=self.pk)
                .exclude(webhook_secret="")
                .order_by("pk")
                .values_list("pk", "webhook_secret")
                .first()
            )
            if shared and (self.pk is None or shared[0] < self.pk):
                self.webhook_secret = shared[1]
        if self.channel == Channel.WEBHOOK and not self.webhook_secret:
            import base64
            import secrets

            self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        super().save(*args, **kwargs)

    def clean(self):
        # "Contact or organisation, not both" is the check constraint's own message.
        if self.channel == Channel.WEBHOOK and not self.webhook_url:
            raise ValidationError({"webhook_url": _("A webhook subscription needs a URL.")})
        if self.channel == Channel.WEBHOOK:
            # The guard the webhook channel applies at send time, applied when it is typed.
            # A name that does not resolve (yet) passes: its DNS may be set up later, and the
            # send-time guard checks every address it resolves to then.
            from itsm.netguard import RefusedTarget, UnresolvableTarget, check_url

            try:
                check_url(self.webhook_url)
            except UnresolvableTarget:
                pass
            except RefusedTarget as exc:
                raise ValidationError({"webhook_url": str(exc)}) from None
        if self.channel == Channel.EMAIL and self.webhook_url:
            raise ValidationError({"webhook_url": _("Only webhook subscriptions have a URL.")})

    @classmethod
    def endpoint_secret(cls, url):
        """The signing secret of the endpoint ``url``: one per URL, that of its oldest
        subscription, whatever service or incident a message is about (a receiver holds one
        secret)."""
        return (
            cls.objects.filter(channel=Channel.WEBHOOK, webhook_url=url)
            .exclude(webhook_secret="")
            .order_by("pk")
            .values_list("webhook_secret", flat=True)
            .first()
            or ""
        )

    @classmethod
    def add_followers(cls, service):
        """Subscribe the public subscribers who chose "all services" to ``service``, which has
        just become public: "all" means the services added later too."""
        followers = Contact.objects.filter(
            organization__isnull=True,
            follows_all_services=True,
            is_active=True,
            confirmed_at__isnull=False,
        ).values_list("pk", flat=True)
        cls.objects.bulk_create(
            [
                cls(service=service, contact_id=pk, channel=Channel.EMAIL, webhook_url="")
                for pk in followers
            ],
            ignore_conflicts=True,  # already subscribed (e.g. public, then private, then public)
        )


# Names the system's zoneinfo directory holds that are not IANA zones: "localtime" is this
# machine's own setting (another machine means another zone), "posixrules" a file for POSIX TZ.
NOT_IANA_ZONES = frozenset({"localtime", "posixrules"})


def validate_time_zone(value):
    if value in NOT_IANA_ZONES or value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not an IANA time zone."), params={"value": value})


class BusinessCalendar(models.Model):
    """When the SLA clock runs: a time zone, weekly hours and holidays, or 24×7."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="UTC", validators=[validate_time_zone]
    )
    is_24x7 = models.BooleanField(
        _("24×7"), default=False, help_text=_("Every instant counts; hours and holidays ignored.")
    )
    # Moves whenever the calendar, its hours or its holidays change: the SLA engine keeps the
    # plain calendar value in memory and recognises a stale copy by this stamp.
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("business calendar")
        verbose_name_plural = _("business calendars")

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        # A changed zone or 24×7 flag moves deadlines (a new calendar has no policy yet).
        SlaInputChange.objects.create(calendar_id=self.pk)


def _minutes(t, end=False):
    minutes = t.hour * 60 + t.minute
    # A window closing at 00:00 means "until the end of the day" (24:00).
    return 1440 if end and minutes == 0 else minutes


class SlaInputChange(models.Model):
    """A note that something the SLA deadlines depend on changed: a calendar (its hours,
    holidays or zone), a policy's targets or calendar, a contract or a service's default policy.

    The catalog knows no incident; it only writes these rows (from the models' save/delete and
    from bulk query-set operations). The incidents side consumes them in its sweep and moves the
    deadlines of the open incidents that depend on what changed. A row is deleted only once it
    has been handled, so an edit is never lost to a missed task or a restart."""

    at = models.DateTimeField(_("at"), default=timezone.now)
    calendar_id = models.IntegerField(_("calendar"), null=True, blank=True)
    policy_id = models.IntegerField(_("policy"), null=True, blank=True)
    service_id = models.IntegerField(_("service"), null=True, blank=True)
    # The global default policy changed: every open incident may depend on it.
    everything = models.BooleanField(_("all incidents"), default=False)

    class Meta:
        verbose_name = _("SLA input change")
        verbose_name_plural = _("SLA input changes")

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} calendar={self.calendar_id} policy={self.policy_id}"


def sla_inputs_changed(*, calendars=(), policies=(), services=(), everything=False):
    """Record that SLA inputs changed (see ``SlaInputChange``); calendars also get a fresh
    ``updated_at``, so every process drops its in-memory copy at once."""
    now = timezone.now()
    calendars, policies, services = set(calendars), set(policies), set(services)
    calendars.discard(None)
    policies.discard(None)
    services.discard(None)
    if calendars:
        BusinessCalendar.objects.filter(pk__in=calendars).update(updated_at=now)
    rows = [SlaInputChange(at=now, calendar_id=pk) for pk in calendars]
    rows += [SlaInputChange(at=now, policy_id=pk) for pk in policies]
    rows += [SlaInputChange(at=now, service_id=pk) for pk in services]
    if everything:
        rows.append(SlaInputChange(at=now, everything=True))
    SlaInputChange.objects.bulk_create(rows)


def _touch_calendar(calendar_id):
    sla_inputs_changed(calendars=[calendar_id])


class CalendarPartQuerySet(models.QuerySet):
    """Bulk operations on hours and holidays skip ``save()``/``delete()``; these say so to the
    SLA engine all the same (a stale calendar would otherwise live on in workers' memory)."""

    def _calendars(self):
        return set(self.values_list("calendar_id", flat=True))

    def update(self, **kwargs):
        calendars = self._calendars()
        result = super().update(**kwargs)
        sla_inputs_changed(calendars=calendars | {kwargs.get("calendar_id")})
        return result

    def delete(self):
        calendars = self._calendars()
        result = super().delete()
        sla_inputs_changed(calendars=calendars)
        return result

    def bulk_create(self, objs, *args, **kwargs):
        objs = super().bulk_create(objs, *args, **kwargs)
        sla_inputs_changed(calendars={o.calendar_id for o in objs})
        return objs

    def bulk_update(self, objs, *args, **kwargs):
        result = super().bulk_update(objs, *args, **kwargs)
        sla_inputs_changed(calendars={o.calendar_id for o in objs})
        return result


def check_windows_do_not_overlap(windows):
    """``windows``: (weekday, opens, closes) with times as ``datetime.time`` (closing 00:00 =
    24:00). Raises a ValidationError naming the first two windows of a weekday that overlap;
    touching windows (09–12, 12–17) are fine."""
    by_day = {}
    for weekday, opens, closes in windows:
        if opens is None or closes is None or weekday is None:
            continue
        by_day.setdefault(weekday, []).append((_minutes(opens), _minutes(closes, end=True)))
    for weekday, spans in sorted(by_day.items()):
        spans.sort()
        for (open_a, close_a), (open_b, close_b) in zip(spans, spans[1:], strict=False):
            if open_b < close_a:
                raise ValidationError(
                    _(
                        "Two windows on %(weekday)s overlap (%(a)s and %(b)s): a weekday's "
                        "windows may touch but not overlap."
                    ),
                    params={
                        "weekday": Weekday(weekday).label,
                        "a": f"{_hhmm(open_a)}–{_hhmm(close_a)}",
                        "b": f"{_hhmm(open_b)}–{_hhmm(close_b)}",
                    },
                    code="overlap",
                )


def _hhmm(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class BusinessHours(models.Model):
    """One working window on a weekday, in the calendar's wall-clock time. A window closing at
    00:00 runs to the end of the day (24:00)."""

    calendar = models.ForeignKey(
        BusinessCalendar, on_delete=models.CASCADE, related_name="hours", verbose_name=_("calendar")
    )
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens_at = models.TimeField(_("opens at"))
    closes_at = models.TimeField(_("closes at"), help_text=_("00:00 means end of day (24:00)."))

    objects = CalendarPartQuerySet.as_manager()

    class Meta:
        ordering = ["calendar", "weekday", "opens_at"]
        verbose_name = _("business hours")
        verbose_name_plural = _("business hours")

    def __str__(self):
        return f"{self.get_weekday_display()} {self.opens_at:%H:%M}–{self.closes_at:%H:%M}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        _touch_calendar(self.calendar_id)

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        _touch_calendar(self.calendar_id)
        return result

    def clean(self):
        if self.opens_at is None or self.closes_at is None:
            return
        close = _minutes(self.closes_at, end=True)
        if _minutes(self.opens_at) >= close:
            raise ValidationError(
                {"closes_at": _("The window must close after it opens (00:00 = end of day).")}
            )
        if self.calendar_id is not None and self.weekday is not None:
            # The windows already stored (the admin's inline also checks its rows together,
            # see services.admin).
            others = BusinessHours.objects.filter(
                calendar_id=self.calendar_id, weekday=self.weekday
            ).exclude(pk=self.pk)
            check_windows_do_not_overlap(
                [(self.weekday, self.opens_at, self.closes_at)]
                + [(h.weekday, h.opens_at, h.closes_at) for h in others]
            )


class Holiday(models.Model):
    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.CASCADE,
        related_name="holidays",
        verbose_name=_("calendar"),
    )
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=100, blank=True)

    objects = CalendarPartQuerySet.as_manager()

    class Meta:
        ordering = ["calendar", "date"]
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        constraints = [
            models.UniqueConstraint(fields=["calendar", "date"], name="unique_holiday_per_calendar")
        ]

    def __str__(self):
        return f"{self.date:%Y-%m-%d} {self.name}".strip()

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        _touch_calendar(self.calendar_id)

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        _touch_calendar(self.calendar_id)
        return result


class SlaPolicy(models.Model):
    """Response and resolution targets per priority, measured on a business calendar."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    calendar = models.ForeignKey(
        BusinessCalendar,
        on_delete=models.PROTECT,
        related_name="policies",
        verbose_name=_("business calendar"),
    )
    is_default = models.BooleanField(
        _("global default"),
        default=False,
        help_text=_("Used for services that have neither a contract nor a default policy."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("SLA policy")
        verbose_name_plural = _("SLA policies")
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_global_default_sla_policy",
            )
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        was_default = (
            self.pk is not None and SlaPolicy.objects.filter(pk=self.pk, is_default=True).exists()
        )
        super().save(*args, **kwargs)
        # The global default stands behind every service without a policy and every missing
        # target: a change to it (or of which policy it is) may move any open deadline.
        sla_inputs_changed(policies=[self.pk], everything=self.is_default or was_default)

    def delete(self, *args, **kwargs):
        was_default = self.is_default
        result = super().delete(*args, **kwargs)
        sla_inputs_changed(everything=was_default)
        return result


# Longer than any promise a desk makes; the clock walks at most ~100 years of calendar, and a
# target far beyond a year is a typing error (80,000 days) that would stop every recompute.
MAX_SLA_TARGET = dt.timedelta(days=365)


class TargetQuerySet(models.QuerySet):
    """Bulk operations on targets tell the SLA engine too (see ``SlaInputChange``)."""

    def _policies(self):
        return set(self.values_list("policy_id", flat=True))

    def update(self, **kwargs):
        policies = self._policies()
        result = super().update(**kwargs)
        sla_inputs_changed(policies=policies | {kwargs.get("policy_id")})
        return result

    def delete(self):
        policies = self._policies()
        result = super().delete()
        sla_inputs_changed(policies=policies)
        return result

    def bulk_create(self, objs, *args, **kwargs):
        objs = super().bulk_create(objs, *args, **kwargs)
        sla_inputs_changed(policies={o.policy_id for o in objs})
        return objs

    def bulk_update(self, objs, *args, **kwargs):
        result = super().bulk_update(objs, *args, **kwargs)
        sla_inputs_changed(policies={o.policy_id for o in objs})
        return result


class SlaTarget(models.Model):
    policy = models.ForeignKey(
        SlaPolicy, on_delete=models.CASCADE, related_name="targets", verbose_name=_("policy")
    )
    priority = models.PositiveSmallIntegerField(_("priority"), choices=Priority.choices)
    response_target = models.DurationField(
        _("response target"),
        validators=[MinValueValidator(dt.timedelta(0)), MaxValueValidator(MAX_SLA_TARGET)],
        help_text=_("Business time to acknowledge, e.g. 00:15:00 (at most 365 days)."),
    )
    resolution_target = models.DurationField(
        _("resolution target"),
        validators=[MinValueValidator(dt.timedelta(0)), MaxValueValidator(MAX_SLA_TARGET)],
        help_text=_(
            "Business time to resolve, e.g. 04:00:00 or '2 00:00:00' for two days "
            "(at most 365 days)."
        ),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = TargetQuerySet.as_manager()

    class Meta:
        ordering = ["policy", "priority"]
        verbose_name = _("SLA target")
        verbose_name_plural = _("SLA targets")
        constraints = [
            models.UniqueConstraint(fields=["policy", "priority"], name="unique_target_priority")
        ]

    def __str__(self):
        return f"{self.policy} P{self.priority}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        sla_inputs_changed(policies=[self.policy_id])

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        sla_inputs_changed(policies=[self.policy_id])
        return result

    def clean(self):
        if (
            self.response_target is not None
            and self.resolution_target is not None
            and self.response_target > self.resolution_target
        ):
            raise ValidationError(
                {"response_target": _("The response target cannot exceed the resolution target.")}
            )


class ContractQuerySet(models.QuerySet):
    """Bulk operations on contracts tell the SLA engine too (see ``SlaInputChange``)."""

    def update(self, **kwargs):
        services = set(self.values_list("service_id", flat=True))
        result = super().update(**kwargs)
        sla_inputs_changed(services=services | {kwargs.get("service_id")})
        return result

    def delete(self):
        services = set(self.values_list("service_id", flat=True))
        result = super().delete()
        sla_inputs_changed(services=services)
        return result

    def bulk_create(self, objs, *args, **kwargs):
        objs = super().bulk_create(objs, *args, **kwargs)
        sla_inputs_changed(services={o.service_id for o in objs})
        return objs


class Contract(models.Model):
    """An organisation's own SLA policy for one service; it overrides the service default."""

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="contracts",
        verbose_name=_("organisation"),
    )
    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="contracts", verbose_name=_("service")
    )
    sla_policy = models.ForeignKey(
        SlaPolicy, on_delete=models.PROTECT, related_name="contracts", verbose_name=_("SLA policy")
    )
    # The organisation's own cost of an hour in each status; empty: the service's.
    cost_major_per_hour = models.DecimalField(
        _("cost per hour of major outage"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Empty: the service's own cost."),
    )
    cost_partial_per_hour = models.DecimalField(
        _("cost per hour of partial outage"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Empty: the service's own cost."),
    )
    cost_degraded_per_hour = models.DecimalField(
        _("cost per hour of degraded performance"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Empty: the service's own cost."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = ContractQuerySet.as_manager()

    class Meta:
        verbose_name = _("contract")
        verbose_name_plural = _("contracts")
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "service"], name="one_contract_per_org_service"
            )
        ]

    def __str__(self):
        return f"{self.organization} / {self.service}: {self.sla_policy}"

    def save(self, *args, **kwargs):
        before = Contract.objects.filter(pk=self.pk).values_list("service_id", flat=True)
        services = {self.service_id, *(before if self.pk else ())}
        super().save(*args, **kwargs)
        sla_inputs_changed(services=services)

    def delete(self, *args, **kwargs):
        service_id = self.service_id
        result = super().delete(*args, **kwargs)
        sla_inputs_changed(services=[service_id])
        return result


class MaintenanceStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class MaintenanceWindow(models.Model):
    title = models.CharField(_("title"), max_length=200)
    services = models.ManyToManyField(
        Service, related_name="maintenance_windows", verbose_name=_("affected services")
    )
    scheduled_start = models.DateTimeField(_("scheduled start"))
    scheduled_end = models.DateTimeField(_("scheduled end"))
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=MaintenanceStatus.choices,
        default=MaintenanceStatus.SCHEDULED,
    )
    public_description = models.TextField(_("public description"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = MaintenanceQuerySet.as_manager()

    class Meta:
        ordering = ["-scheduled_start"]
        verbose_name = _("maintenance window")
        verbose_name_plural = _("maintenance windows")
        indexes = [models.Index(fields=["status", "scheduled_start"])]

    def __str__(self):
        return self.title

    def clean(self):
        if (
            self.scheduled_start
            and self.scheduled_end
            and self.scheduled_end <= self.scheduled_start
        ):
            raise ValidationError({"scheduled_end": _("The end must be after the start.")})


class Team(models.Model):
    """What the desk needs to know about a team (a Django ``Group``): where to reach it, and
    who is told when its work breaches an SLA."""

    group = models.OneToOneField(
        Group, on_delete=models.CASCADE, related_name="team", verbose_name=_("group")
    )
    email = models.EmailField(_("team email"), blank=True)
    escalation_contact = models.ForeignKey(
        "auth.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="escalation_for",
        verbose_name=_("escalation contact"),
    )

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self):
        return str(self.group)

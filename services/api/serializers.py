"""What the API shows of the catalog, and the bodies it accepts. Writes are handed to
``services/workflow.py``; the model's own validation (``full_clean``) answers per field.

Related rows are named by their natural key (a service or organisation by slug, a calendar,
policy, group or team by name, a contact by id), and each is looked up among the rows the
caller may see: naming another organisation's row is the same 400 as naming one that does not
exist.
"""

from django.contrib.auth.models import Group
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from itsm.api_auth import actor_of
from services import visibility, workflow
from services.models import (
    BusinessCalendar,
    BusinessHours,
    Contact,
    Holiday,
    MaintenanceWindow,
    Organization,
    Service,
    ServiceGroup,
    ServiceStatus,
    ServiceStatusInterval,
    SlaPolicy,
    SlaTarget,
    Subscription,
)


def api_error(exc):
    """A Django ``ValidationError`` as DRF's 400: a list of messages per field, the model's
    ``__all__`` under ``non_field_errors`` as everywhere else in the API."""
    if hasattr(exc, "error_dict"):
        errors = {
            (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): messages
            for field, messages in exc.message_dict.items()
        }
    else:
        errors = {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
    return serializers.ValidationError(errors)


def catalog_error(exc):
    """A ``workflow.CatalogError`` as a 400 on its field."""
    return serializers.ValidationError({exc.field or api_settings.NON_FIELD_ERRORS_KEY: [str(exc)]})


class Named(serializers.SlugRelatedField):
    """A related row by its natural key. Text holding a NUL character names no row (PostgreSQL
    refuses to compare it at all): the same 400 as any missing name."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", ""))
        return super().to_internal_value(data)


class VisibleRowsMixin:
    """Narrows the related fields named in ``visible_fields`` ({field: model}) to the rows the
    caller may see (``Model.objects.visible_to``)."""

    visible_fields = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is None or not request.user.is_authenticated:
            return  # the schema generator
        actor = actor_of(request)
        for name, model in self.visible_fields.items():
            field = self.fields[name]
            target = getattr(field, "child_relation", field)
            target.queryset = model.objects.visible_to(actor)

    @property
    def actor(self):
        return actor_of(self.context["request"])


class RowSerializer(VisibleRowsMixin, serializers.ModelSerializer):
    """A row whose every rule is the model's own: saved by ``workflow.save_row``."""

    def create(self, validated_data):
        return self._save(self.Meta.model(), validated_data)

    def update(self, instance, validated_data):
        return self._save(instance, validated_data)

    def _save(self, instance, values):
        for name, value in values.items():
            setattr(instance, name, value)
        try:
            return workflow.save_row(instance)
        except DjangoValidationError as exc:
            raise api_error(exc) from None


# --- services ----------------------------------------------------------------------------------


class ServiceSerializer(serializers.ModelSerializer):
    group = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    owner_team = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    default_sla_policy = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    dependencies = serializers.SlugRelatedField(
        slug_field="slug",
        many=True,
        read_only=True,
        help_text=_("The services this one depends on (slugs): when one is hurt, so is this."),
    )
    status_since = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("When the current status began.")
    )

    class Meta:
        model = Service
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "group",
            "is_public",
            "owner_team",
            "criticality",
            "display_order",
            "status",
            "status_pinned",
            "status_since",
            "default_sla_policy",
            "dependencies",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ServiceInputSerializer(serializers.ModelSerializer):
    """A service's fields, its dependencies (exactly these, when given) and a status set by
    staff (``status`` with ``status_pinned: true`` stays until unpinned; unpinning lets the
    status derived from incidents and maintenance take over)."""

    group = Named(
        slug_field="name", queryset=ServiceGroup.objects.all(), required=False, allow_null=True
    )
    owner_team = Named(
        slug_field="name", queryset=Group.objects.all(), required=False, allow_null=True
    )
    default_sla_policy = Named(
        slug_field="name", queryset=SlaPolicy.objects.all(), required=False, allow_null=True
    )
    dependencies = Named(
        slug_field="slug", queryset=Service.objects.all(), many=True, required=False
    )
    status = serializers.ChoiceField(choices=ServiceStatus.choices, required=False)
    status_pinned = serializers.BooleanField(required=False)

    class Meta:
        model = Service
        fields = [
            "name",
            "slug",
            "description",
            "group",
            "is_public",
            "owner_team",
            "criticality",
            "display_order",
            "default_sla_policy",
            "dependencies",
            "status",
            "status_pinned",
        ]

    def validate(self, attrs):
        if attrs.get("status") and not attrs.get("status_pinned", self._pinned()):
            raise serializers.ValidationError(
                {"status": [_("A status is set by hand only with status_pinned true.")]}
            )
        return attrs

    def _pinned(self):
        return bool(self.instance and self.instance.status_pinned)

    def create(self, validated_data):
        return self._save(Service(), validated_data)

    def update(self, instance, validated_data):
        return self._save(instance, validated_data)

    def _save(self, service, values):
        dependencies = values.pop("dependencies", None)
        status = values.pop("status", None)
        pinned = values.pop("status_pinned", None)
        for name, value in values.items():
            setattr(service, name, value)
        try:
            return workflow.save_service(
                service, dependencies=dependencies, status=status, pinned=pinned
            )
        except DjangoValidationError as exc:
            raise api_error(exc) from None


class StatusIntervalSerializer(serializers.ModelSerializer):
    cause_id = serializers.IntegerField(
        source="shown_cause_id",
        read_only=True,
        allow_null=True,
        help_text=_("The incident or maintenance window; null for a cause the caller may not see."),
    )

    class Meta:
        model = ServiceStatusInterval
        fields = ["status", "cause_kind", "cause_id", "valid_from", "valid_to"]
        read_only_fields = fields


# --- customers ---------------------------------------------------------------------------------


class OrganizationSerializer(RowSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "is_active", "created_at"]
        read_only_fields = ["id", "created_at"]


class ContactSerializer(RowSerializer):
    organization = Named(
        slug_field="slug",
        queryset=Organization.objects.all(),
        allow_null=True,
        required=False,
        help_text=_("Empty for a public subscriber from the status page."),
    )
    visible_fields = {"organization": Organization}

    class Meta:
        model = Contact
        fields = [
            "id",
            "organization",
            "name",
            "email",
            "language",
            "is_active",
            "confirmed_at",
            "follows_all_services",
            "created_at",
        ]
        read_only_fields = ["id", "confirmed_at", "follows_all_services", "created_at"]
        validators = []  # the model's constraints, checked by full_clean with their messages

    def validate(self, attrs):
        organization = attrs.get(
            "organization", self.instance.organization if self.instance else None
        )
        if not visibility.may_write_for(self.actor, getattr(organization, "pk", None)):
            raise serializers.ValidationError({"organization": [_("Give your own organisation.")]})
        return attrs


def masked_secret(secret):
    """Enough of a signing secret to tell two apart, not enough to sign with."""
    return f"whsec_…{secret[-4:]}" if secret else ""


class SubscriptionSerializer(RowSerializer):
    service = Named(slug_field="slug", queryset=Service.objects.all())
    contact = serializers.PrimaryKeyRelatedField(
        queryset=Contact.objects.all(), allow_null=True, required=False
    )
    organization = Named(
        slug_field="slug", queryset=Organization.objects.all(), allow_null=True, required=False
    )
    webhook_secret = serializers.SerializerMethodField(
        help_text=_(
            "The Standard Webhooks signing secret, whole for a caller who may change "
            "subscriptions, masked otherwise."
        )
    )
    visible_fields = {"service": Service, "contact": Contact, "organization": Organization}

    class Meta:
        model = Subscription
        fields = [
            "id",
            "service",
            "contact",
            "organization",
            "channel",
            "webhook_url",
            "webhook_secret",
            "is_active",
            "created_at",
        ]
        read_only_fields = ["id", "webhook_secret", "created_at"]
        validators = []  # the model's constraints, checked by full_clean with their messages

    def get_webhook_secret(self, subscription) -> str:
        secret = subscription.webhook_secret
        request = self.context.get("request")
        if request is not None and request.user.has_perm("services.change_subscription"):
            return secret
        return masked_secret(secret)


# --- SLA policies and calendars ----------------------------------------------------------------


class SlaTargetSerializer(serializers.ModelSerializer):
    class Meta:
        model = SlaTarget
        fields = ["priority", "response_target", "resolution_target"]
        read_only_fields = fields


class SlaPolicySerializer(serializers.ModelSerializer):
    calendar = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    targets = SlaTargetSerializer(many=True, read_only=True)

    class Meta:
        model = SlaPolicy
        fields = ["id", "name", "calendar", "is_default", "targets", "updated_at"]
        read_only_fields = fields


class BusinessHoursSerializer(serializers.ModelSerializer):
    class Meta:
        model = BusinessHours
        fields = ["weekday", "opens_at", "closes_at"]
        read_only_fields = fields


class HolidaySerializer(serializers.ModelSerializer):
    class Meta:
        model = Holiday
        fields = ["date", "name"]
        read_only_fields = fields


class BusinessCalendarSerializer(serializers.ModelSerializer):
    hours = BusinessHoursSerializer(many=True, read_only=True)
    holidays = HolidaySerializer(many=True, read_only=True)

    class Meta:
        model = BusinessCalendar
        fields = ["id", "name", "time_zone", "is_24x7", "hours", "holidays", "updated_at"]
        read_only_fields = fields


class _PartInput(serializers.ModelSerializer):
    """One target, window or holiday in a body (validated again by the workflow with the
    model's own ``clean()``)."""

    def to_row(self, values):
        return self.Meta.model(**values)


class SlaTargetInputSerializer(_PartInput):
    class Meta:
        model = SlaTarget
        fields = ["priority", "response_target", "resolution_target"]


class BusinessHoursInputSerializer(_PartInput):
    class Meta:
        model = BusinessHours
        fields = ["weekday", "opens_at", "closes_at"]


class HolidayInputSerializer(_PartInput):
    class Meta:
        model = Holiday
        fields = ["date", "name"]


class _WithPartsInput(serializers.ModelSerializer):
    """A row and its parts (``parts``: the nested fields), saved by one workflow call; a part
    list, when given, replaces the stored one."""

    parts = ()

    def create(self, validated_data):
        return self._save(self.Meta.model(), validated_data)

    def update(self, instance, validated_data):
        return self._save(instance, validated_data)

    def _save(self, instance, values):
        parts = {}
        for name in self.parts:
            if name in values:
                rows = values.pop(name)
                parts[name] = [self.fields[name].child.to_row(row) for row in rows]
        for name, value in values.items():
            setattr(instance, name, value)
        try:
            return self.write(instance, **parts)
        except DjangoValidationError as exc:
            raise api_error(exc) from None


class SlaPolicyInputSerializer(_WithPartsInput):
    """A policy; ``targets``, when given, become exactly its targets (one per priority; a
    priority left out falls back to the global default policy's)."""

    calendar = Named(slug_field="name", queryset=BusinessCalendar.objects.all())
    targets = SlaTargetInputSerializer(many=True, required=False)
    parts = ("targets",)

    class Meta:
        model = SlaPolicy
        fields = ["name", "calendar", "is_default", "targets"]
        validators = []  # one global default: the model's constraint, checked by full_clean

    def write(self, policy, **parts):
        return workflow.save_sla_policy(policy, **parts)


class BusinessCalendarInputSerializer(_WithPartsInput):
    """A calendar; ``hours`` and ``holidays``, when given, replace its stored ones."""

    hours = BusinessHoursInputSerializer(many=True, required=False)
    holidays = HolidayInputSerializer(many=True, required=False)
    parts = ("hours", "holidays")

    class Meta:
        model = BusinessCalendar
        fields = ["name", "time_zone", "is_24x7", "hours", "holidays"]

    def write(self, calendar, **parts):
        return workflow.save_calendar(calendar, **parts)


# --- maintenance -------------------------------------------------------------------------------


class MaintenanceSerializer(serializers.ModelSerializer):
    services = serializers.SerializerMethodField()

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id",
            "title",
            "status",
            "services",
            "scheduled_start",
            "scheduled_end",
            "public_description",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.SlugField()))
    def get_services(self, window):
        """The slugs of its services the caller may see (prefetched as ``shown_services``)."""
        return [s.slug for s in window.shown_services]


class MaintenanceInputSerializer(serializers.ModelSerializer):
    services = Named(
        slug_field="slug", queryset=Service.objects.all(), many=True, allow_empty=False
    )

    class Meta:
        model = MaintenanceWindow
        fields = ["title", "services", "scheduled_start", "scheduled_end", "public_description"]

    def create(self, validated_data):
        try:
            return workflow.schedule_maintenance(**validated_data)
        except workflow.CatalogError as exc:
            raise catalog_error(exc) from None

    def update(self, instance, validated_data):
        try:
            return workflow.edit_maintenance(instance, changes=validated_data)
        except workflow.CatalogError as exc:
            raise catalog_error(exc) from None

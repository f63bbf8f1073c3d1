"""What the API shows of an integrator's webhook endpoint, and what it takes. The secret is
shown once (on create and on rotation), never in a list or a detail."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from notifications.models import (
    WEBHOOK_EVENT_TYPES,
    NotificationStatus,
    WebhookEndpoint,
    validate_webhook_url,
)
from services.models import Organization

EVENT_TYPE_CHOICES = [(str(t), t.label) for t in WEBHOOK_EVENT_TYPES]


class LastDeliverySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=NotificationStatus.choices)
    queued_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint as read (from ``WebhookEndpoint.objects.with_last_delivery()``)."""

    event_types = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES))
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    last_delivery = serializers.SerializerMethodField()

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "organization",
            "last_delivery",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_last_delivery(self, endpoint) -> LastDeliverySerializer(allow_null=True):
        status = getattr(endpoint, "last_status", None)
        if status is None:
            return None
        return {
            "status": status,
            "queued_at": serializers.DateTimeField().to_representation(endpoint.last_at),
            "sent_at": serializers.DateTimeField().to_representation(endpoint.last_sent_at)
            if endpoint.last_sent_at
            else None,
            "error": (endpoint.last_error or "")[:500],
        }


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    """The answer to a create: the endpoint and, this once, its signing secret."""

    secret = serializers.CharField(
        read_only=True,
        help_text="The Standard Webhooks secret (whsec_…) to verify signatures with. Shown once.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointInputSerializer(serializers.Serializer):
    """What a create (all required but ``description``, ``is_active`` and ``organization``) or
    a change (any of them) takes."""

    url = serializers.URLField(max_length=500, validators=[validate_webhook_url])
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES),
        allow_empty=False,
        max_length=len(EVENT_TYPE_CHOICES),
    )
    is_active = serializers.BooleanField(required=False)
    organization = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Organization.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        help_text="Only this organisation's incidents reach the endpoint. A token bound to an "
        "organisation always creates its own organisation's endpoints.",
    )

    def __init__(self, *args, bound_organization_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bound_organization_id = bound_organization_id

    def validate_organization(self, organization):
        bound = self.bound_organization_id
        if bound is not None and (organization is None or organization.pk != bound):
            raise serializers.ValidationError(
                _("A token of an organisation manages that organisation's endpoints only.")
            )
        return organization


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(
        help_text="The new Standard Webhooks secret (whsec_…). Shown once; the old one stops "
        "signing at once."
    )


class PingQueuedSerializer(serializers.Serializer):
    event_id = serializers.IntegerField(help_text="The outbox event of the ping.")
    detail = serializers.CharField()

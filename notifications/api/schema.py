"""The webhooks itsm sends, as OpenAPI 3.1 ``webhooks`` (``SPECTACULAR_SETTINGS["WEBHOOKS"]``):
the maintenance events and ``ping`` here; the incident and SLA events in
``incidents.api.webhooks`` (notifications know no incident)."""

from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema, inline_serializer
from rest_framework import serializers

from notifications.models import EventKind

SIGNING = (
    "Signed following Standard Webhooks (https://www.standardwebhooks.com/) with the "
    "endpoint's secret (`whsec_…`, shown when the endpoint is created or its secret rotated): "
    "headers `webhook-id` (the same on every retry of one message: drop duplicates), "
    "`webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "
    '"id.timestamp.body">`). Answer 2xx within 10 s; other answers and timeouts are retried '
    "with exponential backoff for 48 hours (404, 410 and redirects are not retried)."
)

RECEIVED = {
    200: OpenApiResponse(description="Received (any 2xx)."),
    410: OpenApiResponse(description="Gone: this message is not sent again."),
}


def envelope(name, event_types, data):
    """The body every webhook has: ``type``, ``timestamp`` and the event's ``data``."""
    return inline_serializer(
        name,
        {
            "type": serializers.ChoiceField(choices=[str(t) for t in event_types]),
            "timestamp": serializers.DateTimeField(help_text="When the event was queued."),
            "data": data,
        },
    )


def webhook(event_type, summary, body):
    return OpenApiWebhook(
        name=str(event_type),
        decorator=extend_schema(
            summary=summary, description=SIGNING, request=body, responses=RECEIVED
        ),
    )


MaintenanceData = inline_serializer(
    "WebhookMaintenance",
    {
        "id": serializers.IntegerField(),
        "title": serializers.CharField(),
        "description": serializers.CharField(allow_blank=True),
        "status": serializers.ChoiceField(
            choices=["scheduled", "in_progress", "completed", "cancelled"]
        ),
        "scheduled_start": serializers.DateTimeField(),
        "scheduled_end": serializers.DateTimeField(),
        "services": serializers.ListField(
            child=serializers.CharField(), help_text="Names of the public services affected."
        ),
        "url": serializers.URLField(help_text="The status page."),
    },
)
_MAINTENANCE = (
    EventKind.WEBHOOK_MAINTENANCE_SCHEDULED,
    EventKind.WEBHOOK_MAINTENANCE_STARTED,
    EventKind.WEBHOOK_MAINTENANCE_COMPLETED,
    EventKind.WEBHOOK_MAINTENANCE_CANCELLED,
)
MaintenanceEvent = envelope("WebhookMaintenanceEvent", _MAINTENANCE, MaintenanceData)
PingEvent = envelope(
    "WebhookPingEvent",
    [EventKind.WEBHOOK_PING],
    inline_serializer(
        "WebhookPing",
        {"endpoint_id": serializers.IntegerField(), "message": serializers.CharField()},
    ),
)

maintenance_scheduled = webhook(
    EventKind.WEBHOOK_MAINTENANCE_SCHEDULED,
    "A maintenance window was scheduled (or its schedule or services changed)",
    MaintenanceEvent,
)
maintenance_started = webhook(
    EventKind.WEBHOOK_MAINTENANCE_STARTED, "A maintenance window started", MaintenanceEvent
)
maintenance_completed = webhook(
    EventKind.WEBHOOK_MAINTENANCE_COMPLETED, "A maintenance window completed", MaintenanceEvent
)
maintenance_cancelled = webhook(
    EventKind.WEBHOOK_MAINTENANCE_CANCELLED, "A maintenance window was cancelled", MaintenanceEvent
)
ping = webhook(EventKind.WEBHOOK_PING, "A test sent on request", PingEvent)

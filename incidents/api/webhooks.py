"""The incident and SLA webhooks itsm sends, as OpenAPI 3.1 ``webhooks`` (listed in
``SPECTACULAR_SETTINGS["WEBHOOKS"]``). ``data.incident`` is the API's ``Incident`` as it was
right after the change (``incidents.notify.webhook_incident``)."""

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from incidents.api.serializers import IncidentSerializer
from incidents.models import SlaTargetKind
from notifications.api.schema import envelope, webhook
from notifications.models import EventKind

_INCIDENT = (
    EventKind.WEBHOOK_INCIDENT_CREATED,
    EventKind.WEBHOOK_INCIDENT_UPDATED,
    EventKind.WEBHOOK_INCIDENT_RESOLVED,
)
_SLA = (EventKind.WEBHOOK_SLA_WARNING, EventKind.WEBHOOK_SLA_BREACHED)

IncidentEvent = envelope(
    "WebhookIncidentEvent",
    _INCIDENT,
    inline_serializer("WebhookIncident", {"incident": IncidentSerializer()}),
)
SlaEvent = envelope(
    "WebhookSlaEvent",
    _SLA,
    inline_serializer(
        "WebhookSla",
        {
            "target": serializers.ChoiceField(choices=SlaTargetKind.choices),
            "threshold_percent": serializers.IntegerField(
                help_text="The share of the target used: a warning's threshold, 100 for a breach."
            ),
            "due_at": serializers.DateTimeField(help_text="When the threshold was reached."),
            "incident": IncidentSerializer(),
        },
    ),
)

incident_created = webhook(
    EventKind.WEBHOOK_INCIDENT_CREATED, "An incident was opened", IncidentEvent
)
incident_updated = webhook(
    EventKind.WEBHOOK_INCIDENT_UPDATED,
    "An incident changed (state, assignment, priority, services, a posted update, …)",
    IncidentEvent,
)
incident_resolved = webhook(
    EventKind.WEBHOOK_INCIDENT_RESOLVED, "An incident was resolved", IncidentEvent
)
sla_warning = webhook(
    EventKind.WEBHOOK_SLA_WARNING, "An incident used a warning share of an SLA target", SlaEvent
)
sla_breached = webhook(
    EventKind.WEBHOOK_SLA_BREACHED, "An incident breached an SLA target", SlaEvent
)

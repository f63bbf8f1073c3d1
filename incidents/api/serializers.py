"""What the API shows of an incident. Read-only here: changes go through the workflow."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from incidents.models import Incident, IncidentService, PublicStatus, ResolutionCode


class _Ref(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()


class AffectedServiceSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="service_id")
    slug = serializers.CharField(source="service.slug")
    name = serializers.CharField(source="service.name")
    caused_status = serializers.CharField(source="status")

    class Meta:
        model = IncidentService
        fields = ["id", "slug", "name", "caused_status"]


def _ref(obj, label):
    return None if obj is None else {"id": obj.pk, "label": label}


class IncidentListSerializer(serializers.ListSerializer):
    """A page of incidents: their services read together, then each incident as one dict."""

    def to_representation(self, data):
        incidents = list(data)
        services = services_of([incident.pk for incident in incidents])
        for incident in incidents:
            incident.shown_services = services[incident.pk]
        return [self.child.to_representation(incident) for incident in incidents]


class IncidentSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    services = AffectedServiceSerializer(source="affected", many=True, read_only=True)
    assignee = serializers.SerializerMethodField()
    assignment_group = serializers.SerializerMethodField()
    organization = serializers.SerializerMethodField()
    breached = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "reference",
            "title",
            "description",
            "state",
            "impact",
            "urgency",
            "priority",
            "is_major",
            "is_confidential",
            "public_status",
            "services",
            "assignee",
            "assignment_group",
            "organization",
            "source",
            "opened_at",
            "acknowledged_at",
            "responded_at",
            "resolved_at",
            "first_resolved_at",
            "closed_at",
            "response_due_at",
            "resolve_due_at",
            "response_breached_at",
            "resolve_breached_at",
            "breached",
            "resolution_code",
            "version",
            "updated_at",
        ]
        read_only_fields = fields
        list_serializer_class = IncidentListSerializer
        # Empty until resolved / published: DRF drops allow_blank from read-only fields, and the
        # schema then said "" never comes (schemathesis found it).
        extra_kwargs = {
            "resolution_code": {"allow_blank": True},
            "public_status": {"allow_blank": True},
        }

    @staticmethod
    def _user(user):
        return _ref(user, user.get_username() if user else "")

    @extend_schema_field(_Ref(allow_null=True))
    def get_assignee(self, incident):
        return self._user(incident.assignee)

    @extend_schema_field(_Ref(allow_null=True))
    def get_assignment_group(self, incident):
        group = incident.assignment_group
        return _ref(group, group.name if group else "")

    @extend_schema_field(_Ref(allow_null=True))
    def get_organization(self, incident):
        org = incident.organization
        return _ref(org, org.name if org else "")

    def get_breached(self, incident) -> bool:
        return bool(incident.response_breached_at or incident.resolve_breached_at)

    def to_representation(self, incident):
        """The same dictionary as the declared fields give (``test_api`` holds the two equal),
        built in one pass: DRF's field-by-field output cost ~5 µs a value, three quarters of a
        page of 50 incidents' time (benchmark B2). The fields still describe the schema."""
        zone = timezone.get_current_timezone()
        out = {}
        for name in _PLAIN:
            out[name] = getattr(incident, name)
        out["reference"] = incident.reference
        shown = getattr(incident, "shown_services", None)
        out["services"] = shown if shown is not None else services_of([incident.pk])[incident.pk]
        out["assignee"] = self._user(incident.assignee)
        group, org = incident.assignment_group, incident.organization
        out["assignment_group"] = _ref(group, group.name if group else "")
        out["organization"] = _ref(org, org.name if org else "")
        for name in _TIMES:
            out[name] = _iso(getattr(incident, name), zone)
        out["breached"] = self.get_breached(incident)
        return {name: out[name] for name in self.Meta.fields}


# What ``IncidentSerializer.to_representation`` copies as it is, and formats as DRF's
# DateTimeField does (ISO 8601 in the current time zone, "Z" for UTC).
_PLAIN = (
    "id", "title", "description", "state", "impact", "urgency", "priority", "is_major",
    "is_confidential", "public_status", "source", "resolution_code", "version",
)  # fmt: skip
_TIMES = (
    "opened_at", "acknowledged_at", "responded_at", "resolved_at", "first_resolved_at",
    "closed_at", "response_due_at", "resolve_due_at", "response_breached_at",
    "resolve_breached_at", "updated_at",
)  # fmt: skip


def _iso(value, zone):
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def incidents_to_show(incidents):
    """``incidents`` (a queryset) with what ``IncidentSerializer`` reads and nothing more: the
    people and organisation joined (names only), the columns a client is never shown
    (``sla_explain``'s JSON, notes) left in the database. The affected services come with the
    page, in one query (``IncidentListSerializer``)."""
    return incidents.select_related("assignee", "assignment_group", "organization").only(
        *_PLAIN,
        *_TIMES,
        "assignee__username",
        "assignment_group__name",
        "organization__name",
    )


def services_of(incident_ids):
    """{incident id: its affected services as the API shows them}, in one query of plain
    values: a prefetch would build two model instances per link for four values."""
    found = {pk: [] for pk in incident_ids}
    if not found:
        return found
    links = (
        IncidentService.objects.filter(incident_id__in=found)
        .order_by("service__display_order", "service__name", "id")
        .values_list("incident_id", "service_id", "service__slug", "service__name", "status")
    )
    for incident_id, service_id, slug, name, status in links:
        found[incident_id].append(
            {"id": service_id, "slug": slug, "name": name, "caused_status": status}
        )
    return found


# --- the bodies of the workflow actions --------------------------------------------------------


class HoldSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


class ReopenSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class UpdateSerializer(serializers.Serializer):
    body = serializers.CharField()
    body_ro = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="The public message in Romanian (optional; Romanian readers get `body` without).",
    )
    is_public = serializers.BooleanField(default=False)
    public_status = serializers.ChoiceField(
        choices=PublicStatus.choices, required=False, allow_blank=True, default=""
    )


class ResolveSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=ResolutionCode.choices)
    notes = serializers.CharField()
    public_message = serializers.CharField(required=False, allow_blank=True, default="")


class AssignSerializer(serializers.Serializer):
    """A part left out stays as it is; null clears it."""

    assignee = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True, is_staff=True),
        required=False,
        allow_null=True,
    )
    group = serializers.SlugRelatedField(
        slug_field="name", queryset=Group.objects.all(), required=False, allow_null=True
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give an assignee, a group, or both.")
        return attrs

"""What the API shows of an incident. Read-only here: changes go through the workflow."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
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

"""What the API shows of a problem (read-only: changes are actions through the workflow), and
the bodies of those actions."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from problems.models import Problem


class _ProblemRef(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()


class ProblemServiceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    name = serializers.CharField()


class ProblemSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)
    services = ProblemServiceSerializer(many=True, read_only=True)
    owner = serializers.SerializerMethodField()
    group = serializers.SerializerMethodField()
    incident_count = serializers.IntegerField(
        source="linked_incidents", read_only=True, help_text="Linked incidents the caller sees."
    )

    class Meta:
        model = Problem
        fields = [
            "id",
            "reference",
            "title",
            "description",
            "state",
            "priority",
            "services",
            "owner",
            "group",
            "root_cause",
            "workaround",
            "permanent_fix",
            "incident_count",
            "created_at",
            "investigating_at",
            "known_error_at",
            "resolved_at",
            "closed_at",
            "version",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(_ProblemRef(allow_null=True))
    def get_owner(self, problem):
        owner = problem.owner
        return None if owner is None else {"id": owner.pk, "label": owner.get_username()}

    @extend_schema_field(_ProblemRef(allow_null=True))
    def get_group(self, problem):
        team = problem.group
        return None if team is None else {"id": team.pk, "label": team.group.name}


class ProblemKnownErrorSerializer(serializers.Serializer):
    workaround = serializers.CharField(max_length=10_000)
    root_cause = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class ProblemResolveSerializer(serializers.Serializer):
    permanent_fix = serializers.CharField(max_length=10_000)
    root_cause = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class ProblemReopenSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)

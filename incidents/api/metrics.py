"""``GET /api/v1/metrics/?start=…&end=…``: the dashboard's figures (``incidents.metrics``) for
the incidents the caller may see (``visible_to``: a token bound to an organisation gets its
organisation's incidents and their downtime only). Read scope."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import metrics
from incidents.models import Incident
from itsm.api_auth import ActorPermission, actor_of


class RangeQuery(serializers.Serializer):
    start = serializers.DateField(
        required=False, help_text="First day (default: twelve months ago, first of the month)."
    )
    end = serializers.DateField(required=False, help_text="Last day, inclusive (default: today).")

    def validate(self, attrs):
        first, last = metrics.default_days()
        attrs.setdefault("start", first)
        attrs.setdefault("end", last)
        problems = metrics.range_problems(attrs["start"], attrs["end"])
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class FiguresOut(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text="Month (YYYY-MM-01), priority or id.")
    label = serializers.CharField()
    incidents = serializers.IntegerField()
    major_incidents = serializers.IntegerField()
    mtta_seconds = serializers.FloatField(allow_null=True)
    respond_seconds = serializers.FloatField(allow_null=True)
    mttr_seconds = serializers.FloatField(allow_null=True)
    sla_decided = serializers.IntegerField(source="decided")
    sla_met = serializers.IntegerField(source="met")
    sla_compliance = serializers.FloatField(source="compliance", allow_null=True)
    response_breaches = serializers.IntegerField()
    resolution_breaches = serializers.IntegerField()
    downtime_minutes = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=16, decimal_places=2)


class ReportOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    currency = serializers.CharField()
    total = FiguresOut()
    by_month = FiguresOut(many=True)
    by_priority = FiguresOut(many=True)
    by_group = FiguresOut(many=True)
    by_service = FiguresOut(many=True)


class MetricsView(APIView):
    permission_classes = [ActorPermission]
    required_permission = "incidents.view_incident"

    @extend_schema(
        parameters=[RangeQuery],
        responses={
            200: ReportOut,
            400: OpenApiResponse(description="A refused range: a message per field."),
        },
        summary="Incident metrics over a range",
        tags=["metrics"],
    )
    def get(self, request):
        query = RangeQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end = metrics.day_range(query.validated_data["start"], query.validated_data["end"])
        found = metrics.report(Incident.objects.visible_to(actor_of(request)), start=start, end=end)
        return Response(ReportOut(found).data)

"""Incidents in the API: read through ``visible_to`` (the one rule of who sees what), so a
token bound to an organisation sees that organisation's incidents only and nobody outside the
rule learns that a confidential incident exists (a 404, like a missing id)."""

from django.db.models import Prefetch
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters, viewsets
from rest_framework.pagination import CursorPagination

from incidents.api.filters import IncidentFilter
from incidents.api.serializers import IncidentSerializer
from incidents.models import Incident, IncidentService
from itsm.api_auth import ActorPermission, actor_of


class IncidentCursor(CursorPagination):
    """Stable pages through millions of rows: a client syncs "changed since" page by page."""

    ordering = ("-opened_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = IncidentSerializer
    permission_classes = [ActorPermission]
    required_permission = "incidents.view_incident"
    pagination_class = IncidentCursor
    filterset_class = IncidentFilter
    filter_backends = [
        DjangoFilterBackend,
        filters.SearchFilter,
    ]
    search_fields = ["title", "description"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no caller
            return Incident.objects.none()
        return (
            Incident.objects.visible_to(actor_of(self.request))
            .select_related("assignee", "assignment_group", "organization")
            .prefetch_related(
                Prefetch(
                    "affected",
                    queryset=IncidentService.objects.select_related("service").order_by(
                        "service__display_order", "service__name", "id"
                    ),
                )
            )
        )

"""Incidents in the API: read through ``visible_to`` (the one rule of who sees what), so a
token bound to an organisation sees that organisation's incidents only and nobody outside the
rule learns that a confidential incident exists (a 404, like a missing id). Changes are actions
that call ``incidents/workflow.py``; the API holds no rule of its own.

Errors, one shape (``{"detail": …}`` or a message per field): a refused input 400, a permission
403, an incident the caller cannot see 404, an illegal transition 409, a stale ``If-Match``
412 (with the current version). Each incident carries its version as ``ETag``; a write with
``If-Match`` is refused when the incident changed since in a way that clashes with it.
"""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from incidents import workflow
from incidents.api import serializers as bodies
from incidents.api.filters import IncidentFilter
from incidents.api.serializers import IncidentSerializer, incidents_to_show
from incidents.models import Incident
from itsm.api_auth import ActorPermission, actor_of
from itsm.api_filters import SearchFilter


class IncidentCursor(CursorPagination):
    """Stable pages through millions of rows: a client syncs "changed since" page by page."""

    ordering = ("-opened_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "illegal_transition"


def _etag(incident):
    return f'"{incident.version}"'


def _expected_version(request):
    """The version ``If-Match`` names (``"7"``, as our ETag is), or None without the header."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    value = header.removeprefix("W/").strip('"')
    if not value.isdigit():
        raise exceptions.ValidationError({"If-Match": ['Give the incident\'s ETag, e.g. "7".']})
    return int(value)


IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The incident's ETag as read; the change is refused (412) if it went stale.",
)
WRITE_RESPONSES = {
    200: IncidentSerializer,
    400: OpenApiResponse(description="A refused input: a message per field."),
    403: OpenApiResponse(description="The credential may not make this change."),
    404: OpenApiResponse(description="No incident the caller may see has this id."),
    409: OpenApiResponse(description="The incident's state does not allow this change."),
    412: OpenApiResponse(description="The incident changed since the If-Match version."),
}


class IncidentViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = IncidentSerializer
    permission_classes = [ActorPermission]
    required_permission = "incidents.view_incident"
    pagination_class = IncidentCursor
    filterset_class = IncidentFilter
    filter_backends = [DjangoFilterBackend, SearchFilter]
    search_fields = ["title", "description"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no caller
            return Incident.objects.none()
        incidents = Incident.objects.visible_to(actor_of(self.request))
        if self.action in ("list", "retrieve"):
            return incidents_to_show(incidents)
        # A change hands the whole row to the workflow; it is shown afterwards as read again.
        return incidents.select_related("assignee", "assignment_group", "organization")

    def retrieve(self, request, *args, **kwargs):
        incident = self.get_object()
        return Response(self.get_serializer(incident).data, headers={"ETag": _etag(incident)})

    def _act(self, request, change, body_class=None):
        """Run ``change(incident, actor=…, expected_version=…, **body)`` and answer with the
        incident as it is now."""
        incident = self.get_object()
        values = {}
        if body_class is not None:
            body = body_class(data=request.data)
            body.is_valid(raise_exception=True)
            values = body.validated_data
        try:
            change(
                incident,
                actor=actor_of(request),
                expected_version=_expected_version(request),
                **values,
            )
        except workflow.IncidentNotFound:
            raise exceptions.NotFound() from None
        except workflow.NotPermitted as exc:
            raise exceptions.PermissionDenied(str(exc)) from None
        except workflow.IllegalTransition as exc:
            raise Conflict(str(exc)) from None
        except workflow.StaleVersion as exc:
            # Answered here, not raised: an APIException would turn the version into text.
            return Response(
                {"detail": str(exc), "current_version": exc.current_version},
                status=status.HTTP_412_PRECONDITION_FAILED,
                headers={"ETag": f'"{exc.current_version}"'},
            )
        except workflow.WorkflowError as exc:
            raise exceptions.ValidationError(
                {exc.field or "non_field_errors": [str(exc)]}
            ) from None
        shown = incidents_to_show(Incident.objects.visible_to(actor_of(request)))
        incident = shown.get(pk=incident.pk)
        return Response(self.get_serializer(incident).data, headers={"ETag": _etag(incident)})

    @extend_schema(request=None, parameters=[IF_MATCH], responses=WRITE_RESPONSES)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Take the incident: meets the response target."""
        return self._act(request, workflow.acknowledge)

    @extend_schema(
        request=bodies.AssignSerializer, parameters=[IF_MATCH], responses=WRITE_RESPONSES
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Give the incident to a person (username) and/or a group (name); null clears."""
        return self._act(request, workflow.assign, bodies.AssignSerializer)

    @extend_schema(request=bodies.HoldSerializer, parameters=[IF_MATCH], responses=WRITE_RESPONSES)
    @action(detail=True, methods=["post"])
    def hold(self, request, pk=None):
        """Pause the SLA clock, with the reason."""
        return self._act(request, workflow.hold, bodies.HoldSerializer)

    @extend_schema(request=None, parameters=[IF_MATCH], responses=WRITE_RESPONSES)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Restart the SLA clock."""
        return self._act(request, workflow.resume)

    @extend_schema(
        request=bodies.UpdateSerializer, parameters=[IF_MATCH], responses=WRITE_RESPONSES
    )
    @action(detail=True, methods=["post"])
    def updates(self, request, pk=None):
        """Post a work note, or (``is_public``) an update customers read and are mailed."""
        return self._act(request, workflow.post_update, bodies.UpdateSerializer)

    @extend_schema(
        request=bodies.ResolveSerializer, parameters=[IF_MATCH], responses=WRITE_RESPONSES
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """Service is restored: meets the resolution target."""
        return self._act(request, workflow.resolve, bodies.ResolveSerializer)

    @extend_schema(request=None, parameters=[IF_MATCH], responses=WRITE_RESPONSES)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._act(request, workflow.close)

    @extend_schema(
        request=bodies.ReopenSerializer, parameters=[IF_MATCH], responses=WRITE_RESPONSES
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        """The fix did not hold: back to acknowledged."""
        return self._act(request, workflow.reopen, bodies.ReopenSerializer)

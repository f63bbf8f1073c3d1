"""Problems in the API (``/api/v1/problems/``): read through ``visible_to`` (a token bound to a
customer organisation reads none), changes as actions calling ``problems/workflow.py``, with
the incident API's error shapes: 400 a refused input (a message per field), 403 a permission,
404 an unseen problem, 409 an illegal transition, 412 a stale ``If-Match`` (ETag = version)."""

from django.db.models import Count, Prefetch
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from itsm.actors import scope_q
from itsm.api_auth import ActorPermission, actor_of
from itsm.api_filters import SearchFilter
from problems import workflow
from problems.api import serializers as bodies
from problems.api.filters import ProblemFilter
from problems.api.serializers import ProblemSerializer
from problems.models import Problem
from services.models import Service


class ProblemCursor(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "illegal_transition"


def _etag(problem):
    return f'"{problem.version}"'


def _expected_version(request):
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    value = header.removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise exceptions.ValidationError({"If-Match": ['Give the problem\'s ETag, e.g. "7".']})
    return int(value)


IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The problem's ETag as read; the change is refused (412) if it went stale.",
)
WRITE_RESPONSES = {
    200: ProblemSerializer,
    400: OpenApiResponse(description="A refused input: a message per field."),
    403: OpenApiResponse(description="The credential may not make this change."),
    404: OpenApiResponse(description="No problem the caller may see has this id."),
    409: OpenApiResponse(description="The problem's state does not allow this change."),
    412: OpenApiResponse(description="The problem changed since the If-Match version."),
}


class ProblemViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ProblemSerializer
    permission_classes = [ActorPermission]
    required_permission = "problems.view_problem"
    pagination_class = ProblemCursor
    filterset_class = ProblemFilter
    filter_backends = [DjangoFilterBackend, SearchFilter]
    search_fields = ["title"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no caller
            return Problem.objects.none()
        actor = actor_of(self.request)
        visible = scope_q("incident", actor, prefix="incidents__")
        return (
            Problem.objects.visible_to(actor)
            .select_related("owner", "group__group")
            .prefetch_related(
                Prefetch("services", queryset=Service.objects.order_by("display_order", "name"))
            )
            .annotate(linked_incidents=Count("incidents", filter=visible))
        )

    def retrieve(self, request, *args, **kwargs):
        problem = self.get_object()
        return Response(self.get_serializer(problem).data, headers={"ETag": _etag(problem)})

    def _act(self, request, change, body_class=None):
        problem = self.get_object()
        values = {}
        if body_class is not None:
            body = body_class(data=request.data)
            body.is_valid(raise_exception=True)
            values = body.validated_data
        try:
            change(
                problem,
                actor=actor_of(request),
                expected_version=_expected_version(request),
                **values,
            )
        except workflow.ProblemNotFound:
            raise exceptions.NotFound() from None
        except workflow.NotPermitted as exc:
            raise exceptions.PermissionDenied(str(exc)) from None
        except workflow.IllegalTransition as exc:
            raise Conflict(str(exc)) from None
        except workflow.StaleVersion as exc:
            return Response(
                {"detail": str(exc), "current_version": exc.current_version},
                status=status.HTTP_412_PRECONDITION_FAILED,
                headers={"ETag": f'"{exc.current_version}"'},
            )
        except workflow.WorkflowError as exc:
            raise exceptions.ValidationError(
                {exc.field or "non_field_errors": [str(exc)]}
            ) from None
        problem = self.get_queryset().get(pk=problem.pk)
        return Response(self.get_serializer(problem).data, headers={"ETag": _etag(problem)})

    @extend_schema(request=None, parameters=[IF_MATCH], responses=WRITE_RESPONSES)
    @action(detail=True, methods=["post"], url_path="start-investigation")
    def start_investigation(self, request, pk=None):
        """New → investigating; the caller becomes the owner if it has none."""
        return self._act(request, workflow.start_investigation)

    @extend_schema(
        request=bodies.ProblemKnownErrorSerializer, parameters=[IF_MATCH], responses=WRITE_RESPONSES
    )
    @action(detail=True, methods=["post"], url_path="known-error")
    def known_error(self, request, pk=None):
        """Record a known error: the workaround (required) is offered on incidents."""
        return self._act(request, workflow.record_known_error, bodies.ProblemKnownErrorSerializer)

    @extend_schema(
        request=bodies.ProblemResolveSerializer, parameters=[IF_MATCH], responses=WRITE_RESPONSES
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """The permanent fix (required) is in place."""
        return self._act(request, workflow.resolve, bodies.ProblemResolveSerializer)

    @extend_schema(request=None, parameters=[IF_MATCH], responses=WRITE_RESPONSES)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._act(request, workflow.close)

    @extend_schema(
        request=bodies.ProblemReopenSerializer, parameters=[IF_MATCH], responses=WRITE_RESPONSES
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        """The fix did not hold: back to investigating, with the reason."""
        return self._act(request, workflow.reopen, bodies.ProblemReopenSerializer)

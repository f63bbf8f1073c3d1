"""The catalog in the API: services, organisations, contacts, subscriptions, SLA policies,
business calendars and maintenance windows.

Reads go through ``Model.objects.visible_to`` (``services.visibility``): a token bound to an
organisation sees its organisation, contacts and subscriptions only, and the public services;
a row the caller may not see is a 404, like a missing id.

Writes need the model permission (``services.add_service``, ``change_…``, ``delete_…``): a
token gets them from its scopes (``admin`` for the shared catalog, ``write`` for contacts and
subscriptions, see ``itsm.tokens``), a person from their groups. The shared rows (services,
organisations, SLA policies, calendars, maintenance) are never written by an organisation's
token; a contact or a subscription only inside its own organisation. The writes are
``services.workflow``'s; the model's validation answers 400 with a message per field, a
maintenance move the window's status does not allow 409.
"""

from django.db.models import IntegerField, OuterRef, Prefetch, Q, Subquery
from django.db.models.expressions import Case, F, Value, When
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, filters, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response

from itsm.actors import subject_ids
from itsm.api_auth import actor_of
from itsm.api_filters import SearchFilter
from services import visibility, workflow
from services.api import filters as catalog_filters
from services.api import serializers as bodies
from services.models import (
    BusinessCalendar,
    BusinessHours,
    CauseKind,
    Contact,
    Holiday,
    MaintenanceStatus,
    MaintenanceWindow,
    Organization,
    Service,
    ServiceStatusInterval,
    SlaPolicy,
    SlaTarget,
    Subscription,
)


class CatalogPage(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class StatusHistoryCursor(CursorPagination):
    """Newest first, stable while new intervals are written."""

    ordering = ("-valid_from", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "illegal_transition"


class CatalogPermission(permissions.BasePermission):
    """The Django model permission the request needs (``view`` to read; ``add``, ``change``,
    ``delete`` by method, or the action's own in ``action_permissions``), and, for the shared
    rows (``shared_rows`` on the view), a caller that is staff, not an organisation's token."""

    METHODS = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add"}
    METHODS.update(PUT="change", PATCH="change", DELETE="delete")
    message = "This credential may not read or change this resource."

    def has_permission(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        needed = getattr(view, "action_permissions", {}).get(view.action)
        needed = needed or self.METHODS.get(request.method, "change")
        model = view.queryset_model
        if not user.has_perm(f"{model._meta.app_label}.{needed}_{model._meta.model_name}"):
            return False
        if (
            needed != "view"
            and view.shared_rows
            and not visibility.may_write_shared(actor_of(request))
        ):
            self.message = "A token bound to an organisation may not change the catalog."
            return False
        return True


REFUSED = OpenApiResponse(description="A refused input: a message per field; nothing changed.")
FORBIDDEN = OpenApiResponse(description="The credential may not make this change.")
MISSING = OpenApiResponse(description="No row the caller may see has this id.")


def _write_responses(body, created=False):
    return {
        (201 if created else 200): body,
        400: REFUSED,
        403: FORBIDDEN,
        **({} if created else {404: MISSING}),
    }


class CatalogViewSet(viewsets.GenericViewSet):
    queryset_model = None
    shared_rows = True
    permission_classes = [CatalogPermission]
    pagination_class = CatalogPage
    filter_backends = [DjangoFilterBackend, SearchFilter, filters.OrderingFilter]
    http_method_names = ["get", "post", "patch", "put", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no caller
            return self.queryset_model.objects.none()
        return self.rows(actor_of(self.request))

    def rows(self, actor):
        """The rows ``actor`` may see, with what the serializer reads."""
        raise NotImplementedError


class ReadWriteViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    CatalogViewSet,
):
    """List, read, create and change; the body in ``input_serializer_class`` (the output is
    ``serializer_class``, read back through ``rows`` after the write)."""

    input_serializer_class = None

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update") and self.input_serializer_class:
            return self.input_serializer_class
        return self.serializer_class

    def create(self, request, *args, **kwargs):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        row = body.save()
        return Response(self._shown(row), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        row = self.get_object()
        body = self.get_serializer(row, data=request.data, partial=kwargs.pop("partial", False))
        body.is_valid(raise_exception=True)
        row = body.save()
        return Response(self._shown(row))

    def _shown(self, row):
        row = self.get_queryset().get(pk=row.pk)
        return self.serializer_class(row, context=self.get_serializer_context()).data


def _documented(resource, body, input_body=None):
    """The schema of a read-write resource's operations, with the errors each one answers."""
    input_body = input_body or body
    return extend_schema_view(
        list=extend_schema(summary=f"List {resource}"),
        retrieve=extend_schema(
            summary=f"Read one of the {resource}", responses={200: body, 404: MISSING}
        ),
        create=extend_schema(
            summary=f"Add to the {resource}",
            request=input_body,
            responses=_write_responses(body, created=True),
        ),
        update=extend_schema(
            summary=f"Replace one of the {resource}",
            request=input_body,
            responses=_write_responses(body),
        ),
        partial_update=extend_schema(
            summary=f"Change some fields of one of the {resource}",
            request=input_body,
            responses=_write_responses(body),
        ),
    )


# --- services ----------------------------------------------------------------------------------


@_documented("services", bodies.ServiceSerializer, bodies.ServiceInputSerializer)
class ServiceViewSet(ReadWriteViewSet):
    """The services, with their dependencies and current status. A private service is seen by
    staff only."""

    queryset_model = Service
    serializer_class = bodies.ServiceSerializer
    input_serializer_class = bodies.ServiceInputSerializer
    filterset_class = catalog_filters.ServiceFilter
    search_fields = ["name", "slug", "description"]
    ordering_fields = ["name", "slug", "display_order", "criticality", "status", "updated_at"]
    ordering = ["display_order", "name", "id"]
    action_permissions = {"status_history": "view"}

    def rows(self, actor):
        current = ServiceStatusInterval.objects.filter(
            service=OuterRef("pk"), valid_to__isnull=True
        ).values("valid_from")[:1]
        return (
            Service.objects.visible_to(actor)
            .select_related("group", "owner_team", "default_sla_policy")
            .annotate(status_since=Subquery(current))
            .prefetch_related(
                Prefetch(
                    "dependencies",
                    queryset=Service.objects.visible_to(actor).order_by("slug").only("pk", "slug"),
                )
            )
        )

    @extend_schema(
        summary="A service's status history, newest first",
        responses={200: bodies.StatusIntervalSerializer(many=True), 404: MISSING},
        filters=False,
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="status-history",
        pagination_class=StatusHistoryCursor,
        filter_backends=[],
    )
    def status_history(self, request, pk=None):
        """Each interval: the status, what caused it (an incident, a maintenance window, staff,
        a dependency) and when. The id of an incident the caller may not see is left out."""
        service = self.get_object()
        actor = actor_of(request)
        intervals = ServiceStatusInterval.objects.filter(service=service).annotate(
            shown_cause_id=_shown_cause(actor)
        )
        page = self.paginate_queryset(intervals)
        return self.get_paginated_response(bodies.StatusIntervalSerializer(page, many=True).data)


def _shown_cause(actor):
    """The cause id when the caller may see the incident behind it (one ``CASE`` in the same
    query); any other cause is shown as it is."""
    incidents = subject_ids(CauseKind.INCIDENT, actor)
    if incidents is None:
        return F("cause_id")
    return Case(
        When(~Q(cause_kind=CauseKind.INCIDENT) | Q(cause_id__in=incidents), then=F("cause_id")),
        default=Value(None),
        output_field=IntegerField(),
    )


# --- customers ---------------------------------------------------------------------------------


@_documented("organisations", bodies.OrganizationSerializer)
class OrganizationViewSet(ReadWriteViewSet):
    """Customer organisations. An organisation's token sees its own only."""

    queryset_model = Organization
    serializer_class = bodies.OrganizationSerializer
    filterset_class = catalog_filters.OrganizationFilter
    search_fields = ["name", "slug"]
    ordering_fields = ["name", "slug", "created_at"]
    ordering = ["name", "id"]

    def rows(self, actor):
        return Organization.objects.visible_to(actor)


@_documented("contacts", bodies.ContactSerializer)
class ContactViewSet(ReadWriteViewSet):
    """People we may email: an organisation's contacts, and public subscribers (no
    organisation). An organisation's token sees and writes its own contacts only."""

    queryset_model = Contact
    shared_rows = False
    serializer_class = bodies.ContactSerializer
    filterset_class = catalog_filters.ContactFilter
    search_fields = ["name", "email"]
    ordering_fields = ["name", "email", "created_at"]
    ordering = ["name", "id"]

    def rows(self, actor):
        return Contact.objects.visible_to(actor).select_related("organization")


@extend_schema_view(
    destroy=extend_schema(
        summary="Remove a subscription", responses={204: None, 403: FORBIDDEN, 404: MISSING}
    )
)
@_documented("subscriptions", bodies.SubscriptionSerializer)
class SubscriptionViewSet(mixins.DestroyModelMixin, ReadWriteViewSet):
    """A contact or a whole organisation subscribed to a service, by email or webhook. An
    organisation's token sees and writes those of its organisation and its contacts only."""

    queryset_model = Subscription
    shared_rows = False
    serializer_class = bodies.SubscriptionSerializer
    filterset_class = catalog_filters.SubscriptionFilter
    search_fields = ["service__name", "contact__email", "organization__name", "webhook_url"]
    ordering_fields = ["created_at", "id"]
    ordering = ["id"]
    http_method_names = [*CatalogViewSet.http_method_names, "delete"]

    def rows(self, actor):
        return Subscription.objects.visible_to(actor).select_related(
            "service", "contact", "organization"
        )


# --- SLA policies and calendars -------------------------------------------------------------------


@_documented("SLA policies", bodies.SlaPolicySerializer, bodies.SlaPolicyInputSerializer)
class SlaPolicyViewSet(ReadWriteViewSet):
    """Response and resolution targets per priority, on a business calendar. A change moves
    the deadlines of the open incidents it governs (through the SLA sweep)."""

    queryset_model = SlaPolicy
    serializer_class = bodies.SlaPolicySerializer
    input_serializer_class = bodies.SlaPolicyInputSerializer
    filterset_class = catalog_filters.SlaPolicyFilter
    search_fields = ["name"]
    ordering_fields = ["name", "updated_at"]
    ordering = ["name", "id"]

    def rows(self, actor):
        return SlaPolicy.objects.select_related("calendar").prefetch_related(
            Prefetch("targets", queryset=SlaTarget.objects.order_by("priority"))
        )


@_documented(
    "business calendars", bodies.BusinessCalendarSerializer, bodies.BusinessCalendarInputSerializer
)
class BusinessCalendarViewSet(ReadWriteViewSet):
    """When the SLA clock runs: a time zone, weekly hours and holidays, or 24×7."""

    queryset_model = BusinessCalendar
    serializer_class = bodies.BusinessCalendarSerializer
    input_serializer_class = bodies.BusinessCalendarInputSerializer
    filterset_class = catalog_filters.BusinessCalendarFilter
    search_fields = ["name", "time_zone"]
    ordering_fields = ["name", "updated_at"]
    ordering = ["name", "id"]

    def rows(self, actor):
        return BusinessCalendar.objects.prefetch_related(
            Prefetch("hours", queryset=BusinessHours.objects.order_by("weekday", "opens_at")),
            Prefetch("holidays", queryset=Holiday.objects.order_by("date")),
        )


# --- maintenance -------------------------------------------------------------------------------


MOVED = {
    200: bodies.MaintenanceSerializer,
    403: FORBIDDEN,
    404: MISSING,
    409: OpenApiResponse(description="The window's status does not allow this move."),
}


@_documented("maintenance windows", bodies.MaintenanceSerializer, bodies.MaintenanceInputSerializer)
class MaintenanceViewSet(ReadWriteViewSet):
    """Planned maintenance. Scheduling tells the services' subscribers; starting puts the
    services under maintenance, completing or cancelling ends it (``services.workflow``)."""

    queryset_model = MaintenanceWindow
    serializer_class = bodies.MaintenanceSerializer
    input_serializer_class = bodies.MaintenanceInputSerializer
    filterset_class = catalog_filters.MaintenanceFilter
    search_fields = ["title", "public_description"]
    ordering_fields = ["scheduled_start", "scheduled_end", "created_at"]
    ordering = ["-scheduled_start", "-id"]
    action_permissions = {"start": "change", "complete": "change", "cancel": "change"}

    def rows(self, actor):
        return MaintenanceWindow.objects.visible_to(actor).prefetch_related(
            Prefetch(
                "services",
                queryset=Service.objects.visible_to(actor).order_by("slug").only("pk", "slug"),
                to_attr="shown_services",
            )
        )

    def _move(self, to):
        window = self.get_object()
        try:
            workflow.move_maintenance(window, to=to)
        except workflow.CatalogError as exc:
            raise Conflict(str(exc)) from None
        return Response(self._shown(window))

    @extend_schema(summary="Start the maintenance now", request=None, responses=MOVED)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """A scheduled window starts: its services go under maintenance."""
        return self._move(MaintenanceStatus.IN_PROGRESS)

    @extend_schema(summary="Complete the maintenance", request=None, responses=MOVED)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        """A window in progress ends: its services leave maintenance."""
        return self._move(MaintenanceStatus.COMPLETED)

    @extend_schema(summary="Cancel the maintenance", request=None, responses=MOVED)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """A scheduled window will not happen: subscribers are told."""
        return self._move(MaintenanceStatus.CANCELLED)

"""Integrators' webhook endpoints in the API: ``/api/v1/webhooks/``.

Managed by staff holding the ``notifications.*_webhookendpoint`` permissions, by tokens with the
``admin`` scope, and by a token bound to an organisation with the ``write`` scope, which sees
and manages that organisation's endpoints only (another's is a 404, like a missing id). Changes
call ``notifications.webhooks``; the secret is answered once, on create and on
``rotate-secret``; ``test`` queues a ``ping`` through the outbox.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from itsm.api_auth import actor_of
from notifications import webhooks
from notifications.api.serializers import (
    PingQueuedSerializer,
    SecretSerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointInputSerializer,
    WebhookEndpointSerializer,
)
from notifications.models import WebhookEndpoint

_PERMISSION = {
    "list": "view",
    "retrieve": "view",
    "create": "add",
    "update": "change",
    "partial_update": "change",
    "rotate_secret": "change",
    "test": "change",
    "destroy": "delete",
}


class EndpointPermission(permissions.BasePermission):
    """The caller holds the action's permission on webhook endpoints (a token through its
    scopes, a person through their groups)."""

    message = "This credential may not read or change webhook endpoints."

    def has_permission(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        verb = _PERMISSION.get(view.action, "change")
        return user.has_perm(f"notifications.{verb}_webhookendpoint")


def _bound_organization(request):
    return getattr(actor_of(request), "organization_id", None)


def _refused(exc):
    """A model validation error as the API's one error shape: a message per field."""
    if hasattr(exc, "message_dict"):
        return exceptions.ValidationError(exc.message_dict)
    return exceptions.ValidationError({"detail": exc.messages})


REFUSALS = {
    400: OpenApiResponse(description="A refused input: a message per field."),
    403: OpenApiResponse(description="The credential may not manage webhook endpoints."),
    404: OpenApiResponse(description="No endpoint the caller may manage has this id."),
}


@extend_schema_view(
    list=extend_schema(summary="Webhook endpoints the caller manages"),
    retrieve=extend_schema(summary="A webhook endpoint (never its secret)"),
    destroy=extend_schema(summary="Delete a webhook endpoint", responses={204: None, **REFUSALS}),
)
class WebhookEndpointViewSet(viewsets.ModelViewSet):
    serializer_class = WebhookEndpointSerializer
    permission_classes = [EndpointPermission]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no caller
            return WebhookEndpoint.objects.none()
        return (
            WebhookEndpoint.objects.visible_to(actor_of(self.request))
            .select_related("organization")
            .with_last_delivery()
            .order_by("-created_at", "-id")
        )

    def _input(self, request, *, partial):
        body = WebhookEndpointInputSerializer(
            data=request.data,
            partial=partial,
            bound_organization_id=_bound_organization(request),
        )
        body.is_valid(raise_exception=True)
        return dict(body.validated_data)

    def _answer(self, endpoint, serializer_class=WebhookEndpointSerializer, code=200):
        endpoint = self.get_queryset().get(pk=endpoint.pk)
        return Response(serializer_class(endpoint).data, status=code)

    @extend_schema(
        summary="Subscribe a URL to events",
        request=WebhookEndpointInputSerializer,
        responses={201: WebhookEndpointCreatedSerializer, **REFUSALS},
    )
    def create(self, request, *args, **kwargs):
        values = self._input(request, partial=False)
        bound = _bound_organization(request)
        if bound is not None:
            values["organization_id"] = bound
            values.pop("organization", None)
        try:
            endpoint = webhooks.create_endpoint(actor=actor_of(request), **values)
        except DjangoValidationError as exc:
            raise _refused(exc) from None
        answer = self.get_queryset().get(pk=endpoint.pk)
        answer.secret = endpoint.secret
        return Response(
            WebhookEndpointCreatedSerializer(answer).data, status=status.HTTP_201_CREATED
        )

    def _change(self, request, *, partial):
        endpoint = self.get_object()
        changes = self._input(request, partial=partial)
        if _bound_organization(request) is not None:
            changes.pop("organization", None)  # validated to be its own: nothing to change
        try:
            webhooks.change_endpoint(endpoint, actor=actor_of(request), changes=changes)
        except DjangoValidationError as exc:
            raise _refused(exc) from None
        except webhooks.EndpointError as exc:
            raise exceptions.ValidationError({exc.field or "detail": [str(exc)]}) from None
        return self._answer(endpoint)

    @extend_schema(
        summary="Replace a webhook endpoint's settings",
        request=WebhookEndpointInputSerializer,
        responses={200: WebhookEndpointSerializer, **REFUSALS},
    )
    def update(self, request, *args, **kwargs):
        return self._change(request, partial=False)

    @extend_schema(
        summary="Change some of a webhook endpoint's settings",
        request=WebhookEndpointInputSerializer,
        responses={200: WebhookEndpointSerializer, **REFUSALS},
    )
    def partial_update(self, request, *args, **kwargs):
        return self._change(request, partial=True)

    def perform_destroy(self, instance):
        webhooks.delete_endpoint(instance, actor=actor_of(self.request))

    @extend_schema(
        summary="Give the endpoint a new signing secret (answered once)",
        request=None,
        responses={200: SecretSerializer, **REFUSALS},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        endpoint = self.get_object()
        secret = webhooks.rotate_secret(endpoint, actor=actor_of(request))
        return Response({"secret": secret})

    @extend_schema(
        summary="Send a ping event to the endpoint through the outbox",
        request=None,
        responses={202: PingQueuedSerializer, **REFUSALS},
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        endpoint = self.get_object()
        try:
            event = webhooks.send_ping(endpoint, actor=actor_of(request))
        except webhooks.EndpointError as exc:
            raise exceptions.ValidationError({exc.field or "detail": [str(exc)]}) from None
        return Response(
            {"event_id": event.pk, "detail": "A ping is queued; it arrives within seconds."},
            status=status.HTTP_202_ACCEPTED,
        )

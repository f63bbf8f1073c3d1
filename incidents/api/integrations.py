"""Inbound alert webhooks: thin views that read the body, check it and call ``incidents.ingest``.

- ``POST /api/v1/integrations/alertmanager/``: Prometheus Alertmanager's webhook (version 4).
- ``POST /api/v1/integrations/grafana/``: Grafana alerting's webhook; with
  ``GRAFANA_WEBHOOK_SECRET`` set, ``X-Grafana-Alerting-Signature`` must be the hex HMAC-SHA256 of
  the body under that secret (else 401).
- ``POST /api/v1/integrations/events/``: the PagerDuty Events API v2 shape.
- ``/api/v1/integrations/rules/``: the routing rules (``AlertRule``), read and changed with the
  ``incidents.*_alertrule`` model permissions (staff in the admin hold them by group).

Each needs a bearer token with the ``integration`` scope (no token 401, another scope 403). A
body larger than ``INTEGRATION_MAX_BODY`` bytes (default 1 MiB) is answered 413, one that is not
what the source sends 400 with a message per field (``{"alerts[0].startsAt": ["…"]}``); both are
kept as a ``RejectedPayload`` (the first 64 KiB of the body) for staff to see, and logged
without the body or any credential. Nothing else is written for a refused body.

Not throttled per token like the rest of the API: an alert source sends bursts in an outage,
exactly when dropping alerts costs most; it is a token staff issued, and a repeat costs one
UPDATE.
"""

import hashlib
import hmac
import ipaddress
import logging

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import alert_payloads, ingest
from incidents.models import AlertRule, IntegrationSource, RejectedPayload
from itsm.actors import Actor
from itsm.api_auth import ActorPermission, BearerTokenAuthentication, TokenUser
from itsm.models import TokenScope
from services.models import Service

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1024 * 1024
KEPT_BODY = 64 * 1024  # of a refused body, what staff see


def max_body():
    return int(getattr(settings, "INTEGRATION_MAX_BODY", DEFAULT_MAX_BODY))


class IntegrationScope(permissions.BasePermission):
    """A token issued with the ``integration`` scope (a person's session or another scope's
    token does not push alerts)."""

    message = "This endpoint needs an API token with the integration scope."

    def has_permission(self, request, view):
        user = request.user
        return isinstance(user, TokenUser) and TokenScope.INTEGRATION in (user.token.scopes or ())


class Refused(Exception):
    """A body the endpoint will not apply: the status, the per-field ``errors`` answered, the
    text kept and logged, and (``kept``) the start of a body too large to read whole."""

    def __init__(self, status_code, errors, error_text, *, kept=None):
        super().__init__(error_text)
        self.status_code, self.errors, self.error_text, self.kept = (
            status_code,
            errors,
            error_text,
            kept,
        )


REFUSALS = {
    400: OpenApiResponse(description="Malformed payload: a message per field; kept for staff."),
    401: OpenApiResponse(description="No valid token (Grafana: or a wrong signature)."),
    403: OpenApiResponse(description="The token lacks the integration scope."),
    413: OpenApiResponse(description="The body is larger than INTEGRATION_MAX_BODY."),
}
APPLIED = inline_serializer(
    "AlertsApplied",
    {
        "new": serializers.IntegerField(),
        "repeats": serializers.IntegerField(),
        "refired": serializers.IntegerField(),
        "resolved": serializers.IntegerField(),
        "ignored": serializers.IntegerField(),
        "incidents_opened": serializers.ListField(child=serializers.IntegerField()),
        "incidents_resolved": serializers.ListField(child=serializers.IntegerField()),
    },
)
EVENT_ACCEPTED = inline_serializer(
    "EventAccepted",
    {
        "status": serializers.CharField(),
        "message": serializers.CharField(),
        "dedup_key": serializers.CharField(),
    },
)


def _described(summary, ok_status=200, ok_body=APPLIED):
    return extend_schema(
        summary=summary,
        request={"application/json": OpenApiTypes.OBJECT},
        responses={ok_status: ok_body, **REFUSALS},
    )


class IntegrationView(APIView):
    source = None
    authentication_classes = [BearerTokenAuthentication]  # machines: no session, no CSRF
    permission_classes = [ActorPermission, IntegrationScope]
    required_permission = "incidents.add_incident"
    throttle_classes = []  # see the module docstring
    parser_classes = []  # the body is read here, bounded, before anything parses it

    def handle(self, request):
        body = b""
        try:
            body = self._read_body(request)
            self.verify(request, body)
            try:
                data = alert_payloads.decode(body)
            except alert_payloads.PayloadError as exc:
                raise Refused(400, exc.errors, f"{exc}: {exc.__cause__ or ''}") from None
            try:
                alerts = alert_payloads.parse(self.source, data)
            except alert_payloads.PayloadError as exc:
                raise Refused(400, exc.errors, str(exc)) from None
        except Refused as refused:
            return self._refuse(request, refused, body)
        outcome = ingest.ingest(self.source, alerts, actor=integration_actor(request, self.source))
        return self.answer(outcome)

    def _read_body(self, request):
        limit = max_body()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            # Keep the start for staff; never read the rest into memory.
            raise Refused(413, *_too_big(declared, limit), kept=request._request.read(KEPT_BODY))
        body = request._request.read(limit + 1)  # the raw stream: no Django size check first
        if len(body) > limit:
            raise Refused(413, *_too_big(len(body), limit))
        return body

    def verify(self, request, body):
        """Check a signature, raising ``Refused`` (401)."""

    def answer(self, outcome):
        return Response(outcome.as_dict(), status=status.HTTP_200_OK)

    def _refuse(self, request, refused, body):
        body = refused.kept or body
        RejectedPayload.objects.create(
            source=self.source,
            status_code=refused.status_code,
            # PostgreSQL text holds no NUL character: a hostile body must still be kept.
            error=refused.error_text[:10000].replace("\x00", "\ufffd"),
            body=body[:KEPT_BODY].decode("utf-8", "replace").replace("\x00", "\ufffd"),
            body_size=max(len(body), int(request.META.get("CONTENT_LENGTH") or 0)),
            client_ip=_client_ip(request),
        )
        log.warning(
            "refused %s payload (%s) from %s: %s",
            self.source,
            refused.status_code,
            _client_ip(request),
            refused.error_text[:500].replace("\x00", "\ufffd"),
        )
        return Response(refused.errors, status=refused.status_code)


def _too_big(size, limit):
    message = _("The body is %(size)d bytes; at most %(limit)d are accepted.") % {
        "size": size,
        "limit": limit,
    }
    return {"non_field_errors": [message]}, message


def _client_ip(request):
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def integration_actor(request, source):
    """The token's actor as the integration it is: the timeline says "Alertmanager (token
    prom-prod)", kind integration, with the token's own permissions."""
    token_actor = request.user.actor
    return Actor.integration(
        ref=token_actor.ref,
        label=f"{IntegrationSource(source).label} ({request.user.token.name})"[:150],
        permissions=token_actor.permissions,
    )


class AlertmanagerWebhook(IntegrationView):
    """Prometheus Alertmanager's webhook (version 4), as a ``webhook_config`` receiver with
    ``http_config.authorization`` sending the token."""

    source = IntegrationSource.ALERTMANAGER

    @_described("Receive Alertmanager's webhook (version 4)")
    def post(self, request):
        return self.handle(request)


class GrafanaWebhook(IntegrationView):
    """Grafana alerting's webhook contact point (Authorization header: the token)."""

    source = IntegrationSource.GRAFANA

    @_described("Receive Grafana alerting's webhook")
    def post(self, request):
        return self.handle(request)

    def verify(self, request, body):
        secret = getattr(settings, "GRAFANA_WEBHOOK_SECRET", "")
        if not secret:
            return
        given = request.headers.get("X-Grafana-Alerting-Signature", "").strip().lower()
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            message = _("The X-Grafana-Alerting-Signature header does not sign this body.")
            raise Refused(401, {"detail": message}, message)


class EventsWebhook(IntegrationView):
    """The PagerDuty Events API v2 (``/v2/enqueue``) shape; answered as PagerDuty does (202
    with the dedup key), so a tool's PagerDuty integration reads the answer it expects."""

    source = IntegrationSource.EVENTS

    @_described("Receive a PagerDuty Events API v2 event", 202, EVENT_ACCEPTED)
    def post(self, request):
        return self.handle(request)

    def answer(self, outcome):
        return Response(
            {
                "status": "success",
                "message": "Event processed",
                "dedup_key": outcome.fingerprints[0] if outcome.fingerprints else None,
            },
            status=status.HTTP_202_ACCEPTED,
        )


# --- routing rules -----------------------------------------------------------------------------


class AlertRuleSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(
        slug_field="slug", queryset=Service.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "source",
            "name",
            "order",
            "enabled",
            "matchers",
            "service",
            "service_status",
            "impact",
            "urgency",
            "title_template",
            "grouping",
            "group_by",
            "auto_resolve",
        ]

    def validate(self, attrs):
        """The model's own checks (matchers, template, group-by labels), as the admin runs
        them, answered per field."""
        rule = AlertRule(**{**self._current(), **attrs})
        try:
            rule.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return attrs

    def _current(self):
        if self.instance is None:
            return {}
        return {name: getattr(self.instance, name) for name in self.Meta.fields if name != "id"}


class ModelPermission(permissions.BasePermission):
    """The Django model permission the method needs (view, add, change, delete), held by a
    person through their groups or by a token through its scopes."""

    ACTIONS = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add"}
    ACTIONS.update(PUT="change", PATCH="change", DELETE="delete")
    message = "This credential may not read or change alert rules."

    def has_permission(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        action = self.ACTIONS.get(request.method, "change")
        return user.has_perm(f"incidents.{action}_alertrule")


@extend_schema_view(
    list=extend_schema(summary="Alert routing rules"),
    create=extend_schema(summary="Add an alert routing rule"),
)
class AlertRuleViewSet(viewsets.ModelViewSet):
    """How each integration's alerts are routed: label matchers → service, impact, urgency,
    title and grouping; tried by ``order``, the first match wins."""

    serializer_class = AlertRuleSerializer
    permission_classes = [ModelPermission]
    queryset = AlertRule.objects.select_related("service").order_by("source", "order", "id")
    filter_backends = [DjangoFilterBackend]
    filterset_fields = ["source", "enabled"]

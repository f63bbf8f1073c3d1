"""The API's root resources that belong to no app: who am I; and the answer for any other path."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.decorators import api_view, permission_classes, schema
from rest_framework.response import Response

from itsm.api_auth import TokenUser


@extend_schema(
    summary="The caller: its kind, name, scopes and organisation",
    responses=inline_serializer(
        "Caller",
        {
            "kind": serializers.ChoiceField(choices=["token", "user"]),
            "name": serializers.CharField(),
            "scopes": serializers.ListField(child=serializers.CharField()),
            "organization": serializers.CharField(allow_null=True),
            "expires_at": serializers.DateTimeField(allow_null=True),
        },
    ),
)
@api_view(["GET"])
def me(request):
    """What the credential of this request is: lets a script check its token before it acts."""
    user = request.user
    if isinstance(user, TokenUser):
        token = user.token
        return Response(
            {
                "kind": "token",
                "name": token.name,
                "scopes": token.scopes,
                "organization": token.organization.slug if token.organization_id else None,
                "expires_at": token.expires_at,
            }
        )
    return Response(
        {
            "kind": "user",
            "name": user.get_username(),
            "scopes": [],
            "organization": None,
            "expires_at": None,
        }
    )


@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@permission_classes([])
@schema(None)
def not_found(request, path=""):
    """Any path under ``/api/`` no route matches (``/api/v1/incidents/0.5/``): the API's JSON
    404, not the status page's HTML (whose catch-all would otherwise take it, and refuse a POST
    with Django's CSRF page)."""
    raise exceptions.NotFound()

"""The API's root resources that belong to no app: who am I."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
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

"""Django REST framework glue: bearer-token authentication and a per-token throttle.

The API's defaults are closed (``REST_FRAMEWORK`` in settings): every view needs an
authenticated caller (a token, or a signed-in staff session for the browsable docs); DRF's
Basic authentication is off.
"""

import logging

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from itsm import tokens

log = logging.getLogger(__name__)


class TokenUser:
    """``request.user`` for a request made with a token: authenticated, not a Django user.
    ``actor`` is what the workflow and ``visible_to`` are given."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, token, actor):
        self.token, self.actor = token, actor

    def get_username(self):
        return self.actor.label

    def __str__(self):
        return self.actor.label

    def has_perm(self, perm, obj=None):
        return self.actor.has_perm(perm)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer itsm_…`` (what Alertmanager's ``http_config.authorization``
    sends)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Give one token after 'Bearer'.")
        try:
            text = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        found = tokens.authenticate(text)
        if found is None:
            # Says nothing of why (unknown, revoked or expired): the caller knows its token.
            raise exceptions.AuthenticationFailed("The token is not valid.")
        token, actor = found
        return TokenUser(token, actor), token

    def authenticate_header(self, request):
        return self.keyword


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes ``BearerTokenAuthentication``."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "itsm_<key>_<secret>",
            "description": "An API token, issued in the admin or by `manage.py create_api_token`.",
        }


def actor_of(request):
    """The ``Actor`` of an API request: the token's, or the signed-in user."""
    user = request.user
    return user.actor if isinstance(user, TokenUser) else user


class ActorPermission(permissions.BasePermission):
    """The caller holds the view's ``required_permission`` ("app.codename"): a token through its
    scopes, a person through their groups. Which rows it then sees is ``visible_to``'s call."""

    message = "This credential may not read or change this resource."

    def has_permission(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        return user.has_perm(view.required_permission)


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """Requests per token (per user for a session, per address otherwise); rate
    ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"]``. DRF answers 429 with
    ``Retry-After``. When the cache is unreachable the request goes through (logged): a broken
    Redis must not turn every API call into a 500."""

    scope = "token"

    def get_cache_key(self, request, view):
        user = request.user
        if isinstance(user, TokenUser):
            ident = f"t{user.token.key}"  # random: never shared with a rebuilt database's
        elif user is not None and user.is_authenticated:
            ident = f"u{user.pk}"
        else:
            ident = f"a{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # redis raises many types; the throttle is not worth an outage
            log.warning("API throttle skipped: the cache is unreachable", exc_info=True)
            return True

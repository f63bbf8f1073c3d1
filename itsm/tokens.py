"""Issuing, using and revoking API tokens: the one write path for ``ApiToken``.

A token acts as an ``Actor`` of kind token: what it may do comes from its scopes (below), what it
may read from the read scopes (a token bound to an organisation reads that organisation's
records only, and never a confidential incident).
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from itsm.actors import Actor
from itsm.models import ApiToken, TokenScope, validate_scopes

_READ = (
    "incidents.view_incident",
    "incidents.view_incidentupdate",
    "incidents.view_incidentevent",
    "services.view_service",
    "services.view_servicegroup",
    "services.view_organization",
    "services.view_contact",
    "services.view_subscription",
    "services.view_slapolicy",
    "services.view_businesscalendar",
    "services.view_maintenancewindow",
    "problems.view_problem",
)
_WRITE = (
    "incidents.add_incident",
    "incidents.change_incident",
    "incidents.work_incident",
    "incidents.add_incidentupdate",
    "problems.work_problem",
    "services.add_subscription",
    "services.change_subscription",
    "services.delete_subscription",
    "services.add_contact",
    "services.change_contact",
)
# Integrators' webhook endpoints: an admin token manages all of them; a token bound to an
# organisation with the write scope manages that organisation's (the API narrows what it sees).
_WEBHOOK_ENDPOINTS = tuple(
    f"notifications.{verb}_webhookendpoint" for verb in ("view", "add", "change", "delete")
)
_ADMIN = (
    "services.add_service",
    "services.change_service",
    "services.delete_service",
    "services.add_maintenancewindow",
    "services.change_maintenancewindow",
    "services.add_organization",
    "services.change_organization",
    "services.add_slapolicy",
    "services.change_slapolicy",
    "services.add_businesscalendar",
    "services.change_businesscalendar",
    "incidents.view_alertrule",
    "incidents.add_alertrule",
    "incidents.change_alertrule",
    "incidents.delete_alertrule",
    *_WEBHOOK_ENDPOINTS,
)
# An alert source opens and works incidents and reads the catalog it routes to; nothing else.
_INTEGRATION = (
    "incidents.view_incident",
    "incidents.add_incident",
    "incidents.work_incident",
    "incidents.add_incidentupdate",
    "services.view_service",
)

SCOPE_PERMISSIONS = {
    TokenScope.READ: frozenset(_READ),
    TokenScope.WRITE: frozenset(_READ + _WRITE),
    TokenScope.ADMIN: frozenset(_READ + _WRITE + _ADMIN),
    TokenScope.INTEGRATION: frozenset(_INTEGRATION),
}

# How stale ``last_used_at`` may get: one write a minute per token, not one per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def permissions_of(scopes):
    found = set()
    for scope in scopes:
        found |= SCOPE_PERMISSIONS[TokenScope(scope)]
    return frozenset(found)


def actor_for(token):
    permissions = permissions_of(token.scopes)
    if token.organization_id is not None and TokenScope.WRITE in (token.scopes or ()):
        permissions |= frozenset(_WEBHOOK_ENDPOINTS)
    return Actor.token(
        ref=token.key,
        label=f"token {token.name}"[:150],
        organization_id=token.organization_id,
        permissions=permissions,
    )


def issue(*, name, scopes, organization=None, expires_at=None, created_by=None):
    """A new token; returns (token, the secret text to show once)."""
    scopes = sorted(set(scopes))
    token = ApiToken(
        name=name.strip(),
        scopes=scopes,
        organization=organization,
        expires_at=expires_at,
        created_by=created_by,
    )
    secret = token.new_secret()
    token.full_clean(exclude=["key", "digest", "created_by"])
    validate_scopes(scopes)
    token.save()
    return token, secret


def revoke(tokens, *, now=None):
    """Revoke ``tokens`` (a queryset); the number newly revoked. A revoked token stays listed."""
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=now or timezone.now())


def authenticate(text, *, now=None):
    """The (token, actor) that ``text`` is the secret of, else None. Marks the token used."""
    token = ApiToken.find(text)
    if token is None:
        return None
    now = now or timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # Outside any request transaction, and without a lock: the latest writer wins, which
        # is what "last used" means.
        with transaction.atomic():
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token, actor_for(token)

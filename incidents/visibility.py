"""Who may read which incident: the one rule, for people, tokens, integrations and the system.

- The system and superusers see every incident.
- A confidential incident is seen only by those holding ``incidents.access_confidential`` (the
  "Security" and "Incident manager" groups), its assignee and its commander. To everyone else
  it does not exist: not in a list, a count, a search, a timeline or an email.
- A token bound to a customer organisation sees that organisation's incidents only; tokens and
  integrations never see a confidential incident.

Everything that reads incidents for someone goes through ``visible_q`` (the managers'
``visible_to``, the admin's querysets, the notifications admin through the registered scope), or
``can_see`` for a row already loaded; staff emails through ``readers_of``. Each is one ``Q`` on
the same query, so it adds no query to a page.
"""

from django.contrib.auth import get_user_model
from django.db.models import Q

from itsm.actors import ActorKind, as_actor

CONFIDENTIAL_PERMISSION = "incidents.access_confidential"
SECURITY_GROUP = "Security"


def visible_q(actor, prefix=""):
    """A ``Q`` over incidents (``prefix`` leads from another model to the incident, e.g.
    "incident__"), or None when ``actor`` sees them all."""
    actor = as_actor(actor)
    if actor.sees_everything:
        return None
    p = prefix
    if actor.kind == ActorKind.USER:
        if not actor.user.is_active:
            return Q(**{f"{p}pk__in": []})
        if actor.user.has_perm(CONFIDENTIAL_PERMISSION):
            return None
        return (
            Q(**{f"{p}is_confidential": False})
            | Q(**{f"{p}assignee_id": actor.user.pk})
            | Q(**{f"{p}commander_id": actor.user.pk})
        )
    rule = Q(**{f"{p}is_confidential": False})
    if actor.kind == ActorKind.TOKEN and actor.organization_id is not None:
        rule &= Q(**{f"{p}organization_id": actor.organization_id})
    return rule


def scope(queryset, actor, prefix=""):
    """``queryset`` narrowed to what ``actor`` may see."""
    rule = visible_q(actor, prefix)
    return queryset if rule is None else queryset.filter(rule)


def visible_ids(model):
    """For ``itsm.actors.register_subject``: the ids of ``model`` (Incident) an actor may see,
    as a subquery, or None when it sees them all."""

    def ids(actor):
        rule = visible_q(actor)
        return None if rule is None else model._base_manager.filter(rule).values("pk")

    return ids


def can_see(actor, incident):
    """The same rule, for one incident already loaded (no query for a user whose permissions
    Django has cached)."""
    actor = as_actor(actor)
    if actor.sees_everything:
        return True
    if actor.kind == ActorKind.USER:
        user = actor.user
        if not user.is_active:
            return False
        return (
            not incident.is_confidential
            or user.pk in (incident.assignee_id, incident.commander_id)
            or user.has_perm(CONFIDENTIAL_PERMISSION)
        )
    if incident.is_confidential:
        return False
    if actor.kind == ActorKind.TOKEN and actor.organization_id is not None:
        return incident.organization_id == actor.organization_id
    return True


def readers_of(incident):
    """The users who may read ``incident``, as a queryset for staff emails; None when it is not
    confidential (every member of a group may read it, and a team address may be used)."""
    if not incident.is_confidential:
        return None
    app_label, codename = CONFIDENTIAL_PERMISSION.split(".")
    granted = Q(
        user_permissions__codename=codename, user_permissions__content_type__app_label=app_label
    ) | Q(
        groups__permissions__codename=codename,
        groups__permissions__content_type__app_label=app_label,
    )
    people = Q(is_superuser=True) | granted
    named = [pk for pk in (incident.assignee_id, incident.commander_id) if pk]
    if named:
        people |= Q(pk__in=named)
    User = get_user_model()
    return User.objects.filter(is_active=True).filter(
        pk__in=User.objects.filter(people).values("pk")
    )

"""Who may read and write which catalog rows: the one rule, for people, tokens and integrations.

Reading:

- The system, superusers, staff users, tokens not bound to an organisation ("staff tokens")
  and integrations see every service; everyone else (an organisation's token, a non-staff
  user) sees the public services only: a private service does not exist for them (404).
- A token bound to an organisation sees that organisation only, its contacts, and its
  subscriptions (those of the organisation or of its contacts) to services it may see;
  others see every organisation, contact and subscription their permissions let them read.
- A maintenance window is seen by whoever sees one of its services.

Writing (the permission itself comes from the token's scopes or the user's groups): the rows
that belong to nobody (services, organisations, SLA policies, calendars, maintenance) are
written by staff only, never by an organisation's token; a contact or a subscription by an
organisation's token only inside its own organisation.

Each rule is one ``Q`` added to the same query: it costs no query of its own.
"""

from django.db.models import Q

from itsm.actors import ActorKind, as_actor

NOTHING = Q(pk__in=[])


def organization_of(actor):
    """The organisation id an actor is bound to (a customer's token), else None."""
    actor = as_actor(actor)
    return actor.organization_id if actor.kind == ActorKind.TOKEN else None


def is_staff(actor):
    """Sees the whole catalog, private services included, and may write its shared rows."""
    actor = as_actor(actor)
    if actor.sees_everything:
        return True
    if actor.kind == ActorKind.USER:
        return actor.user.is_active and actor.user.is_staff
    if actor.kind == ActorKind.TOKEN:
        return actor.organization_id is None
    return actor.kind in (ActorKind.INTEGRATION, ActorKind.SYSTEM)


def service_q(actor, prefix=""):
    """A ``Q`` over services (``prefix`` leads to the service, e.g. "service__"), or None when
    ``actor`` sees them all."""
    actor = as_actor(actor)
    if actor.kind == ActorKind.USER and not actor.user.is_active:
        return NOTHING
    if is_staff(actor):
        return None
    return Q(**{f"{prefix}is_public": True})


def organization_q(actor, prefix=""):
    """A ``Q`` over organisations (through ``prefix``), or None when ``actor`` sees them all."""
    actor = as_actor(actor)
    if actor.kind == ActorKind.USER and not actor.user.is_active:
        return NOTHING
    bound = organization_of(actor)
    return None if bound is None else Q(**{f"{prefix}pk": bound})


def contact_q(actor):
    bound = organization_of(actor)
    if bound is None:
        return organization_q(actor)  # None, or nothing for an inactive user
    return Q(organization_id=bound)


def subscription_q(actor):
    bound = organization_of(actor)
    services = service_q(actor, "service__")
    if bound is None:
        return organization_q(actor) if services is None else services
    mine = Q(organization_id=bound) | Q(contact__organization_id=bound)
    return mine if services is None else mine & services


def maintenance_q(actor):
    """A ``Q`` over maintenance windows: those with a service ``actor`` sees (a subquery, so a
    window with two such services is still one row)."""
    services = service_q(actor, "service__")
    if services is None:
        return None
    from services.models import MaintenanceWindow

    links = MaintenanceWindow.services.through.objects.filter(services)
    return Q(pk__in=links.values("maintenancewindow_id"))


def scope(queryset, rule):
    return queryset if rule is None else queryset.filter(rule)


def may_write_shared(actor):
    """Services, organisations, SLA policies, calendars, maintenance: staff only."""
    return is_staff(actor)


def may_write_for(actor, organization_id):
    """A contact or subscription of ``organization_id`` (None: a public subscriber's or a
    service-wide one): an organisation's token only for its own organisation."""
    bound = organization_of(actor)
    return bound is None or bound == organization_id

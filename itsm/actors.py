"""Who acts and who reads: the one notion of an actor every app shares.

An ``Actor`` is a person (a Django user), an API token, an integration (an alert source) or the
system (sweeps, migrations, the demo). The write path records it on every timeline event and
checks what it may do; the read scopes decide what it may see.

This module sits below every app and imports none of them (the ``itsm`` package is the
composition root; apps import this, never the other way round). Read scopes are registered by
the app that owns the rule (``incidents`` registers "incident" in its ``AppConfig.ready``), so an
app that only *links* to incidents (notifications, problems) can filter by the rule without
importing the incidents app.
"""

from dataclasses import dataclass, field

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class ActorKind(models.TextChoices):
    USER = "user", _("user")
    TOKEN = "token", _("API token")
    INTEGRATION = "integration", _("integration")
    SYSTEM = "system", _("system")


@dataclass(frozen=True)
class Actor:
    """Who makes a change or asks to read.

    ``user`` is set for a person only. ``label`` is what a timeline shows ("agent1",
    "Alertmanager", "token ci-bot"); ``ref`` the id of the token or integration, kept on the
    event so it can be traced after a rename. A token bound to a customer organisation carries
    ``organization_id`` and reads that organisation's records only. Tokens and integrations
    carry their own ``permissions`` ("app.codename"), as a user's come from their groups.
    """

    kind: str
    user: object = None
    label: str = ""
    ref: str = ""
    organization_id: int | None = None
    permissions: frozenset = field(default_factory=frozenset)

    @classmethod
    def for_user(cls, user):
        return cls(kind=ActorKind.USER, user=user, label=user.get_username(), ref=str(user.pk))

    @classmethod
    def system(cls, label="system"):
        return cls(kind=ActorKind.SYSTEM, label=label)

    @classmethod
    def token(cls, *, ref, label, organization_id=None, permissions=()):
        return cls(
            kind=ActorKind.TOKEN,
            label=label,
            ref=str(ref),
            organization_id=organization_id,
            permissions=frozenset(permissions),
        )

    @classmethod
    def integration(cls, *, ref, label, permissions=()):
        return cls(
            kind=ActorKind.INTEGRATION,
            label=label,
            ref=str(ref),
            permissions=frozenset(permissions),
        )

    @property
    def is_system(self):
        return self.kind == ActorKind.SYSTEM

    @property
    def sees_everything(self):
        """The system and superusers: no read scope narrows what they see."""
        if self.kind == ActorKind.SYSTEM:
            return True
        return self.kind == ActorKind.USER and self.user.is_active and self.user.is_superuser

    def has_perm(self, perm):
        """``perm`` is "app_label.codename". The system may do everything; a user what their
        groups and own permissions give (Django's cached check); a token or integration what it
        was issued with."""
        if self.kind == ActorKind.SYSTEM:
            return True
        if self.kind == ActorKind.USER:
            return self.user.has_perm(perm)
        return perm in self.permissions


def as_actor(value):
    """The ``Actor`` for what callers pass as ``actor``: an Actor, or a Django user (the admin
    passes ``request.user``). Nothing else: a caller that forgets to say who acts must not
    silently act as the system, so the system is asked for by name (``Actor.system()``)."""
    if isinstance(value, Actor):
        return value
    if value is not None and hasattr(value, "get_username") and value.is_authenticated:
        return Actor.for_user(value)
    raise TypeError(f"not an actor: {value!r}; pass a user or an itsm.actors.Actor")


# --- read scopes -------------------------------------------------------------------------------

_scopes = {}


def register_scope(name, rule):
    """``rule(actor, prefix)`` returns a ``Q`` over the scoped model, its lookups prefixed with
    ``prefix`` ("" on the model itself, "incident__" across a foreign key), or None when the
    actor sees every row."""
    _scopes[name] = rule


def scope_q(name, actor, prefix=""):
    """The registered rule's ``Q`` for ``actor`` (None: no narrowing)."""
    return _scopes[name](as_actor(actor), prefix)


_subjects = {}


def register_subject(kind, visible_ids):
    """Rows elsewhere that name a subject generically, as (``kind``, id), e.g. the outbox's
    events ("incident", 42): ``visible_ids(actor)`` returns the ids of that kind the actor may
    see (a queryset, used as a subquery), or None when it sees them all."""
    _subjects[kind] = visible_ids


def subject_q(actor, prefix=""):
    """A ``Q`` over rows with ``subject_kind``/``subject_id`` columns (reached through
    ``prefix``): those about nothing, or about a subject ``actor`` may see."""
    actor = as_actor(actor)
    rule = Q()
    for kind, visible_ids in _subjects.items():
        ids = visible_ids(actor)
        if ids is not None:
            rule &= ~Q(**{f"{prefix}subject_kind": kind}) | Q(**{f"{prefix}subject_id__in": ids})
    return rule


def subject_ids(kind, actor):
    """The ids of subjects of ``kind`` (e.g. "incident") ``actor`` may see, as a subquery;
    None when it sees them all or nobody registered the kind."""
    visible_ids = _subjects.get(kind)
    return None if visible_ids is None else visible_ids(as_actor(actor))

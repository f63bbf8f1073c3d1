"""Outbound webhooks for integrators: the one write path for ``WebhookEndpoint``, and who
hears about what.

An endpoint subscribes a URL to event types (``WEBHOOK_EVENT_TYPES``). The app that owns a
subject decides which endpoints may hear of it (incidents apply their visibility rule: an
endpoint bound to an organisation reads like a token of that organisation) and queues the
event with ``outbox.enqueue_webhook_event`` in the transaction of the change; delivery is the
outbox's (Standard Webhooks signature with the endpoint's secret, retries with backoff, the SSRF
guard, a circuit per target).

Reading the active endpoints is one small statement (``targets_statement``), which the
incident workflow sends in the round trip of its row lock: a change costs no extra query when
nobody listens.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from itsm.actors import Actor
from notifications import outbox
from notifications.models import (
    EventKind,
    Notification,
    NotificationStatus,
    WebhookEndpoint,
    new_webhook_secret,
)
from services.models import MaintenanceStatus

MAINTENANCE_SUBJECT = outbox.MAINTENANCE_SUBJECT

_MAINTENANCE_TYPE = {
    MaintenanceStatus.SCHEDULED: EventKind.WEBHOOK_MAINTENANCE_SCHEDULED,
    MaintenanceStatus.IN_PROGRESS: EventKind.WEBHOOK_MAINTENANCE_STARTED,
    MaintenanceStatus.COMPLETED: EventKind.WEBHOOK_MAINTENANCE_COMPLETED,
    MaintenanceStatus.CANCELLED: EventKind.WEBHOOK_MAINTENANCE_CANCELLED,
}


class EndpointError(Exception):
    """A change to an endpoint that is refused; ``field`` names the input it is about."""

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Target:
    """An active endpoint as emission needs it (read with the row lock, no model instance)."""

    pk: int
    url: str
    event_types: frozenset
    organization_id: int | None

    def wants(self, event_type):
        return str(event_type) in self.event_types

    @property
    def actor(self):
        """Who the endpoint reads as: a token of its organisation (or of none), so the owner
        of a subject applies its own rule (a token never reads a confidential incident)."""
        return Actor.token(
            ref=f"webhook-endpoint:{self.pk}",
            label=f"webhook endpoint {self.pk}",
            organization_id=self.organization_id,
        )


def targets_statement():
    """(sql, params) reading every active endpoint: few rows, on the caller's round trip."""
    table = WebhookEndpoint._meta.db_table
    return (
        f"SELECT id, url, event_types, organization_id FROM {table} "  # noqa: S608 (model name)
        "WHERE is_active ORDER BY id",
        [],
    )


def parse_targets(rows):
    targets = []
    for pk, url, event_types, organization_id in rows:
        if isinstance(event_types, str):  # raw SQL returns the JSON text
            event_types = json.loads(event_types)
        targets.append(Target(pk, url, frozenset(event_types or ()), organization_id))
    return targets


def read_targets():
    """The active endpoints, one query."""
    from django.db import connection

    sql, params = targets_statement()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return parse_targets(cursor.fetchall())


# --- maintenance (the catalog's port, registered by NotificationsConfig.ready) -----------------


def tell_integrators_of_maintenance(*, window, revision=None):
    """Queue ``maintenance.scheduled|started|completed|cancelled`` for ``window`` as it now is,
    to the endpoints that want it. Runs in the caller's transaction. An edit (``revision``) is
    news only while the window is scheduled: its new schedule goes out as ``scheduled`` again.
    Maintenance is public information: an organisation's endpoint hears of windows on public
    services; one on private services only reaches endpoints bound to no organisation."""
    event_type = _MAINTENANCE_TYPE.get(window.status)
    if event_type is None or (revision and window.status != MaintenanceStatus.SCHEDULED):
        return None
    targets = [t for t in read_targets() if t.wants(event_type)]
    if not targets:
        return None
    from services.announcements import maintenance_payload

    services = list(window.services.order_by("display_order", "name"))
    if not any(s.is_public for s in services):
        targets = [t for t in targets if t.organization_id is None]
    key = f"maintenance:{window.pk}:{event_type}"
    if revision:
        key = f"{key}:{hashlib.sha256(revision.encode()).hexdigest()[:16]}"
    return outbox.enqueue_webhook_event(
        kind=event_type,
        key=key,
        data=maintenance_data(window, maintenance_payload(window)),
        endpoints=targets,
        subject_kind=MAINTENANCE_SUBJECT,
        subject_id=window.pk,
    )


def maintenance_data(window, payload):
    """The ``data`` of a maintenance event (documented in ``notifications.schema``)."""
    return {
        "id": window.pk,
        "title": payload["title"],
        "description": payload["description"],
        "status": str(window.status),
        "scheduled_start": payload["scheduled_start"],
        "scheduled_end": payload["scheduled_end"],
        "services": payload["services"],
        "url": payload["url"],
    }


# --- the endpoints' write path -----------------------------------------------------------------


def _user(actor):
    user = getattr(actor, "user", None) if isinstance(actor, Actor) else actor
    return user if getattr(user, "pk", None) else None


def create_endpoint(
    *,
    actor,
    url,
    event_types,
    description="",
    organization=None,
    organization_id=None,
    is_active=True,
):
    """A new endpoint (validated: the URL passes the SSRF guard, the event types are known).
    Returns it; its ``secret`` is shown to the caller once."""
    endpoint = WebhookEndpoint(
        url=url,
        event_types=sorted({str(t) for t in event_types}),
        description=description,
        organization=organization,
        is_active=is_active,
        created_by=_user(actor),
    )
    if organization_id is not None:
        endpoint.organization_id = organization_id
    endpoint.full_clean()
    endpoint.save()
    return endpoint


_EDITABLE = ("url", "event_types", "description", "is_active", "organization")


def change_endpoint(endpoint, *, actor, changes):
    """Change an endpoint's URL, event types, description, activity or organisation. Messages
    still queued for it follow a new URL (the integrator fixed a wrong one); deactivating it
    stops them (delivery cancels rows of an inactive endpoint)."""
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise EndpointError(_("These fields cannot be changed: %s") % ", ".join(sorted(unknown)))
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        old_url = endpoint.url
        for field, value in changes.items():
            if field == "event_types":
                value = sorted({str(t) for t in value})
            setattr(endpoint, field, value)
        endpoint.full_clean()
        endpoint.save()
        if endpoint.url != old_url:
            Notification.objects.filter(
                endpoint=endpoint, status=NotificationStatus.PENDING
            ).update(address=endpoint.url)
    return endpoint


def delete_endpoint(endpoint, *, actor):
    """Delete an endpoint; its messages go with it (those a worker holds are not marked)."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


def rotate_secret(endpoint, *, actor):
    """Give the endpoint a new signing secret and return it (shown once). Messages not sent
    yet, retries included, are signed with the new one."""
    secret = new_webhook_secret()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=secret)
    endpoint.secret = secret
    return secret


def send_ping(endpoint, *, actor):
    """Queue a ``ping`` to the endpoint, through the outbox like any event. Refused for an
    inactive endpoint (it would be cancelled at send time)."""
    if not endpoint.is_active:
        raise EndpointError(
            _("The endpoint is inactive: activate it to test it."), field="is_active"
        )
    with transaction.atomic():
        return outbox.enqueue_webhook_event(
            kind=EventKind.WEBHOOK_PING,
            key=f"ping:{endpoint.pk}:{uuid.uuid4().hex}",
            data={
                "endpoint_id": endpoint.pk,
                "message": "itsm is reaching this endpoint.",
            },
            endpoints=[endpoint],
        )

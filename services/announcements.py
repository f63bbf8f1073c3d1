"""What the catalog tells customers about maintenance, and the port it tells them through.

The catalog is the bottom layer: notifications read its contacts, subscriptions and dependency
graph, so the catalog cannot import the outbox without a cycle between the apps. Instead
notifications plug their outbox writer in at start-up (``NotificationsConfig.ready()``) and the
maintenance workflow calls it inside its own transaction: the announcement row still commits, or
rolls back, with the change (the transactional outbox), exactly as a direct call did."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from services.models import MaintenanceStatus

# Which moves of a window customers hear about (a cancellation is not announced).
ANNOUNCED = frozenset(
    {MaintenanceStatus.SCHEDULED, MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.COMPLETED}
)

_outbox_writer = None
_outbox_canceller = None


def register_outbox(writer, canceller=None):
    """Plug in ``writer(*, window, status, payload)``, which records the announcement of
    ``window`` having reached ``status`` in the caller's transaction and returns the event (None
    when it was recorded already), and ``canceller(window_id)``, which cancels the unsent
    announcements of a deleted window. Registered once, by notifications' ``AppConfig.ready()``."""
    global _outbox_writer, _outbox_canceller
    _outbox_writer = writer
    _outbox_canceller = canceller


_integrators_writer = None


def register_integrators(writer):
    """Plug in ``writer(*, window, revision)``, which queues the webhook events of ``window``
    as it now is (scheduled, started, completed or cancelled) for integrators' endpoints, in
    the caller's transaction. Registered once, by notifications' ``AppConfig.ready()``."""
    global _integrators_writer
    _integrators_writer = writer


def withdraw_queued_announcements(window_id):
    """The window's announcements still queued are not sent (those already sent stay)."""
    if _outbox_canceller is not None:
        _outbox_canceller(window_id)


def withdraw_announcements(sender, instance, **kwargs):
    """post_delete receiver of ``MaintenanceWindow``: its announcements still queued are not
    sent (the outbox names the window without a foreign key, so no cascade reaches it); sent
    ones stay as the record. Runs in the deleting transaction."""
    if _outbox_canceller is not None:
        _outbox_canceller(instance.pk)


def public_service_names(services):
    """Service names for a customer message: the public ones; private ones only when nothing
    public is affected (their own subscribers must read what is hurt, but public subscribers
    never see internal names)."""
    services = list(services)
    public = [s.name for s in services if s.is_public]
    return public or [s.name for s in services]


def maintenance_payload(window):
    """All the templates need to announce ``window`` as it is now."""
    return {
        "maintenance_id": window.pk,
        "title": window.title,
        "description": window.public_description,
        "status": window.status,
        "scheduled_start": window.scheduled_start.isoformat(),
        "scheduled_end": window.scheduled_end.isoformat(),
        "services": public_service_names(window.services.order_by("display_order", "name")),
        "url": f"{settings.SITE_URL}/",
        "site_url": settings.SITE_URL,
    }


def announce_maintenance_status(window, *, revision=None):
    """Tell the subscribers of ``window``'s services (and of everything depending on them) that
    it is now scheduled, in progress or completed. Call inside the transaction that moved it;
    safe to call twice (the outbox key makes the second call a no-op). Returns the event, or
    None when nothing is announced. ``revision`` (the schedule and services as text) makes an
    edited window news again, once per distinct revision."""
    if _integrators_writer is not None:
        # Integrators hear of every move, a cancellation included.
        _integrators_writer(window=window, revision=revision)
    if window.status not in ANNOUNCED:
        return None
    if _outbox_writer is None:
        # Never drop an announcement silently: a catalog without notifications is a set-up error.
        raise ImproperlyConfigured(
            "No outbox is registered for maintenance announcements; "
            "is 'notifications' in INSTALLED_APPS?"
        )
    return _outbox_writer(
        window=window,
        status=window.status,
        payload=maintenance_payload(window),
        revision=revision,
    )

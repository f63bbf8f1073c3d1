"""Delivering the outbox: claim rows with a lease, send outside any transaction, mark them."""

import logging

logger = logging.getLogger(__name__)


def dispatch_event(event_id, *, copies=1):
    """Ask the workers to deliver ``event_id``'s due rows. Never raises: when the broker is
    down the rows stay committed and the outbox sweep dispatches them later."""
    from notifications.tasks import deliver_event

    for _ in range(copies):
        try:
            deliver_event.delay(event_id)
        except Exception:  # kombu/redis raise many types; the sweep is the safety net
            logger.warning(
                "could not publish delivery of event %s; the sweep will", event_id, exc_info=True
            )
            return False
    return True


def deliver_event(event_id):  # filled in below
    raise NotImplementedError


def sweep_outbox():
    raise NotImplementedError

"""Thin Celery entry points; the work is in ``notifications.outbox`` (expansion) and
``notifications.delivery`` (sending, the sweep)."""

from itsm.tasking import itsm_task
from notifications import delivery, outbox


@itsm_task("notifications.expand_event", max_retries=3, time_limit=300)
def expand_event(event_id):
    return outbox.expand_event(event_id)


@itsm_task("notifications.deliver_event", max_retries=3, time_limit=300)
def deliver_event(event_id):
    return delivery.deliver_event(event_id)


@itsm_task("notifications.sweep_outbox", max_retries=0, time_limit=120)
def sweep_outbox():
    return delivery.sweep_outbox()

"""Asking for a re-publish of the public side, from any app.

The catalog and incidents sit below the status page and cannot import it; they call
``public_side_changed()`` inside the transaction of a change that can alter what the public
sees (a service's status or details, a public update, maintenance). After the commit, one
``statuspage.publish`` task is sent by name with the time it was asked for; a publish that
started later covers it and skips (``statuspage.publish``). Sending waits for the broker at
most ``BROKER_PUBLISH_WAIT``: when it is down or hung, beat's minute publish catches up.
"""

import logging
import time

from celery import current_app
from django.conf import settings
from django.db import transaction

from itsm.bounded import BoundedCaller

logger = logging.getLogger(__name__)
_sender = BoundedCaller("status-publish")


def public_side_changed(*, everything=False):
    """Schedule one re-publish after the current transaction commits (once per transaction:
    a later call only widens a quick publish to a full one)."""
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        _send(everything)
        return
    for _sids, func, _robust in conn.run_on_commit:
        if isinstance(func, _Publish):
            func.everything = func.everything or everything
            return
    transaction.on_commit(_Publish(everything))


class _Publish:
    """The on-commit callback; recognisable, so a transaction registers one (a rollback
    discards it with the others)."""

    def __init__(self, everything):
        self.everything = everything

    def __call__(self):
        _send(self.everything)


def _send(everything):
    task = current_app.tasks.get("statuspage.publish")
    kwargs = {"requested_at": time.time(), "full": everything}
    try:
        if current_app.conf.task_always_eager:
            if task is not None:
                task.apply(kwargs=kwargs)
            return
        _sender.call(
            lambda: current_app.send_task("statuspage.publish", kwargs=kwargs),
            getattr(settings, "BROKER_PUBLISH_WAIT", 0.25),
        )
    except Exception:  # the beat publish is the safety net
        logger.warning("could not ask for a status page publish; beat's will", exc_info=True)

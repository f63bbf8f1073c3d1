"""Celery entry points of the project package: thin, safe to run twice."""

from itsm.idempotency import purge_expired
from itsm.tasking import itsm_task


@itsm_task("itsm.purge_idempotency_records", max_retries=0, time_limit=300)
def purge_idempotency_records():
    return purge_expired()

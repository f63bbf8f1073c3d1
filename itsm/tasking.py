"""One decorator for every Celery task: its name, retries with backoff and jitter, late acks and
time limits, so each ``tasks.py`` stays a thin entry point."""

from celery import shared_task


def itsm_task(name, *, max_retries=5, time_limit=300, **options):
    """Declare a task that is safe to run twice: the body must re-read rows and guard updates."""
    return shared_task(
        name=name,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(ConnectionError, TimeoutError),
        retry_backoff=True,
        retry_backoff_max=300,
        retry_jitter=True,
        max_retries=max_retries,
        time_limit=time_limit,
        soft_time_limit=max(time_limit - 30, 10),
        **options,
    )

"""Celery entry points for the catalog: thin, safe to run twice."""

from itsm.tasking import itsm_task
from services import workflow


@itsm_task("services.start_and_end_maintenance", max_retries=0, time_limit=120)
def start_and_end_maintenance():
    """Start and complete the maintenance windows that are due (beat, every 30 s)."""
    started, completed = workflow.start_and_end_maintenance()
    return {"started": started, "completed": completed}

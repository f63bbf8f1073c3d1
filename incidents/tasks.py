"""Celery entry points for incidents: thin, safe to run twice."""

from incidents.recurrence import propose_problems
from incidents.sweep import sweep_sla
from itsm.tasking import itsm_task


@itsm_task("incidents.sweep_sla", max_retries=0, time_limit=120)
def sweep_sla_task():
    return sweep_sla()


@itsm_task("incidents.remind_overdue_action_items", max_retries=0, time_limit=120)
def remind_overdue_action_items_task():
    from incidents.review_workflow import remind_overdue_action_items

    return remind_overdue_action_items()


@itsm_task("incidents.propose_problems", max_retries=0, time_limit=120)
def propose_problems_task():
    """Recurring incidents: propose problems (``incidents.recurrence``); returns how many."""
    return len(propose_problems())

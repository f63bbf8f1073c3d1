"""Maintenance windows start and end by themselves at their scheduled times: the beat sweep
moves due windows through the maintenance workflow (services follow, subscribers hear), one
window per transaction, skipping windows someone else holds, and running it twice is harmless."""

import datetime as dt
import threading

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from itsm.celery import app
from notifications.models import EventKind, NotificationEvent
from services import tasks, workflow
from services.models import MaintenanceStatus, MaintenanceWindow, ServiceStatus
from tests.factories import ServiceFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def window(title="Database upgrade", *, start, end, service=None):
    service = service or ServiceFactory()
    SubscriptionFactory(service=service)
    return workflow.schedule_maintenance(
        title=title, services=[service], scheduled_start=start, scheduled_end=end
    )


def kinds(w):
    return list(
        NotificationEvent.objects.filter(subject_kind="maintenance", subject_id=w.pk)
        .order_by("id")
        .values_list("kind", flat=True)
    )


def state(w):
    w.refresh_from_db()
    service = w.services.get()
    return w.status, service.status


def test_a_due_window_starts_and_a_future_one_waits():
    due = window("Due", start=NOW - dt.timedelta(seconds=5), end=NOW + dt.timedelta(hours=1))
    later = window("Later", start=NOW + dt.timedelta(minutes=5), end=NOW + dt.timedelta(hours=1))

    started, completed = workflow.start_and_end_maintenance(now=NOW)

    assert (started, completed) == ([due.pk], [])
    assert state(due) == (MaintenanceStatus.IN_PROGRESS, ServiceStatus.UNDER_MAINTENANCE)
    assert state(later) == (MaintenanceStatus.SCHEDULED, ServiceStatus.OPERATIONAL)
    assert kinds(due) == [EventKind.MAINTENANCE_SCHEDULED, EventKind.MAINTENANCE_STARTED]
    assert kinds(later) == [EventKind.MAINTENANCE_SCHEDULED]


def test_a_window_in_progress_completes_at_its_end():
    w = window(start=NOW - dt.timedelta(hours=1), end=NOW + dt.timedelta(minutes=10))
    workflow.start_and_end_maintenance(now=NOW)
    assert state(w) == (MaintenanceStatus.IN_PROGRESS, ServiceStatus.UNDER_MAINTENANCE)

    # Before its end nothing happens; at its end it completes and the service is back.
    assert workflow.start_and_end_maintenance(now=NOW + dt.timedelta(minutes=9)) == ([], [])
    assert workflow.start_and_end_maintenance(now=NOW + dt.timedelta(minutes=10)) == ([], [w.pk])
    assert state(w) == (MaintenanceStatus.COMPLETED, ServiceStatus.OPERATIONAL)
    assert kinds(w) == [
        EventKind.MAINTENANCE_SCHEDULED,
        EventKind.MAINTENANCE_STARTED,
        EventKind.MAINTENANCE_COMPLETED,
    ]


def test_running_twice_moves_and_announces_once():
    w = window(start=NOW - dt.timedelta(minutes=1), end=NOW + dt.timedelta(hours=1))
    assert workflow.start_and_end_maintenance(now=NOW) == ([w.pk], [])
    assert workflow.start_and_end_maintenance(now=NOW) == ([], [])
    assert kinds(w) == [EventKind.MAINTENANCE_SCHEDULED, EventKind.MAINTENANCE_STARTED]
    assert NotificationEvent.objects.filter(kind=EventKind.MAINTENANCE_STARTED).count() == 1


def test_a_slot_missed_while_beat_was_down_starts_and_completes_at_once():
    w = window(start=NOW - dt.timedelta(hours=3), end=NOW - dt.timedelta(hours=1))
    assert workflow.start_and_end_maintenance(now=NOW) == ([w.pk], [w.pk])
    assert state(w) == (MaintenanceStatus.COMPLETED, ServiceStatus.OPERATIONAL)
    assert kinds(w)[-2:] == [EventKind.MAINTENANCE_STARTED, EventKind.MAINTENANCE_COMPLETED]


def test_cancelled_and_completed_windows_are_left_alone():
    cancelled = window("Called off", start=NOW - dt.timedelta(minutes=1), end=NOW)
    workflow.move_maintenance(cancelled, to=MaintenanceStatus.CANCELLED)
    assert workflow.start_and_end_maintenance(now=NOW + dt.timedelta(hours=1)) == ([], [])
    assert state(cancelled) == (MaintenanceStatus.CANCELLED, ServiceStatus.OPERATIONAL)
    assert kinds(cancelled) == [EventKind.MAINTENANCE_SCHEDULED]


def test_one_window_that_fails_does_not_hold_up_the_others(monkeypatch):
    broken = window("Broken", start=NOW - dt.timedelta(minutes=2), end=NOW + dt.timedelta(hours=1))
    fine = window("Fine", start=NOW - dt.timedelta(minutes=1), end=NOW + dt.timedelta(hours=1))
    real_move = workflow.move_maintenance

    def move(w, *, to):
        moved = real_move(w, to=to)
        if w.pk == broken.pk:
            raise RuntimeError("the mail template is broken")
        return moved

    monkeypatch.setattr(workflow, "move_maintenance", move)
    assert workflow.start_and_end_maintenance(now=NOW) == ([fine.pk], [])
    # The failed move was undone whole: no status, no service change, no announcement.
    assert state(broken) == (MaintenanceStatus.SCHEDULED, ServiceStatus.OPERATIONAL)
    assert kinds(broken) == [EventKind.MAINTENANCE_SCHEDULED]
    assert state(fine) == (MaintenanceStatus.IN_PROGRESS, ServiceStatus.UNDER_MAINTENANCE)


def test_the_task_is_on_the_beat_schedule_and_runs():
    entry = next(
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "services.start_and_end_maintenance"
    )
    assert entry["schedule"] == dt.timedelta(seconds=30)
    assert entry["options"]["expires"] == 60
    assert "services.start_and_end_maintenance" in app.tasks

    w = window(start=timezone.now() - dt.timedelta(seconds=1), end=NOW + dt.timedelta(hours=1))
    result = tasks.start_and_end_maintenance.apply().get()
    assert result == {"started": [w.pk], "completed": []}
    assert state(w)[0] == MaintenanceStatus.IN_PROGRESS


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks need PostgreSQL")
def test_a_window_someone_else_holds_is_skipped_not_waited_for():
    held = window("Held", start=NOW - dt.timedelta(minutes=2), end=NOW + dt.timedelta(hours=1))
    free = window("Free", start=NOW - dt.timedelta(minutes=1), end=NOW + dt.timedelta(hours=1))
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                MaintenanceWindow.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert workflow.start_and_end_maintenance(now=NOW) == ([free.pk], [])
    finally:
        release.set()
        holder.join()
    assert state(held)[0] == MaintenanceStatus.SCHEDULED
    # Once let go, the next sweep takes it.
    assert workflow.start_and_end_maintenance(now=NOW) == ([held.pk], [])

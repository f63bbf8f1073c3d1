"""Migration 0007: events keep their subject when the foreign keys to incidents and
maintenance windows become a generic (kind, id)."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from incidents.models import Incident
from services.models import MaintenanceWindow

BEFORE = [("notifications", "0006_delivery_semantics")]
AFTER = [("notifications", "0007_event_subject")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_latest():
    yield
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_events_keep_their_subject(back_to_latest):
    # The incident and the window are made with the current models before going back: rolling
    # notifications back also rolls back the incidents migrations that depend on it (columns
    # such as next_escalation_at go), and the rows stay.
    incident = Incident.objects.create(title="Payments are slow")
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        title="Database upgrade", scheduled_start=now, scheduled_end=now + dt.timedelta(hours=1)
    )
    old = _migrate(BEFORE)
    Event = old.get_model("notifications", "NotificationEvent")
    Event.objects.create(kind="incident_published", key="a", incident_id=incident.pk)
    Event.objects.create(kind="maintenance_scheduled", key="b", maintenance_id=window.pk)
    Event.objects.create(kind="sla_breach", key="c")

    new = _migrate(AFTER)
    subjects = dict(
        new.get_model("notifications", "NotificationEvent").objects.values_list(
            "key", "subject_kind"
        )
    )
    assert subjects == {"a": "incident", "b": "maintenance", "c": ""}
    ids = dict(
        new.get_model("notifications", "NotificationEvent").objects.values_list("key", "subject_id")
    )
    assert ids == {"a": incident.pk, "b": window.pk, "c": None}

    # And back: the foreign keys get their values again.
    old = _migrate(BEFORE)
    Event = old.get_model("notifications", "NotificationEvent")
    assert Event.objects.get(key="a").incident_id == incident.pk
    assert Event.objects.get(key="b").maintenance_id == window.pk

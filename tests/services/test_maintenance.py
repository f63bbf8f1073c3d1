"""Maintenance windows: scheduling tells subscribers, starting puts services under
maintenance, completing returns them; the admin moves them only through these steps."""

import datetime as dt

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notifications.models import EventKind, NotificationEvent
from services import announcements, workflow
from services.models import MaintenanceStatus, MaintenanceWindow, ServiceStatus
from tests.factories import ServiceFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def window():
    service = ServiceFactory(slug="db")
    SubscriptionFactory(service=service)
    start = timezone.now() + dt.timedelta(days=1)
    return workflow.schedule_maintenance(
        title="Database upgrade",
        services=[service],
        scheduled_start=start,
        scheduled_end=start + dt.timedelta(hours=2),
    )


def kinds(window):
    return list(
        NotificationEvent.objects.filter(subject_kind="maintenance", subject_id=window.pk)
        .order_by("id")
        .values_list("kind", flat=True)
    )


def test_schedule_start_complete(window):
    service = window.services.get()
    assert kinds(window) == [EventKind.MAINTENANCE_SCHEDULED]
    workflow.move_maintenance(window, to=MaintenanceStatus.IN_PROGRESS)
    service.refresh_from_db()
    assert service.status == ServiceStatus.UNDER_MAINTENANCE
    workflow.move_maintenance(window, to=MaintenanceStatus.COMPLETED)
    service.refresh_from_db()
    assert service.status == ServiceStatus.OPERATIONAL
    assert kinds(window) == [
        EventKind.MAINTENANCE_SCHEDULED,
        EventKind.MAINTENANCE_STARTED,
        EventKind.MAINTENANCE_COMPLETED,
    ]


def test_a_cancellation_is_not_announced(window):
    workflow.move_maintenance(window, to=MaintenanceStatus.CANCELLED)
    assert kinds(window) == [EventKind.MAINTENANCE_SCHEDULED]


def test_the_announcement_commits_or_rolls_back_with_the_change(window):
    """The catalog reaches the outbox through a port, but in its own transaction: a move that
    rolls back leaves no announcement behind."""

    class Refused(Exception):
        pass

    with pytest.raises(Refused), transaction.atomic():
        workflow.move_maintenance(window, to=MaintenanceStatus.IN_PROGRESS)
        assert kinds(window)[-1] == EventKind.MAINTENANCE_STARTED
        raise Refused
    window.refresh_from_db()
    assert window.status == MaintenanceStatus.SCHEDULED
    assert kinds(window) == [EventKind.MAINTENANCE_SCHEDULED]


def test_without_an_outbox_the_catalog_refuses_rather_than_stays_silent(window, monkeypatch):
    monkeypatch.setattr(announcements, "_outbox_writer", None)
    with pytest.raises(ImproperlyConfigured, match="outbox"):
        workflow.move_maintenance(window, to=MaintenanceStatus.IN_PROGRESS)
    window.refresh_from_db()
    assert window.status == MaintenanceStatus.SCHEDULED


def test_illegal_moves_are_refused(window):
    with pytest.raises(workflow.CatalogError, match="cannot become"):
        workflow.move_maintenance(window, to=MaintenanceStatus.COMPLETED)
    window.refresh_from_db()
    assert window.status == MaintenanceStatus.SCHEDULED


def test_end_before_start_is_refused():
    start = timezone.now()
    with pytest.raises(workflow.CatalogError, match="after the start"):
        workflow.schedule_maintenance(
            title="x", services=[], scheduled_start=start, scheduled_end=start
        )


def test_admin_actions_move_windows_and_report_refusals(admin_client, window):
    url = reverse("admin:services_maintenancewindow_changelist")
    response = admin_client.post(
        url,
        {"action": "complete_maintenance", "_selected_action": [window.pk]},
        follow=True,
    )
    assert "cannot become" in response.content.decode()
    admin_client.post(url, {"action": "start_maintenance", "_selected_action": [window.pk]})
    window.refresh_from_db()
    assert window.status == MaintenanceStatus.IN_PROGRESS
    assert window.services.get().status == ServiceStatus.UNDER_MAINTENANCE


def test_admin_add_announces_the_window(admin_client):
    service = ServiceFactory()
    start = timezone.now() + dt.timedelta(days=2)
    response = admin_client.post(
        reverse("admin:services_maintenancewindow_add"),
        {
            "title": "Network work",
            "services": [service.pk],
            "scheduled_start_0": start.strftime("%Y-%m-%d"),
            "scheduled_start_1": "10:00:00",
            "scheduled_end_0": start.strftime("%Y-%m-%d"),
            "scheduled_end_1": "12:00:00",
            "public_description": "Short interruptions.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    window = MaintenanceWindow.objects.get(title="Network work")
    assert kinds(window) == [EventKind.MAINTENANCE_SCHEDULED]


def test_staff_pin_and_unpin_a_status_in_the_admin(admin_client):
    service = ServiceFactory()
    url = reverse("admin:services_service_change", args=[service.pk])
    data = {
        "name": service.name,
        "slug": service.slug,
        "description": "",
        "display_order": 0,
        "criticality": 3,
        "cost_major_per_hour": 0,
        "cost_partial_per_hour": 0,
        "cost_degraded_per_hour": 0,
        "is_public": "on",
        "status": ServiceStatus.MAJOR_OUTAGE,
        "status_pinned": "on",
        **{
            f"{prefix}-{key}": value
            for prefix in ("dependency_links", "subscriptions", "contracts")
            for key, value in {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0}.items()
        },
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    service.refresh_from_db()
    assert (service.status, service.status_pinned) == (ServiceStatus.MAJOR_OUTAGE, True)
    data.pop("status_pinned")
    admin_client.post(url, data)
    service.refresh_from_db()
    # Unpinned: nothing is open, so the derived status takes over.
    assert (service.status, service.status_pinned) == (ServiceStatus.OPERATIONAL, False)

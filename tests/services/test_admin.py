"""The catalog admin answers, searches, and speaks Romanian."""

import datetime as dt

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from notifications.models import EventKind, NotificationEvent
from services import workflow
from services.models import (
    MaintenanceStatus,
    MaintenanceWindow,
    Service,
    ServiceStatus,
    Subscription,
)
from tests.factories import ContactFactory, ServiceFactory, SubscriptionFactory, UserFactory

pytestmark = pytest.mark.django_db

CATALOG_ADMINS = sorted(
    model._meta.model_name for model in admin.site._registry if model._meta.app_label == "services"
)


@pytest.fixture
def desk(client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    return client


def test_every_catalog_model_is_in_the_admin():
    assert set(CATALOG_ADMINS) >= {
        "service",
        "servicegroup",
        "organization",
        "contact",
        "subscription",
        "businesscalendar",
        "slapolicy",
        "contract",
        "maintenancewindow",
        "team",
    }


@pytest.mark.parametrize("model_name", CATALOG_ADMINS)
def test_changelist_and_add_page_answer(desk, model_name):
    SubscriptionFactory()  # some rows, so the changelists render their columns
    for view in ("changelist", "add"):
        response = desk.get(reverse(f"admin:services_{model_name}_{view}"))
        assert response.status_code == 200, (model_name, view)


def test_change_page_answers(desk):
    subscription = SubscriptionFactory()
    for obj in (subscription, subscription.service, subscription.contact):
        opts = obj._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        assert desk.get(url).status_code == 200


def test_service_search(desk):
    ServiceFactory(name="Payments", slug="payments")
    ServiceFactory(name="Search", slug="search", description="Product search")

    response = desk.get(reverse("admin:services_service_changelist"), {"q": "payments"})

    assert response.status_code == 200
    assert [s.slug for s in response.context["cl"].result_list] == ["payments"]


def test_contact_search_by_organisation(desk):
    ContactFactory(name="Radu Constantin", organization__name="Carpathian Bank")
    ContactFactory(name="Emily Clark", organization__name="Northwind Traders")

    response = desk.get(reverse("admin:services_contact_changelist"), {"q": "carpathian"})

    assert [c.name for c in response.context["cl"].result_list] == ["Radu Constantin"]


def test_service_autocomplete_for_inlines(desk):
    ServiceFactory(name="Database", slug="database")
    response = desk.get(
        reverse("admin:autocomplete"),
        {
            "term": "data",
            "app_label": "services",
            "model_name": "servicedependency",
            "field_name": "depends_on",
        },
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Database"]


def test_romanian_labels_from_accept_language(desk):
    ServiceFactory()
    response = desk.get(
        reverse("admin:services_service_changelist"), headers={"accept-language": "ro"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "<title>Selectează serviciu pentru schimbare" in page
    assert "Funcțional" in page  # the status column and filter
    assert "Catalog de servicii" in page  # the app's name in the breadcrumbs


def test_romanian_labels_after_setlang(desk):
    response = desk.post(reverse("set_language"), {"language": "ro", "next": "/admin/"})
    assert response.status_code == 302

    page = desk.get(reverse("admin:services_slapolicy_add")).content.decode()
    assert "<title>Adaugă politică SLA" in page
    assert "Implicită global" in page
    assert "Folosită pentru serviciile care nu au nici contract" in page


def test_romanian_model_names_in_the_index(desk):
    page = desk.get(reverse("admin:index"), headers={"accept-language": "ro"}).content.decode()
    for label in ("Servicii", "Organizații", "Calendare de lucru", "Ferestre de mentenanță"):
        assert label in page


def test_romanian_validation_message(desk):
    service = ServiceFactory(name="Payments")
    response = desk.post(
        reverse("admin:services_maintenancewindow_add"),
        {
            "title": "Upgrade",
            "services": [service.pk],
            "scheduled_start_0": "2026-03-02",
            "scheduled_start_1": "22:00:00",
            "scheduled_end_0": "2026-03-02",
            "scheduled_end_1": "21:00:00",
            "status": "scheduled",
        },
        headers={"accept-language": "ro"},
    )
    assert response.status_code == 200
    assert "Sfârșitul trebuie să fie după început." in response.content.decode()


# --- webhook signing secrets -----------------------------------------------------------------


@pytest.fixture
def webhook(db):
    return SubscriptionFactory(channel="webhook", webhook_url="https://hooks.customer.example/in")


def subscription_pages(subscription):
    """Every admin page a subscription's secret could appear on."""
    return [
        reverse("admin:services_subscription_changelist"),
        reverse("admin:services_subscription_change", args=[subscription.pk]),
        reverse("admin:services_subscription_history", args=[subscription.pk]),
        reverse("admin:services_service_change", args=[subscription.service_id]),
        reverse("admin:services_contact_change", args=[subscription.contact_id]),
        reverse("admin:services_organization_change", args=[subscription.contact.organization_id]),
    ]


def test_read_only_staff_never_see_a_webhook_secret(client, webhook):
    reader = UserFactory(username="reader")
    reader.groups.add(Group.objects.get(name="Read only"))
    client.force_login(reader)
    secret = webhook.webhook_secret
    for url in subscription_pages(webhook):
        response = client.get(url)
        assert response.status_code == 200, url
        assert secret not in response.content.decode(), url
        # Nor the base64 part alone (what a receiver's library is configured with).
        assert secret.removeprefix("whsec_") not in response.content.decode(), url
    page = client.get(reverse("admin:services_subscription_change", args=[webhook.pk]))
    assert "whsec_…" + secret[-4:] in page.content.decode()  # masked, yet recognisable


def test_managers_see_the_secret_and_its_creator_is_shown_it_once(client, webhook):
    manager = UserFactory(username="manager")
    manager.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="services",
            codename__in=["view_subscription", "change_subscription", "add_subscription"],
        )
    )
    client.force_login(manager)
    page = client.get(reverse("admin:services_subscription_change", args=[webhook.pk]))
    assert webhook.webhook_secret in page.content.decode()

    # Someone who may add but not change subscriptions sees the new secret once, on creation.
    adder = UserFactory(username="adder")
    adder.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="services",
            codename__in=["view_subscription", "add_subscription"],
        )
    )
    client.force_login(adder)
    contact = ContactFactory()
    response = client.post(
        reverse("admin:services_subscription_add"),
        {
            "service": webhook.service_id,
            "contact": contact.pk,
            "channel": "webhook",
            "webhook_url": "https://hooks.customer.example/other",
            "is_active": "on",
        },
        follow=True,
    )
    created = Subscription.objects.get(contact=contact)
    assert created.webhook_secret in response.content.decode()
    again = client.get(reverse("admin:services_subscription_change", args=[created.pk]))
    assert created.webhook_secret not in again.content.decode()


# --- maintenance windows through their workflow ------------------------------------------------


def window_form(window, **changes):
    start, end = window.scheduled_start, window.scheduled_end
    data = {
        "title": window.title,
        "services": [s.pk for s in window.services.all()],
        "scheduled_start_0": start.strftime("%Y-%m-%d"),
        "scheduled_start_1": start.strftime("%H:%M:%S"),
        "scheduled_end_0": end.strftime("%Y-%m-%d"),
        "scheduled_end_1": end.strftime("%H:%M:%S"),
        "public_description": window.public_description,
    }
    data.update(changes)
    return data


@pytest.fixture
def running_window(db):
    database, payments = ServiceFactory(name="Database"), ServiceFactory(name="Payments")
    SubscriptionFactory(service=payments)
    start = timezone.now()
    window = workflow.schedule_maintenance(
        title="Database upgrade",
        services=[database],
        scheduled_start=start,
        scheduled_end=start + dt.timedelta(hours=2),
    )
    workflow.move_maintenance(window, to=MaintenanceStatus.IN_PROGRESS)
    return window


def test_changing_the_services_of_a_window_in_progress_moves_them_and_tells(desk, running_window):
    """The admin saved plainly: a removed service stayed under maintenance, an added one stayed
    operational, and nobody was told."""
    database = running_window.services.get()
    payments = Service.objects.get(name="Payments")
    url = reverse("admin:services_maintenancewindow_change", args=[running_window.pk])
    response = desk.post(url, window_form(running_window, services=[payments.pk]))
    assert response.status_code == 302, response.content.decode()[:2000]

    database.refresh_from_db()
    payments.refresh_from_db()
    assert database.status == ServiceStatus.OPERATIONAL
    assert payments.status == ServiceStatus.UNDER_MAINTENANCE
    started = NotificationEvent.objects.filter(
        subject_kind="maintenance", subject_id=running_window.pk, kind=EventKind.MAINTENANCE_STARTED
    )
    assert started.count() == 2  # the start, then the news that Payments is in it now
    assert payments.pk in started.order_by("id").last().audience["services"]

    # Saving the same form again is no news.
    desk.post(url, window_form(running_window, services=[payments.pk]))
    assert started.count() == 2


@pytest.mark.parametrize("year", ["9999", "1970"])
def test_an_absurd_maintenance_date_is_refused_beside_the_field(desk, year):
    service = ServiceFactory()
    response = desk.post(
        reverse("admin:services_maintenancewindow_add"),
        {
            "title": "Typo",
            "services": [service.pk],
            "scheduled_start_0": f"{year}-01-01",
            "scheduled_start_1": "10:00:00",
            "scheduled_end_0": f"{year}-01-01",
            "scheduled_end_1": "12:00:00",
        },
    )
    assert response.status_code == 200
    assert "scheduled_start" in response.context["adminform"].form.errors
    assert not MaintenanceWindow.objects.exists()


def test_the_maintenance_list_survives_a_window_in_year_9999(desk):
    """One was accepted before the check: the year drill-down answered 500."""
    far = dt.datetime(9999, 6, 1, tzinfo=dt.UTC)
    MaintenanceWindow.objects.create(title="Typo", scheduled_start=far, scheduled_end=far)
    url = reverse("admin:services_maintenancewindow_changelist")
    assert desk.get(url).status_code == 200
    response = desk.get(url, {"scheduled_start__year": "9999"})
    assert response.status_code in (200, 302)
    assert desk.get(url, {"scheduled_start__year": "9999", "scheduled_start__month": "12"})
    assert desk.get("/admin/notifications/notificationevent/", {"created_at__year": "9999"})

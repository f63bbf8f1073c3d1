"""The catalog admin answers, searches, and speaks Romanian."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from services.models import Subscription
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

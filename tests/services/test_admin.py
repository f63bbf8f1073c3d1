"""The catalog admin answers, searches, and speaks Romanian."""

import pytest
from django.contrib import admin
from django.urls import reverse

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

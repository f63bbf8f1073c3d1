"""``load_demo`` fills an empty install, twice without doubling anything."""

import datetime as dt
import io
import re

import pytest
from django.apps import apps
from django.core.management import call_command

from incidents.calendars import calendar_value
from services import demo
from services.graph import dependency_ids
from services.models import (
    BusinessCalendar,
    Holiday,
    MaintenanceStatus,
    MaintenanceWindow,
    Organization,
    Service,
    ServiceDependency,
    SlaPolicy,
    Subscription,
    Team,
)

pytestmark = pytest.mark.django_db

# Framework tables that loading demo data never touches on purpose.
UNCOUNTED = {"sessions", "admin", "contenttypes"}


@pytest.fixture(autouse=True)
def _short_incident_history(monkeypatch):
    """The command also loads the incident history when the incidents app has one; a short
    history tests the same idempotency in a fraction of the time."""
    try:
        import incidents.demo
    except ModuleNotFoundError:
        return
    monkeypatch.setattr(incidents.demo, "HISTORY_SIZE", 20, raising=False)


def row_counts():
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        # The SLA engine's queue of catalog changes is consumed by the next sweep, not data.
        if model._meta.app_label not in UNCOUNTED and model._meta.label != "services.SlaInputChange"
    }


def load_demo():
    call_command("load_demo", stdout=io.StringIO(), stderr=io.StringIO())


def test_second_load_adds_nothing():
    load_demo()
    first = row_counts()
    load_demo()
    assert row_counts() == first
    assert first["services.Service"] == len(demo.SERVICES)
    assert first["services.Organization"] == 5


def test_progress_bar_and_summary():
    out, err = io.StringIO(), io.StringIO()
    call_command("load_demo", stdout=out, stderr=err)
    # Every catalog step ticks the bar (the incidents app's steps may follow).
    assert re.search(rf"\| {len(demo.STEPS)}/\d+ \[", err.getvalue()), err.getvalue()
    assert "Demo data loaded: 14 services, 5 organisations" in out.getvalue()


def test_loaded_catalog_is_consistent():
    catalog = demo.load_catalog_demo()

    # No dependency cycles: no service needs itself.
    for service in Service.objects.all():
        needs = {link.depends_on_id for link in service.dependency_links.all()}
        assert service.pk not in dependency_ids(needs), service
    # Every row passes the validation the admin applies.
    for model in apps.get_app_config("services").get_models():
        for obj in model.objects.all():
            obj.full_clean()

    assert SlaPolicy.objects.get(is_default=True).name == demo.STANDARD_POLICY
    assert all(policy.targets.count() == 5 for policy in SlaPolicy.objects.all())
    assert set(catalog.services) == {slug for slug, *_ in demo.SERVICES}
    assert ServiceDependency.objects.count() == sum(map(len, demo.DEPENDENCIES.values()))
    assert Team.objects.count() == len(demo.TEAMS)
    assert all(s.owner_team_id for s in Service.objects.all())


def test_customers_speak_both_languages_and_subscribe_both_ways():
    demo.load_catalog_demo()
    assert Organization.objects.count() == 5
    languages = set(Organization.objects.values_list("contacts__language", flat=True).distinct())
    assert languages == {"en", "ro"}
    assert Subscription.objects.filter(contact__isnull=False).exists()
    assert Subscription.objects.filter(organization__isnull=False).exists()
    webhooks = Subscription.objects.filter(channel="webhook")
    assert webhooks.count() == 2
    assert all(s.webhook_secret.startswith("whsec_") for s in webhooks)


def test_calendars_and_maintenance():
    demo.load_catalog_demo()
    business = BusinessCalendar.objects.get(name=demo.BUSINESS_CALENDAR)
    value = calendar_value(business)
    assert value.tz == "Europe/Bucharest"
    assert value.weekly[:5] == (((540, 1020),),) * 5 and value.weekly[5:] == ((), ())
    holidays = set(Holiday.objects.filter(calendar=business).values_list("date", flat=True))
    # Orthodox Easter Monday and Pentecost Monday move every year.
    assert {dt.date(2026, 4, 13), dt.date(2026, 6, 1), dt.date(2027, 5, 3)} <= holidays
    assert {dt.date(2027, 6, 21), dt.date(2027, 12, 1), dt.date(2026, 1, 24)} <= holidays
    assert calendar_value(BusinessCalendar.objects.get(name=demo.ALWAYS_CALENDAR)).always_open

    statuses = set(MaintenanceWindow.objects.values_list("status", flat=True))
    assert {MaintenanceStatus.COMPLETED, MaintenanceStatus.SCHEDULED} <= statuses
    assert all(w.services.exists() for w in MaintenanceWindow.objects.all())


@pytest.mark.parametrize(
    "year, easter",
    [(2024, (5, 5)), (2025, (4, 20)), (2026, (4, 12)), (2027, (5, 2)), (2028, (4, 16))],
)
def test_orthodox_easter(year, easter):
    assert demo._orthodox_easter(year) == dt.date(year, *easter)

"""factory_boy factories shared by the whole suite."""

import datetime as dt

import factory
from django.contrib.auth.models import Group, User

from services import models as catalog


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"agent{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@desk.example.com")
    is_staff = True
    password = factory.django.Password("pw-for-tests")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        """``groups=["Service desk agent"]``: seeded groups by name (or Group objects)."""
        if create and extracted:
            self.groups.add(*(seeded_group(g) if isinstance(g, str) else g for g in extracted))


def seeded_group(name):
    """A group the migrations seed. A transactional test's flush empties the table (the
    permissions come back, the data migrations' rows do not), so seed again when it is gone."""
    group = Group.objects.filter(name=name).first()
    if group is None:
        import importlib

        from django.apps import apps

        for module in ("0003_seed_matrix_and_groups", "0009_confidential_and_actors"):
            migration = importlib.import_module(f"incidents.migrations.{module}")
            getattr(migration, "seed", None) and migration.seed(apps, None)
            getattr(migration, "seed_security", None) and migration.seed_security(apps, None)
        importlib.import_module("problems.migrations.0003_open_is_new_and_problem_manager").seed(
            apps, None
        )
        group = Group.objects.get(name=name)
    return group


AGENT_GROUP = "Service desk agent"
MANAGER_GROUP = "Incident manager"
READ_ONLY_GROUP = "Read only"
SECURITY_GROUP = "Security"
PROBLEM_MANAGER_GROUP = "Problem manager"


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"Team {n}")


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Service

    name = factory.Sequence(lambda n: f"Service {n}")
    slug = factory.Sequence(lambda n: f"service-{n}")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Organization

    name = factory.Sequence(lambda n: f"Customer {n}")
    slug = factory.Sequence(lambda n: f"customer-{n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Contact

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Contact {n}")
    email = factory.Sequence(lambda n: f"contact{n}@customer.example.com")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.Subscription

    service = factory.SubFactory(ServiceFactory)
    contact = factory.SubFactory(ContactFactory)


class CalendarFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = catalog.BusinessCalendar

    name = factory.Sequence(lambda n: f"Calendar {n}")
    time_zone = "UTC"
    is_24x7 = True


def office_calendar(name="Office hours", time_zone="Europe/Bucharest", holidays=()):
    """Mon–Fri 09:00–17:00 in ``time_zone``."""
    calendar = catalog.BusinessCalendar.objects.create(
        name=name, time_zone=time_zone, is_24x7=False
    )
    for weekday in range(5):
        calendar.hours.create(weekday=weekday, opens_at=dt.time(9), closes_at=dt.time(17))
    for day in holidays:
        calendar.holidays.create(date=day)
    return calendar


def sla_policy(name=None, calendar=None, targets=None, is_default=False):
    """A policy with ``targets`` = {priority: (response, resolution)}; every priority gets
    15 min / 4 h unless given."""
    calendar = calendar or CalendarFactory()
    policy = catalog.SlaPolicy.objects.create(
        name=name or f"Policy for {calendar.name}", calendar=calendar, is_default=is_default
    )
    targets = targets or {}
    for priority in range(1, 6):
        response, resolution = targets.get(
            priority, (dt.timedelta(minutes=15), dt.timedelta(hours=4))
        )
        policy.targets.create(
            priority=priority, response_target=response, resolution_target=resolution
        )
    return policy

"""Catalog validation (the messages staff see) and the calendar handed to the SLA maths."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from incidents.calendars import calendar_value
from incidents.sla import Calendar
from services.models import BusinessCalendar, BusinessHours, MaintenanceWindow, Subscription
from tests.factories import CalendarFactory, ContactFactory, ServiceFactory, office_calendar

pytestmark = pytest.mark.django_db


def errors_of(instance):
    with pytest.raises(ValidationError) as raised:
        instance.full_clean()
    return raised.value.message_dict


@pytest.mark.parametrize("opens, closes", [(17, 9), (9, 9)])
def test_business_hours_must_close_after_they_open(opens, closes):
    hours = BusinessHours(
        calendar=CalendarFactory(), weekday=0, opens_at=dt.time(opens), closes_at=dt.time(closes)
    )
    assert errors_of(hours) == {
        "closes_at": ["The window must close after it opens (00:00 = end of day)."]
    }


def test_business_hours_closing_at_midnight_run_to_the_end_of_the_day():
    BusinessHours(
        calendar=CalendarFactory(), weekday=4, opens_at=dt.time(22), closes_at=dt.time(0)
    ).full_clean()


def test_subscription_needs_a_contact_or_an_organisation_not_both():
    contact = ContactFactory()
    both = Subscription(
        service=ServiceFactory(), contact=contact, organization=contact.organization
    )
    neither = Subscription(service=ServiceFactory())
    message = "Choose either a contact or an organisation, not both."
    # Said once, in words staff can act on (the check constraint's own message).
    assert errors_of(both)["__all__"] == [message]
    assert errors_of(neither)["__all__"] == [message]


def test_webhook_subscription_needs_a_url():
    subscription = Subscription(
        service=ServiceFactory(), contact=ContactFactory(), channel="webhook"
    )
    assert errors_of(subscription) == {"webhook_url": ["A webhook subscription needs a URL."]}


def test_email_subscription_has_no_url():
    subscription = Subscription(
        service=ServiceFactory(),
        contact=ContactFactory(),
        channel="email",
        webhook_url="https://hooks.example.com/x",
    )
    assert errors_of(subscription) == {"webhook_url": ["Only webhook subscriptions have a URL."]}


def test_webhook_subscription_gets_a_signing_secret():
    subscription = Subscription.objects.create(
        service=ServiceFactory(),
        contact=ContactFactory(),
        channel="webhook",
        webhook_url="https://hooks.example.com/x",
    )
    assert subscription.webhook_secret.startswith("whsec_")


def test_maintenance_must_end_after_it_starts():
    start = dt.datetime(2026, 3, 2, 22, 0, tzinfo=dt.UTC)
    for end in (start, start - dt.timedelta(hours=1)):
        window = MaintenanceWindow(title="Upgrade", scheduled_start=start, scheduled_end=end)
        assert errors_of(window) == {"scheduled_end": ["The end must be after the start."]}


def test_time_zone_must_be_iana():
    calendar = BusinessCalendar(name="Mars", time_zone="Mars/Olympus_Mons")
    assert errors_of(calendar) == {"time_zone": ["Mars/Olympus_Mons is not an IANA time zone."]}
    BusinessCalendar(name="Bucharest", time_zone="Europe/Bucharest").full_clean()


def test_office_calendar_as_clock_value():
    christmas = dt.date(2026, 12, 25)
    calendar = office_calendar(holidays=[christmas, dt.date(2026, 12, 26)])

    value = calendar_value(calendar)

    nine_to_five = ((9 * 60, 17 * 60),)
    assert value == Calendar(
        tz="Europe/Bucharest",
        weekly=(nine_to_five,) * 5 + ((), ()),
        holidays=frozenset({christmas, dt.date(2026, 12, 26)}),
    )
    assert not value.always_open


def test_window_closing_at_midnight_ends_at_1440_and_split_days_are_sorted():
    calendar = BusinessCalendar.objects.create(name="Shifts", time_zone="UTC")
    calendar.hours.create(weekday=0, opens_at=dt.time(22), closes_at=dt.time(0))
    calendar.hours.create(weekday=0, opens_at=dt.time(8), closes_at=dt.time(12, 30))

    value = calendar_value(calendar)

    assert value.weekly[0] == ((480, 750), (1320, 1440))
    assert value.weekly[1:] == ((),) * 6
    assert value.holidays == frozenset()


def test_24x7_calendar_ignores_hours_and_holidays():
    calendar = CalendarFactory(time_zone="Europe/Bucharest", is_24x7=True)
    calendar.hours.create(weekday=0, opens_at=dt.time(9), closes_at=dt.time(17))
    calendar.holidays.create(date=dt.date(2026, 1, 1))

    value = calendar_value(calendar)

    assert value == Calendar.twenty_four_seven("Europe/Bucharest")
    assert value.always_open


def test_calendar_value_uses_prefetched_rows(django_assert_num_queries):
    calendar = office_calendar(holidays=[dt.date(2026, 1, 1)])
    calendar = BusinessCalendar.objects.prefetch_related("hours", "holidays").get(pk=calendar.pk)
    with django_assert_num_queries(0):
        value = calendar_value(
            calendar, hours=list(calendar.hours.all()), holidays=list(calendar.holidays.all())
        )
    assert value.holidays == frozenset({dt.date(2026, 1, 1)})

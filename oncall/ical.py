"""iCalendar (RFC 5545) feeds of on-call shifts, per schedule and per person, with overrides
applied (grafana/oncall#1501 exported overridden shifts as if they stood). Their URLs carry a
signed token, so a calendar app subscribes without logging in; a schedule's token includes its
``feed_key``, so changing the key revokes what was handed out."""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from icalendar import Calendar, Event

from oncall import schedules
from oncall.models import Schedule

SALT = "oncall.ical"
# What a feed covers: a little of the past (so today's shift shows) and the coming weeks.
PAST = timedelta(days=7)
AHEAD = timedelta(days=60)


def schedule_token(schedule):
    return signing.Signer(salt=SALT).sign(f"s{schedule.pk}.{schedule.feed_key}")


def person_token(user):
    return signing.Signer(salt=SALT).sign(f"u{user.pk}")


def feed_url(token):
    return f"{settings.SITE_URL}{reverse('oncall-ical', args=[token])}"


def read_token(token):
    """("schedule", Schedule) or ("person", user id); raises signing.BadSignature."""
    value = signing.Signer(salt=SALT).unsign(token)
    if value.startswith("s"):
        pk, _sep, key = value[1:].partition(".")
        schedule = Schedule.objects.filter(pk=int(pk), feed_key=key).first()
        if schedule is None:
            raise signing.BadSignature("revoked")
        return "schedule", schedule
    if value.startswith("u"):
        return "person", int(value[1:])
    raise signing.BadSignature("unknown feed")


def _uid(*parts):
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return f"{digest}@itsm-oncall"


def _calendar(name):
    cal = Calendar()
    cal.add("prodid", "-//itsm//on-call//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    return cal


def _event(shift, schedule, users, stamp):
    event = Event()
    user = users.get(shift.person)
    who = user.get_username() if user else str(shift.person)
    event.add("uid", _uid(schedule.pk, shift.person, shift.start.isoformat()))
    event.add("dtstamp", stamp)
    event.add("dtstart", shift.start)
    event.add("dtend", shift.end)
    event.add("summary", _("On call: %(who)s (%(schedule)s)") % {"who": who, "schedule": schedule})
    if shift.layer is None:
        event.add("description", _("Override"))
    event.add("transp", "TRANSPARENT")
    return event


def schedule_feed(schedule, now=None):
    """The schedule's final shifts from a week ago to 60 days ahead, as iCalendar bytes."""
    now = (now or timezone.now()).replace(microsecond=0)
    shifts = schedules.plan(schedule.pk).shifts_between(now - PAST, now + AHEAD)
    users = schedules.users_by_id(s.person for s in shifts)
    cal = _calendar(str(schedule))
    for shift in shifts:
        cal.add_component(_event(shift, schedule, users, now))
    return cal.to_ical()


def person_feed(user_id, now=None):
    now = (now or timezone.now()).replace(microsecond=0)
    found = schedules.shifts_of_person(user_id, now - PAST, now + AHEAD)
    users = schedules.users_by_id([user_id])
    user = users.get(user_id)
    cal = _calendar(_("On call: %(who)s") % {"who": user.get_username() if user else user_id})
    for schedule, shift in found:
        cal.add_component(_event(shift, schedule, users, now))
    return cal.to_ical()

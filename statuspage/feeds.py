"""The status page's feeds (Atom, RSS) and its maintenance calendar (RFC 5545), as bytes.

Pure builders: they read through ``statuspage.public`` (so nothing internal can reach them) and
return the document; publishing and serving the bytes is the snapshot's business. A feed item's
description is HTML built here with every public text escaped, so an update that quotes markup
shows it as text in a feed reader.
"""

import dataclasses
import datetime as dt
from urllib.parse import urlsplit

import icalendar
from django.conf import settings
from django.template.defaultfilters import linebreaksbr
from django.utils import feedgenerator, translation
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _

from incidents.models import PublicStatus
from services.models import MaintenanceStatus
from statuspage import public

FEED_SIZE = 50
FEED_KINDS = {"atom": feedgenerator.Atom1Feed, "rss": feedgenerator.Rss201rev2Feed}


@dataclasses.dataclass(frozen=True)
class _Item:
    title: str
    link: str
    description: str
    pubdate: dt.datetime
    updateddate: dt.datetime
    categories: tuple
    sort_key: tuple
    tag: str


def _utc(moment):
    return moment.astimezone(dt.UTC)


def _when(moment):
    """A time as a reader sees it in a feed: UTC, to the minute, with a machine-readable twin."""
    moment = _utc(moment)
    return format_html(
        '<time datetime="{}">{}</time>',
        moment.isoformat().replace("+00:00", "Z"),
        moment.strftime("%Y-%m-%d %H:%M UTC"),
    )


def _label(choices, value):
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def _service_names(services):
    return tuple(sorted((s.name for s in services), key=str.casefold))


def _incident_item(incident, site_url):
    updates = incident.public_updates  # newest first (IncidentUpdate's ordering)
    description = format_html_join(
        "\n",
        "<p><strong>{}</strong> – {}<br>{}</p>",
        (
            (_label(PublicStatus, u.public_status), _when(u.created_at), linebreaksbr(u.body))
            for u in updates
        ),
    )
    updated = max([incident.published_at, *(u.created_at for u in updates)])
    return _Item(
        title=incident.title,
        link=f"{site_url}/incidents/{incident.pk}/",
        description=description,
        pubdate=incident.published_at,
        updateddate=updated,
        categories=_service_names(incident.public_services),
        sort_key=(incident.published_at, 1, incident.pk),
        tag=f"incidents/{incident.pk}",
    )


def _maintenance_item(window, site_url):
    names = _service_names(window.public_services)
    parts = [
        format_html(
            "<p><strong>{}</strong> – {} – {}</p>",
            _label(MaintenanceStatus, window.status),
            _when(window.scheduled_start),
            _when(window.scheduled_end),
        )
    ]
    if window.public_description:
        parts.append(format_html("<p>{}</p>", linebreaksbr(window.public_description)))
    if names:
        parts.append(format_html("<p>{} {}</p>", _("Affected services:"), ", ".join(names)))
    # What changed last, as far as the public knows: announced, started, ended.
    updated = window.created_at
    if window.status in (MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.COMPLETED):
        updated = max(updated, window.scheduled_start)
    if window.status == MaintenanceStatus.COMPLETED:
        updated = max(updated, window.scheduled_end)
    return _Item(
        title=_("Maintenance: %(title)s") % {"title": window.title},
        link=f"{site_url}/history/#maintenance-{window.pk}",
        description="\n".join(parts),
        pubdate=window.created_at,
        updateddate=updated,
        categories=names,
        sort_key=(window.created_at, 0, window.pk),
        tag=f"maintenance/{window.pk}",
    )


def _tag_uri(site_url, moment, specific):
    """An RFC 4151 tag, stable for the item's life: the site's host and the item's first
    publication date (Django's ``get_tag_uri`` would turn a link's fragment into ``//``)."""
    host = urlsplit(site_url).hostname or "localhost"
    return f"tag:{host},{_utc(moment):%Y-%m-%d}:{specific}"


def _site_name(site_url):
    return getattr(settings, "STATUS_PAGE_NAME", "") or urlsplit(site_url).hostname or site_url


def history_feed(kind, *, site_url, service=None):
    """The feed (``kind`` "atom" or "rss") of the 50 most recently published public incidents
    and maintenance announcements, newest first. ``service`` (a slug or a Service) narrows it to
    what touched that public service; LookupError when there is no such public service."""
    feed_class = FEED_KINDS[kind]
    site_url = site_url.rstrip("/")
    site_name = _site_name(site_url)
    if service is None:
        incidents = public.public_incidents()
        maintenance = public.public_maintenance()
        title = _("%(site)s: incidents and maintenance") % {"site": site_name}
        link = f"{site_url}/history/"
        feed_url = f"{site_url}/history.{kind}"
    else:
        slug = service if isinstance(service, str) else service.slug
        found = public.public_service(slug)
        if found is None:
            raise LookupError(f"no public service {slug!r}")
        incidents = public.incidents_touching(found)
        maintenance = public.maintenance_touching(found)
        title = _("%(service)s: incidents and maintenance") % {"service": found.name}
        link = f"{site_url}/uptime/{found.slug}/"
        feed_url = f"{site_url}/history/{found.slug}.{kind}"

    items = [_incident_item(i, site_url) for i in incidents[:FEED_SIZE]]
    items += [
        _maintenance_item(m, site_url)
        for m in maintenance.order_by("-created_at", "-id")[:FEED_SIZE]
    ]
    items.sort(key=lambda item: item.sort_key, reverse=True)

    feed = feed_class(
        title=title,
        link=link,
        description=_("Incidents and maintenance announced on %(site)s.") % {"site": site_name},
        language=translation.get_language() or settings.LANGUAGE_CODE,
        feed_url=feed_url,
        feed_guid=feed_url,
    )
    for item in items[:FEED_SIZE]:
        feed.add_item(
            title=item.title,
            link=item.link,
            description=item.description,
            unique_id=_tag_uri(site_url, item.pubdate, item.tag),
            unique_id_is_permalink=False,
            pubdate=item.pubdate,
            updateddate=item.updateddate,
            categories=item.categories,
        )
    return feed.writeString("utf-8").encode("utf-8")


def _event(window, *, site_url, host):
    names = _service_names(window.public_services)
    description = window.public_description.strip()
    if names:
        affected = _("Affected services: %(services)s") % {"services": ", ".join(names)}
        description = f"{description}\n\n{affected}" if description else affected
    event = icalendar.Event()
    event.add("uid", f"maintenance-{window.pk}@{host}")
    # No revision time is stored beyond creation; the calendar's bytes stay the same between
    # builds until the maintenance itself changes.
    event.add("dtstamp", _utc(window.created_at))
    event.add("dtstart", _utc(window.scheduled_start))
    event.add("dtend", _utc(window.scheduled_end))
    event.add("summary", window.title)
    if description:
        event.add("description", description)
    event.add("url", f"{site_url}/history/#maintenance-{window.pk}")
    event.add("status", "CONFIRMED")
    # MaintenanceWindow stores no edit time, so there is nothing to grow a sequence from yet.
    event.add("sequence", 0)
    if names:
        event.add("categories", list(names))
    # Maintenance is something to know of, not time taken from a subscriber's day.
    event.add("transp", "TRANSPARENT")
    return event


def maintenance_calendar(*, site_url, now=None):
    """An RFC 5545 calendar of scheduled and in-progress maintenance, and of what ended within
    the last 30 days, for Outlook and Google Calendar to subscribe to. Times are UTC."""
    site_url = site_url.rstrip("/")
    host = urlsplit(site_url).hostname or "localhost"
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//itsm//Status page maintenance//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", _("%(site)s: maintenance") % {"site": _site_name(site_url)})
    # How often subscribers should fetch it again (RFC 7986, and Outlook's own name for it).
    calendar.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")
    for window in public.calendar_maintenance(now):
        calendar.add_component(_event(window, site_url=site_url, host=host))
    return calendar.to_ical()

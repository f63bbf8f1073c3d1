"""The machine-readable public outputs (no language): Statuspage-compatible JSON, feeds, the
maintenance calendar and badges, as ``statuspage.publish.Output`` values."""

import json

from django.conf import settings
from django.db.models import Max
from django.utils import translation

from statuspage import badges, feeds, public, v2

JSON = "application/json"
ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
CALENDAR = "text/calendar; charset=utf-8"
SVG = "image/svg+xml"


def page_info(now):
    """The ``page`` object of the Statuspage JSON. Its ``updated_at`` is the last public
    change (not the publish time), so an unchanged page keeps its ETag."""
    stamps = [
        public.public_services().aggregate(at=Max("updated_at"))["at"],
        public.public_incidents().order_by().aggregate(at=Max("updated_at"))["at"],
    ]
    stamps = [s for s in stamps if s is not None]
    return {
        "id": settings.STATUS_PAGE_ID,
        "name": settings.STATUS_PAGE_NAME,
        "url": settings.SITE_URL,
        "time_zone": settings.STATUS_PAGE_TIME_ZONE,
        "updated_at": max(stamps) if stamps else now,
    }


def statuspage_json(*, now):
    """The Statuspage v2 documents, in English: clients compare the status descriptions with
    Statuspage's English strings."""
    from statuspage.publish import Output

    with translation.override("en"):
        return [
            Output(
                f"/api/v2/{key}",
                "",
                JSON,
                json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
            )
            for key, payload in v2.payloads(page_info(now), now=now).items()
        ]


def feeds_and_badges(*, services, feed_services, now):
    """The feeds (the per-service ones of ``feed_services`` only: a quick publish renders
    those of the services that changed), the maintenance calendar and the badges, in English
    (one URL for every reader)."""
    from statuspage.publish import Output

    site = settings.SITE_URL
    outputs = []
    with translation.override("en"):
        outputs.append(Output("/history.atom", "", ATOM, feeds.history_feed("atom", site_url=site)))
        outputs.append(Output("/history.rss", "", RSS, feeds.history_feed("rss", site_url=site)))
        for service in feed_services:
            for kind, content_type in (("atom", ATOM), ("rss", RSS)):
                body = feeds.history_feed(kind, site_url=site, service=service)
                outputs.append(Output(f"/history/{service.slug}.{kind}", "", content_type, body))
        calendar = feeds.maintenance_calendar(site_url=site, now=now)
        outputs.append(Output("/maintenance.ics", "", CALENDAR, calendar))
        for service in services:
            body = badges.badge_svg(service.name, service.status)
            outputs.append(Output(f"/badge/{service.slug}.svg", "", SVG, body))
    return outputs

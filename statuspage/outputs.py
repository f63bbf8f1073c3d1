"""The machine-readable public outputs (no language): Statuspage-compatible JSON, feeds, the
maintenance calendar and badges, as ``statuspage.publish.Output`` values."""

import json

from django.conf import settings
from django.db.models import Max
from django.utils import translation

from statuspage import public, v2

JSON = "application/json"


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


def build(*, services, now):
    from statuspage.publish import Output

    outputs = []
    # Clients compare the status descriptions with Statuspage's English strings.
    with translation.override("en"):
        for key, payload in v2.payloads(page_info(now), now=now).items():
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            outputs.append(Output(f"/api/v2/{key}", "", JSON, body))
    return outputs



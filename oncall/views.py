"""The calendar feeds: no login, a signed token in the URL (see ``oncall.ical``)."""

from django.core import signing
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from oncall import ical


@require_GET
def ical_feed(request, token):
    try:
        kind, what = ical.read_token(token)
    except (signing.BadSignature, ValueError):
        raise Http404("no such calendar") from None
    body = ical.schedule_feed(what) if kind == "schedule" else ical.person_feed(what)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = "private, max-age=300"
    response["Content-Disposition"] = 'inline; filename="oncall.ics"'
    return response

"""The public site. Every page a reader asks for is a published snapshot (``statuspage.
publish``): one indexed read, often none (a process keeps what it read for a moment), with
ETag and Last-Modified so a revalidation is a 304. No reader runs the live queries."""

import threading
import time

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from notifications.unsubscribe import LinkExpired, read_token, unsubscribe_contact
from services.models import Contact
from statuspage.models import Snapshot

# (path, language) -> (monotonic read time, snapshot fields or None). Small and short-lived:
# under an outage's load most readers are served from here, and a publish shows within
# READ_CACHE_SECONDS everywhere.
_read_cache = {}
_read_cache_lock = threading.Lock()
READ_CACHE_MAX = 512


def _read_cache_seconds():
    return getattr(settings, "STATUS_PAGE_READ_CACHE_SECONDS", 0.25)


def _snapshot(path, language):
    key = (path, language)
    ttl = _read_cache_seconds()
    now = time.monotonic()
    if ttl > 0:
        hit = _read_cache.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
    row = (
        Snapshot.objects.filter(path=path, language=language)
        .values_list("content_type", "body", "etag", "modified_at")
        .first()
    )
    if row is not None:
        row = (row[0], bytes(row[1]), row[2], row[3])
    if ttl > 0:
        with _read_cache_lock:
            if len(_read_cache) >= READ_CACHE_MAX:
                _read_cache.clear()
            _read_cache[key] = (now, row)
    return row


def _not_found(language):
    with translation.override(language or "en"):
        body = render_to_string("statuspage/404.html", {"lang": language or "en"})
    return HttpResponse(body, status=404)


def _language_and_path(path):
    if path == "ro" or path.startswith("ro/"):
        return "ro", "/" + path[3:]
    return "en", "/" + path


def serve_snapshot(request, path):
    """The published snapshot of ``path`` (a URL path without its leading slash) as a
    response, or None when there is none."""
    language, public_path = _language_and_path(path)
    found = _snapshot(public_path, language) or (
        _snapshot(public_path, "") if language == "en" else None
    )
    if found is None:
        return None
    content_type, body, etag, modified_at = found
    modified = int(modified_at.timestamp())
    if etag in _etags(request.headers.get("If-None-Match", "")) or (
        "If-None-Match" not in request.headers
        and (since := parse_http_date_safe(request.headers.get("If-Modified-Since", "")))
        and since >= modified
    ):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type=content_type)
    response["ETag"] = etag
    response["Last-Modified"] = http_date(modified)
    response["Cache-Control"] = f"public, max-age={getattr(settings, 'STATUS_PAGE_MAX_AGE', 10)}"
    if not content_type.startswith("text/html"):
        # Widgets and aggregators read the JSON, feeds and badges from other origins.
        response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def published(request, path=""):
    """Any public output: ``/``, ``/incidents/4/``, ``/api/v2/summary.json``, ``/ro/...``."""
    response = serve_snapshot(request, path)
    if response is None and path in ("", "ro") and not Snapshot.objects.exists():
        # A new install before its first publish: publish once, here (the only time a
        # request renders the page).
        from statuspage.publish import publish

        publish(full=True)
        _read_cache.clear()
        response = serve_snapshot(request, path)
    if response is None:
        return _not_found(_language_and_path(path)[0])
    return response


def _etags(header):
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


@csrf_exempt  # RFC 8058 one-click POSTs come from mail clients with no cookie; the token is the key
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """GET asks to confirm; POST (the form, or a mail client's one-click) unsubscribes."""
    try:
        contact_id = read_token(token)
    except LinkExpired:
        # Says no more than that: the address behind an old link is nobody's business.
        return render(request, "notifications/unsubscribe_expired.html", status=410)
    contact = Contact.objects.filter(pk=contact_id).first() if contact_id else None
    if contact is None:
        raise Http404("unknown unsubscribe link")
    with translation.override(contact.language):
        if request.method == "POST":
            unsubscribe_contact(contact)
            return render(request, "notifications/unsubscribed.html", {"contact": contact})
        return render(
            request, "notifications/unsubscribe_confirm.html", {"contact": contact, "token": token}
        )

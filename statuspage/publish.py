"""Publishing: render every public output into ``Snapshot`` rows, and into files.

``publish()`` runs in a Celery task (``statuspage.publish``), never in a request. One publish
at a time (it locks the ``PublishState`` row for its whole transaction, so readers switch from
one complete snapshot to the next). A change that can alter the public side asks for a publish
after it commits (``itsm.publishing.public_side_changed``); a request sent before the start of a
publish is covered by it and skipped, so a burst of changes costs one or two publishes.

Most outputs are rendered every time (the page, the JSON, the feeds, the badges: they depend on
everything). Incident pages, month pages of the history and services' uptime pages are many and
rarely change, so a publish renders those whose incident or service changed since the last one;
a full publish (beat, hourly, and after a catalog edit) renders them all and drops the outputs
that no longer exist (an incident made confidential is then a 404 again).
"""

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.contrib.staticfiles import finders
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from services.models import ServiceStatusInterval
from statuspage import outputs as machine_outputs
from statuspage import pages, public
from statuspage.models import PublishState, Snapshot
from statuspage.rollup import ensure_rolled_up, roll_up, today

logger = logging.getLogger(__name__)

LANGUAGES = ("en", "ro")
HTML = "text/html; charset=utf-8"
# A change written just before a publish started may carry an updated_at a little before its
# commit: incident pages changed this long before the last publish are rendered again.
CHANGE_MARGIN = timedelta(seconds=15)
# Static files the pages link to, copied beside them for a static host.
STATIC_FILES = ("statuspage/status.css",)


@dataclass(frozen=True)
class Output:
    path: str
    language: str
    content_type: str
    body: bytes


def etag_of(body):
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def file_name(path, language):
    """Where ``path`` is written in the published folder: ``/`` is ``index.html``,
    ``/incidents/4/`` is ``incidents/4/index.html``, Romanian pages live under ``ro/``."""
    name = path.lstrip("/")
    if not name or name.endswith("/"):
        name += "index.html"
    return f"{language}/{name}" if language and language != "en" else name


def url_for(path, language):
    """The public URL of ``path`` in ``language`` (Romanian pages under /ro/)."""
    return f"/{language}{path}" if language and language != "en" else path


def _html(path, template, context, language):
    context = {
        **context,
        "page_name": getattr(settings, "STATUS_PAGE_NAME", "Status"),
        "lang": language,
        "path": path,
        "url_en": url_for(path, "en"),
        "url_ro": url_for(path, "ro"),
        "prefix": "/ro" if language == "ro" else "",
    }
    body = render_to_string(template, context).encode()
    return Output(path, language, HTML, body)


def _month_key(dt):
    local = timezone.localtime(dt, pages.page_time_zone())
    return f"{local.year:04d}-{local.month:02d}"


def _history_items():
    """[(month key, item dict)] newest first: public incidents and maintenance."""
    items = []
    for incident in public.history_incidents():
        items.append(
            (
                incident["published_at"],
                {
                    "kind": "incident",
                    "pk": incident["pk"],
                    "title": incident["title"],
                    "status": incident["public_status"],
                    "at": incident["published_at"],
                    "resolved_at": incident["resolved_at"],
                },
            )
        )
    for window in public.history_maintenance():
        items.append(
            (
                window["scheduled_start"],
                {
                    "kind": "maintenance",
                    "pk": window["pk"],
                    "title": window["title"],
                    "status": window["status"],
                    "at": window["scheduled_start"],
                    "resolved_at": window["scheduled_end"],
                },
            )
        )
    items.sort(key=lambda pair: (pair[0], pair[1]["kind"], pair[1]["pk"]), reverse=True)
    return [(_month_key(at), item) for at, item in items]


def _months(items):
    months = {}
    for key, item in items:
        months.setdefault(key, []).append(item)
    return months


@dataclass
class Plan:
    """What one publish step renders. The services and the ids of the public incidents are read
    only by a step that needs them (the first step renders the page, which reads its own)."""

    full: bool
    since: object
    now: object
    incidents: dict  # the public incidents whose pages are rendered (changed ones, or all)

    @cached_property
    def services(self):
        return list(public.public_services())

    @cached_property
    def public_ids(self):
        return set(public.public_incidents().values_list("pk", flat=True))


def plan(*, full, since, now):
    changed = public.public_incidents()
    if not full:
        changed = changed.filter(updated_at__gte=since - CHANGE_MARGIN)
    return Plan(full=full, since=since, now=now, incidents={i.pk: i for i in changed})


def _page_and_incidents(plan, language):
    with translation.override(language):
        outputs = [_html("/", "statuspage/index.html", pages.index_context(now=plan.now), language)]
        for incident in plan.incidents.values():
            outputs.append(
                _html(
                    f"/incidents/{incident.pk}/",
                    "statuspage/incident.html",
                    {"incident": pages.incident_view(incident, now=plan.now)},
                    language,
                )
            )
    return outputs


def urgent_outputs(plan):
    """What a reader checks first in an outage: the page and the changed incidents' pages in
    the default language, and the Statuspage JSON. Committed before the rest, so they show
    sooner (the other languages follow a moment later)."""
    return [
        *_page_and_incidents(plan, LANGUAGES[0]),
        *machine_outputs.statuspage_json(now=plan.now),
    ]


def remaining_outputs(plan):
    """The history, uptime pages, feeds, calendar and badges; and, per path prefix, which
    paths may exist (the others are removed)."""
    outputs = []
    for language in LANGUAGES[1:]:
        outputs.extend(_page_and_incidents(plan, language))
    services, now, since = plan.services, plan.now, plan.since
    items = _history_items()
    months = _months(items)
    if plan.full:
        month_keys = set(months)
    else:
        month_keys = {_month_key(now)} | {
            _month_key(i.published_at) for i in plan.incidents.values()
        }
    month_order = sorted(months, reverse=True)
    if plan.full:
        uptime_services = services
    else:
        recent = since - CHANGE_MARGIN
        moved = set(
            ServiceStatusInterval.objects.filter(
                Q(valid_from__gte=recent) | Q(valid_to__gte=recent)
            )
            .values_list("service_id", flat=True)
            .distinct()
        )
        uptime_services = [s for s in services if s.pk in moved]

    for language in LANGUAGES:
        with translation.override(language):
            outputs.append(
                _html(
                    "/history/",
                    "statuspage/history.html",
                    {
                        "months": [(k, months[k]) for k in month_order[:3]],
                        "older": month_order[3:],
                        "month": None,
                    },
                    language,
                )
            )
            for key in month_keys & set(months):
                outputs.append(
                    _html(
                        f"/history/{key}/",
                        "statuspage/history.html",
                        {"months": [(key, months[key])], "older": month_order, "month": key},
                        language,
                    )
                )
            for service, year in pages.uptime_years(uptime_services, now=now):
                outputs.append(
                    _html(
                        f"/uptime/{service['slug']}/",
                        "statuspage/uptime.html",
                        {"service": service, "months": year},
                        language,
                    )
                )
    touched = {s.pk for i in plan.incidents.values() for s in i.public_services}
    feed_services = (
        services if plan.full else [s for s in services if s.pk in touched or s in uptime_services]
    )
    outputs.extend(
        machine_outputs.feeds_and_badges(services=services, feed_services=feed_services, now=now)
    )
    keep_prefixes = {
        "/incidents/": {f"/incidents/{pk}/" for pk in plan.public_ids},
        "/uptime/": {f"/uptime/{s.slug}/" for s in services},
        "/badge/": {f"/badge/{s.slug}.svg" for s in services},
        "/history/": {"/history/"}
        | {f"/history/{k}/" for k in months}
        | {f"/history/{s.slug}.{kind}" for s in services for kind in ("atom", "rss")},
    }
    return outputs, keep_prefixes


def _kept(path, produced, keep_prefixes, *, full):
    if path in produced:
        return True
    for prefix, allowed in keep_prefixes.items():
        if path.startswith(prefix):
            return path in allowed
    # Anything else a full publish did not produce is gone (a renamed JSON document, say).
    return not full


def _existing(paths=None):
    """{(path, language): (pk, etag)} of the stored snapshots (of ``paths``, or all)."""
    rows = Snapshot.objects.all()
    if paths is not None:
        rows = rows.filter(path__in=paths)
    return {
        (path, language): (pk, etag)
        for pk, path, language, etag in rows.values_list("pk", "path", "language", "etag")
    }


def _store(outputs, existing, now):
    """Write the outputs whose body changed; returns them."""
    create, update, written = [], [], []
    for output in outputs:
        etag = etag_of(output.body)
        found = existing.get((output.path, output.language))
        if found and found[1] == etag:
            continue
        row = Snapshot(
            path=output.path,
            language=output.language,
            content_type=output.content_type,
            body=output.body,
            etag=etag,
            modified_at=now,
        )
        if found:
            row.pk = found[0]
            update.append(row)
        else:
            create.append(row)
        written.append(output)
    Snapshot.objects.bulk_create(create, batch_size=500)
    Snapshot.objects.bulk_update(
        update, ["content_type", "body", "etag", "modified_at"], batch_size=500
    )
    return written


def _rest_interval():
    return getattr(settings, "STATUS_PAGE_REST_INTERVAL", 5.0)


def _publish_rest_later(countdown):
    """Ask for the second step alone in ``countdown`` seconds (by name: this runs in a task)."""
    try:
        current_app.send_task(
            "statuspage.publish",
            kwargs={"requested_at": time.time(), "rest_only": True},
            countdown=countdown,
        )
    except Exception:  # beat's minute publish catches up
        logger.warning("could not schedule the rest of a publish", exc_info=True)


def publish(*, requested_at=None, full=False, rest_only=False, now=None):
    """Publish unless a publish that started after ``requested_at`` covered it. Returns the
    number of outputs that changed, or None when skipped.

    Two steps, each its own transaction under the ``PublishState`` lock. First the urgent
    outputs (the page, the changed incidents, the JSON): every publish. Then the rest (the other
    language, history, uptime pages, feeds, calendar, badges), from data it reads itself: at most
    once per ``STATUS_PAGE_REST_INTERVAL`` seconds, so a stream of public updates costs a short
    first step each and one second step per interval (a later one is scheduled, ``rest_only``)."""
    started = timezone.now()  # before the lock: every commit before it is visible below
    PublishState.objects.get_or_create(pk=1)
    first = []
    with transaction.atomic():
        state = PublishState.objects.select_for_update().get(pk=1)
        covered_at = state.incidents_since if rest_only else state.started_at
        if requested_at is not None and covered_at and requested_at < covered_at:
            return None
        now = now or timezone.now()
        full = (full or state.full_at is None) and not rest_only
        ensure_rolled_up(now=now)
        if not rest_only:
            work = plan(full=full, since=state.started_at or now, now=now)
            urgent = urgent_outputs(work)
            first = _store(urgent, _existing({o.path for o in urgent}), now)
            state.started_at = started
            state.save(update_fields=["started_at"])
            transaction.on_commit(lambda: write_files(first, []))
        last_rest = state.finished_at
    wait = _rest_interval() - (now - last_rest).total_seconds() if last_rest else 0
    if not (full or rest_only) and wait > 0:
        _publish_rest_later(wait)
        return len(first)

    rest_started = timezone.now()
    with transaction.atomic():
        state = PublishState.objects.select_for_update().get(pk=1)
        # Today's figures move by the minute: rolled up here, shown from the next first step on.
        roll_up(today(now), today(now), now=now)
        work = plan(full=full, since=state.incidents_since or state.started_at or now, now=now)
        rest, keep_prefixes = remaining_outputs(work)
        existing = _existing()
        second = _store(rest, existing, now)
        produced = {o.path for o in first} | {o.path for o in rest}
        gone = [
            (pk, path, language)
            for (path, language), (pk, _etag) in existing.items()
            if not _kept(path, produced, keep_prefixes, full=full)
        ]
        Snapshot.objects.filter(pk__in=[pk for pk, _p, _l in gone]).delete()
        state.finished_at = timezone.now()
        state.incidents_since = rest_started
        if full:
            state.full_at = started
        state.save(update_fields=["finished_at", "incidents_since", "full_at"])
        removed = [(path, language) for _pk, path, language in gone]
        transaction.on_commit(lambda: write_files(second, removed, everything=full))
    return len(first) + len(second) + len(gone)


# --- the published folder ----------------------------------------------------------------


def published_dir():
    folder = getattr(settings, "STATUS_PAGE_DIR", "")
    return Path(folder) if folder else None


def _write_atomically(target, body):
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)  # a reader sees the old file or the new one, never half
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_files(written, removed, *, everything=False):
    """Mirror the snapshot into STATUS_PAGE_DIR: changed outputs, removed ones, and on a full
    publish every output (so a folder that was wiped or lost writes comes back whole)."""
    folder = published_dir()
    if folder is None:
        return
    try:
        if everything:
            written = [
                Output(s.path, s.language, s.content_type, bytes(s.body))
                for s in Snapshot.objects.all().iterator()
            ]
            for name in STATIC_FILES:
                source = finders.find(name)
                if source:
                    target = folder / "static" / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
        for output in written:
            _write_atomically(folder / file_name(output.path, output.language), output.body)
        for path, language in removed:
            (folder / file_name(path, language)).unlink(missing_ok=True)
    except OSError:
        logger.exception("could not write the published status page to %s", folder)

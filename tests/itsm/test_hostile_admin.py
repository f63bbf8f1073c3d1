"""The hostile admin walk (issue 15, "bad input never gives a 500").

Every registered ModelAdmin (read from ``admin.site._registry``, so a new admin is walked without
touching this file) is visited as a superuser with a table of hostile values: in search, filter,
ordering, page and date drill-down parameters of the changelist, in the add form's query-string
initial values, as object ids in every URL that takes one (the standard change/history/delete
pages and the admin's own ``get_urls()``), and in every field of every form the pages render
(the change form with its inlines and their management forms, the workflow buttons, the bulk
actions). A read-only staff user gets a cheaper share of the same. Nothing may answer 5xx and no
row of any table may change: every posted value is hostile, so a save that went through is a
defect too.

All failures of one admin are collected and reported in one assertion, one line per request, with
the hostile value named rather than printed (one of them is a megabyte).
"""

import contextlib
import datetime as dt
import hashlib
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from tests.factories import (
    READ_ONLY_GROUP,
    ContactFactory,
    GroupFactory,
    ServiceFactory,
    SubscriptionFactory,
    UserFactory,
    office_calendar,
    sla_policy,
)

NUL = "a\x00b"
ONE_MB = "x" * 1_000_000

# name -> value. The names are what a failure reports.
HOSTILE = {
    "nul": NUL,
    "superscript": "²",
    "negative": "-1",
    "huge": "9" * 30,
    "far_future": "99999-12-31",
    "unknown_id": "987654321",
    "junk": "1'; --<x>",
}
# Shorter tables where each value costs a page render per parameter.
QUERY_VALUES = ("nul", "superscript", "negative", "huge")
ID_VALUES = ("nul", "superscript", "negative", "huge", "unknown_id", "junk")
SEARCH_VALUES = (*QUERY_VALUES, "one_mb")
VALUE = {**HOSTILE, "one_mb": ONE_MB}

# What a date drill-down can be asked for; 9999-12 and 9999-12-31 are the calendar's edge.
DATE_DRILLS = (
    {"year": "99999"},
    {"year": "9999", "month": "12"},
    {"year": "9999", "month": "12", "day": "31"},
    {"year": "2026", "month": "13"},
    {"year": "2026", "month": "2", "day": "30"},
    {"year": "0"},
    {"year": "-1"},
    {"year": "²"},
    {"year": "2026", "month": NUL},
)

MANAGEMENT = ("TOTAL_FORMS", "INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS")

pytestmark = pytest.mark.slow


# --- what the pages offer ----------------------------------------------------------------------


class Forms(HTMLParser):
    """The forms of a page as a browser would submit them: action, method and the named
    fields with their rendered values (a select's options too), plus every ``?query`` link."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.links = []
        self._form = None
        self._select = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "a" and attrs.get("href", "").startswith("?"):
            self.links.append(attrs["href"])
        if tag == "form":
            self._form = {
                "action": attrs.get("action", ""),
                "method": attrs.get("method", "get").lower(),
                "fields": [],  # (name, kind, value)
                "options": {},
            }
            self.forms.append(self._form)
        if self._form is None or not attrs.get("name"):
            return
        name = attrs["name"]
        if tag == "input":
            kind = attrs.get("type", "text").lower()
            if kind == "text" and TYPED_CLASSES.intersection(attrs.get("class", "").split()):
                kind = "typed"  # the admin's date, time, number and raw-id inputs
            if kind in ("checkbox", "radio") and "checked" not in attrs:
                value = None  # a browser sends nothing for it
            else:
                value = attrs.get("value", "")
            self._form["fields"].append((name, kind, value))
        elif tag == "textarea":
            self._form["fields"].append((name, "textarea", ""))
        elif tag == "select":
            self._select = name
            self._form["fields"].append((name, "select", ""))
            self._form["options"][name] = []

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)


def _option_values(html, select_name):
    """The option values of one select (the changelist's action menu)."""
    values = []

    class Options(HTMLParser):
        inside = False

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "select":
                self.inside = attrs.get("name") == select_name
            elif tag == "option" and self.inside and attrs.get("value"):
                values.append(attrs["value"])

        def handle_endtag(self, tag):
            if tag == "select":
                self.inside = False

    Options().feed(html)
    return values


TYPED_CLASSES = {
    "vDateField",
    "vTimeField",
    "vIntegerField",
    "vBigIntegerField",
    "vForeignKeyRawIdAdminField",
    "vManyToManyRawIdAdminField",
}
TEXT_KINDS = ("text", "textarea", "email", "url", "search", "password")
SUBMIT_KINDS = ("submit", "button", "image", "reset", "file")


def hostile_body(form, value, *, keep_management=True, text=NUL):
    """Every field of ``form`` set to ``value``, text fields to ``text``: a NUL byte, so that
    the form is refused whatever the other fields accept (a "-1" is a fine name; the point is
    what "-1" does to an id, a date or a number). The formsets' management counts are kept as
    rendered (so the inline rows are read at all) unless told otherwise. The empty-form template
    rows (``__prefix__``) are not sent, as a browser does not."""
    body = {}
    for name, kind, rendered in form["fields"]:
        if "__prefix__" in name or name == "csrfmiddlewaretoken":
            continue
        if kind in SUBMIT_KINDS:
            if kind == "submit" and name == "_save":
                body[name] = rendered
            continue
        if name.endswith(MANAGEMENT):
            body[name] = rendered if keep_management else value
            continue
        body[name] = text if kind in TEXT_KINDS else value
    return body


def text_fields(form):
    return [
        name
        for name, kind, _ in form["fields"]
        if kind in TEXT_KINDS and "-" not in name and name != "csrfmiddlewaretoken"
    ]


# --- every row of every table, fingerprinted ----------------------------------------------------


def _tables():
    tables = []
    for model in apps.get_models(include_auto_created=True):
        # The admin's log records who saved; a save that changed something shows in its own
        # table, and a save of a read-only page ("no fields changed") changes nothing.
        if model in (Session, LogEntry) or not model._meta.managed or model._meta.proxy:
            continue
        tables.append(model._meta.db_table)
    return sorted(set(tables))


def fingerprint():
    """{table: digest of its rows}: one query on PostgreSQL, one per table elsewhere."""
    tables = _tables()
    quote_name = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                " UNION ALL ".join(
                    f"SELECT '{table}', count(*)::text || ':' || md5(coalesce("
                    f"string_agg(t::text, ',' ORDER BY t::text), '')) FROM {quote_name(table)} t"
                    for table in tables
                )
            )
            return dict(cursor.fetchall())
        digests = {}
        for table in tables:
            cursor.execute(f"SELECT * FROM {quote_name(table)}")
            rows = sorted(repr(row) for row in cursor.fetchall())
            digests[table] = f"{len(rows)}:{hashlib.md5(''.join(rows).encode()).hexdigest()}"
        return digests


class _Undo(Exception):
    pass


class Walk:
    """Sends requests, and remembers each that answered 5xx, raised, or changed a row."""

    def __init__(self, client, who):
        self.client = client
        self.who = who
        self.failures = []
        self.sent = 0

    def get(self, path, params=None, label=""):
        return self.send("get", path, params or {}, label)

    def post(self, path, data, label=""):
        return self.send("post", path, data, label)

    def send(self, method, path, data, label):
        self.sent += 1
        what = f"{self.who} {method.upper()} {path} {label}".rstrip()
        before = fingerprint() if method == "post" else None
        response = None
        try:
            # A savepoint per request: a view that breaks the transaction must not turn every
            # later request into a 500, and a change found is undone for the next request.
            with transaction.atomic():
                response = getattr(self.client, method)(path, data)
                if before is not None:
                    after = fingerprint()
                    changed = sorted(t for t in after if after[t] != before.get(t))
                    if changed:
                        self.failures.append(f"{what}: changed rows of {', '.join(changed)}")
                        raise _Undo
        except _Undo:
            pass
        except Exception as exc:  # the test client re-raises what the view raised: a 500
            first_line = str(exc).splitlines()[0][:160] if str(exc) else ""
            self.failures.append(f"{what}: {type(exc).__name__}: {first_line}")
            return None
        if response.status_code >= 500:
            self.failures.append(f"{what}: HTTP {response.status_code}")
        return response


# --- the data: one of everything, small ---------------------------------------------------------


@pytest.fixture
def catalogue(db):
    from incidents import workflow
    from notifications.models import (
        ChannelCircuit,
        EmailOptOut,
        Notification,
        NotificationEvent,
        install_id,
    )
    from problems.models import Problem
    from services.models import Contract, MaintenanceWindow, ServiceGroup, Team

    calendar = office_calendar(holidays=[dt.date(2026, 12, 25)])
    policy = sla_policy(name="Gold", calendar=calendar, is_default=True)
    group = ServiceGroup.objects.create(name="Core")
    Team.objects.create(group=GroupFactory(name="Desk"), email="desk@example.com")
    service = ServiceFactory(name="Payments", group=group, default_sla_policy=policy)
    ServiceFactory(name="Ledger")
    contact = ContactFactory()
    subscription = SubscriptionFactory(service=service, contact=contact)
    Contract.objects.create(organization=contact.organization, service=service, sla_policy=policy)
    now = timezone.now()
    MaintenanceWindow.objects.create(
        title="Patch", scheduled_start=now, scheduled_end=now + dt.timedelta(hours=1)
    ).services.add(service)
    agent = UserFactory(username="walker-agent", groups=["Service desk agent"])
    incident = workflow.create_incident(
        actor=agent, title="Card payments fail", impact=1, urgency=1, services=[service]
    )
    workflow.post_update(incident, actor=agent, body="Looking")
    Problem.objects.create(title="Acquirer", owner=agent)
    event = NotificationEvent.objects.create(kind="incident_opened", key="walk-1")
    Notification.objects.create(
        event=event,
        channel="email",
        recipient_key="c@example.com",
        contact=contact,
        subscription=subscription,
        status="failed",
    )
    EmailOptOut.objects.create(contact=ContactFactory())
    ChannelCircuit.objects.create(key="email:smtp", retry_at=now)
    _axes_rows(now)
    install_id()  # made on first use, by whatever needs it first
    return incident


def _axes_rows(now):
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    common = {"user_agent": "ua", "ip_address": "10.0.0.1", "username": "x", "path_info": "/"}
    AccessAttempt.objects.create(failures_since_start=3, attempt_time=now, **common)
    AccessLog.objects.create(attempt_time=now, **common)
    AccessFailureLog.objects.create(attempt_time=now, locked_out=False, **common)


@pytest.fixture(autouse=True)
def _axes_on(settings):
    # As in production: the axes admin's own action reads what its middleware sets.
    settings.AXES_ENABLED = True


@pytest.fixture
def superuser(db):
    return UserFactory(username="walker", is_superuser=True)


@pytest.fixture
def reader(db):
    return UserFactory(username="walk-reader", groups=[READ_ONLY_GROUP])


# --- the walk -----------------------------------------------------------------------------------


ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _url(model_admin, name, *args):
    opts = model_admin.opts
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=args)


def _custom_urls(model_admin):
    """The admin's own URL patterns beyond the standard ones, as (pattern, name)."""
    standard = {p.pattern.regex.pattern for p in admin.ModelAdmin.get_urls(model_admin)}
    return [p for p in model_admin.get_urls() if p.pattern.regex.pattern not in standard]


def _custom_paths(model_admin, object_id):
    """Paths of the custom URLs for ``object_id``: each route reversed with every value its
    other parameters take (an incident's actions come from the admin's transitions)."""
    paths = []
    for route in _custom_urls(model_admin):
        others = [n for n in route.pattern.converters if n != "object_id"]
        if "object_id" not in route.pattern.converters:
            continue
        choices = [{}]
        for name in others:
            values = _route_values(model_admin, name)
            choices = [{**c, name: v} for c in choices for v in values]
        for choice in choices:
            with contextlib.suppress(NoReverseMatch):
                paths.append(
                    reverse(f"admin:{route.name}", kwargs={"object_id": object_id, **choice})
                )
    return paths


def _route_values(model_admin, name):
    if name == "action":
        from incidents.admin_views import TRANSITIONS

        return [*TRANSITIONS, "no-such-action", "²"]
    return ["x", "²"]


def walk_changelist(walk, model_admin):
    url = _url(model_admin, "changelist")
    page = walk.get(url, label="(clean)")
    if page is None or page.status_code != 200:
        return
    html = page.content.decode()
    params = set()
    for link in Forms(html).links:
        params.update(k for k, _ in parse_qsl(link[1:], keep_blank_values=True))
    params |= {"o", "p", "e", "_popup", "_to_field", "all"}
    if model_admin.search_fields:
        for name in SEARCH_VALUES:
            walk.get(url, {"q": VALUE[name]}, f"q={name}")
    for param in sorted(params - {"q"}):
        for name in QUERY_VALUES:
            walk.get(url, {param: VALUE[name]}, f"{param}={name}")
    if model_admin.date_hierarchy:
        field = model_admin.date_hierarchy
        for drill in DATE_DRILLS:
            query = {f"{field}__{part}": value for part, value in drill.items()}
            walk.get(url, query, f"{field} drill {drill!r}")
    # The action form, each action with hostile selections.
    actions = list(_option_values(html, "action"))
    for action in actions:
        for name in ("nul", "superscript", "huge", "unknown_id"):
            data = {"action": action, "_selected_action": VALUE[name], "index": "0"}
            walk.post(url, data, f"action={action} selected={name}")
        walk.post(
            url,
            {"action": action, "index": "²", "_selected_action": "²"},
            f"action={action} index=superscript",
        )


def walk_add(walk, model_admin):
    url = _url(model_admin, "add")
    page = walk.get(url, label="(clean)")
    if page is None or page.status_code != 200:
        return
    forms = [f for f in Forms(page.content.decode()).forms if f["method"] == "post"]
    names = {name for form in forms for name, _, _ in form["fields"] if "-" not in name}
    names -= {"csrfmiddlewaretoken", "_save", "_continue", "_addanother"}
    # Query-string initial data: one field at a time, so each field that fails is listed.
    for field in sorted(names):
        for name in ("nul", "superscript"):
            walk.get(url, {field: VALUE[name]}, f"initial {field}={name}")
    walk.get(url, dict.fromkeys(names, NUL), "initial every field=nul")
    for form in forms:
        post_hostile(walk, url, form)


def post_hostile(walk, url, form):
    target = url if form["action"] in ("", ".") else form["action"]
    target = urlsplit(target).path or url
    if target == reverse("admin:logout"):
        return  # the header's logout button: it would end the walk's session
    for name, value in HOSTILE.items():
        walk.post(target, hostile_body(form, value), f"every field={name}")
    # Not a huge count: Django reads up to 1,000 forms then (its absolute_max), a slow page but
    # a bounded one, and the walk's budget.
    for name in ("superscript", "negative"):
        body = hostile_body(form, VALUE[name], keep_management=False)
        walk.post(target, body, f"every field and formset counts={name}")
    # A megabyte in each text field (two a request: the body stays under Django's 2.5 MB), the
    # rest hostile: refused by the other fields or a length limit, never a 500.
    fields = text_fields(form)
    for pair in (fields[i : i + 2] for i in range(0, len(fields), 2)):
        body = hostile_body(form, NUL)
        body.update(dict.fromkeys(pair, ONE_MB))
        walk.post(target, body, f"{'+'.join(pair)}=one_mb")


def walk_object(walk, model_admin, obj):
    pk = str(obj.pk)
    change = _url(model_admin, "change", pk)
    page = walk.get(change, label="(clean)")
    walk.get(_url(model_admin, "history", pk), label="(clean)")
    walk.get(_url(model_admin, "delete", pk), label="(clean)")
    for name in QUERY_VALUES:
        walk.get(change, {"_changelist_filters": VALUE[name]}, f"_changelist_filters={name}")
        walk.get(change, {"_popup": "1", "_to_field": VALUE[name]}, f"_to_field={name}")
    for path in _custom_paths(model_admin, pk):
        walk.get(path, label="(clean)")
        for name in ("nul", "one_mb"):
            walk.get(path, {"body": VALUE[name], "reason": VALUE[name]}, f"query={name}")
    if page is None or page.status_code != 200:
        return
    html = page.content.decode()
    for form in Forms(html).forms:
        if form["method"] != "post":
            continue
        post_hostile(walk, change, form)


def walk_ids(walk, model_admin):
    """Every URL that takes an object id, with ids that are not one."""
    for name in ID_VALUES:
        raw = VALUE[name]
        pk = quote(raw, safe="")
        for view in ("change", "history", "delete"):
            walk.get(_url(model_admin, view, "0").replace("/0/", f"/{pk}/", 1), label=f"id={name}")
        walk.post(
            _url(model_admin, "delete", "0").replace("/0/", f"/{pk}/", 1),
            {"post": "yes"},
            f"id={name}",
        )
        walk.post(
            _url(model_admin, "change", "0").replace("/0/", f"/{pk}/", 1),
            {"_save": "Save"},
            f"id={name}",
        )
        base = _url(model_admin, "changelist")
        walk.get(f"{base}{pk}/", label=f"id={name}")
        if name not in ("nul", "superscript", "unknown_id"):
            continue
        for path in _custom_paths(model_admin, "0"):
            walk.get(path.replace("/0/", f"/{pk}/", 1), label=f"id={name}")
            walk.post(path.replace("/0/", f"/{pk}/", 1), {"version": "1"}, f"id={name}")


def _an_object(model_admin, request_user):
    return model_admin.model._default_manager.order_by("pk").first()


def _report(walk):
    return f"{len(walk.failures)} of {walk.sent} requests failed:\n" + "\n".join(walk.failures)


@pytest.mark.parametrize(
    "model,model_admin", ADMINS, ids=[model._meta.label for model, _ in ADMINS]
)
def test_no_hostile_value_gives_a_500_or_changes_a_row(
    client, catalogue, superuser, reader, model, model_admin
):
    client.force_login(superuser)
    reader_client = Client()
    reader_client.force_login(reader)  # before the snapshot: a login writes last_login
    start = fingerprint()
    walk = Walk(client, "superuser")
    walk_changelist(walk, model_admin)
    walk_add(walk, model_admin)
    walk_ids(walk, model_admin)
    obj = _an_object(model_admin, superuser)
    if obj is not None:
        walk_object(walk, model_admin, obj)

    # The read-only staff user: the same pages answer 403 or show, never 500, change nothing.
    reading = Walk(reader_client, "reader")
    changelist = _url(model_admin, "changelist")
    reading.get(changelist, {"q": NUL}, "q=nul")
    reading.post(changelist, {"action": "delete_selected", "_selected_action": "²"}, "action")
    reading.post(_url(model_admin, "add"), {"_save": "Save"}, "(empty)")
    if obj is not None:
        change = _url(model_admin, "change", obj.pk)
        reading.get(change, label="(clean)")
        reading.post(change, {"_save": "Save"}, "(empty)")
        for path in _custom_paths(model_admin, str(obj.pk)):
            reading.post(path, {"version": "²", "reason": NUL, "body": NUL}, "hostile")
    walk.failures += reading.failures
    walk.sent += reading.sent

    end = fingerprint()
    changed = sorted(t for t in end if end[t] != start.get(t))
    if changed:
        walk.failures.append(f"the walk as a whole changed rows of {', '.join(changed)}")
    assert not walk.failures, _report(walk)


def test_the_site_wide_admin_urls_refuse_hostile_values(client, catalogue, superuser):
    """Autocomplete for every field that uses it, the view-on-site redirect, and the app index."""
    client.force_login(superuser)
    start = fingerprint()
    walk = Walk(client, "superuser")
    autocomplete = reverse("admin:autocomplete")
    for model, model_admin in ADMINS:
        opts = model._meta
        for field_name in model_admin.autocomplete_fields:
            base = {"app_label": opts.app_label, "model_name": opts.model_name}
            for name in SEARCH_VALUES:
                walk.get(
                    autocomplete,
                    {**base, "field_name": field_name, "term": VALUE[name]},
                    f"{opts.label}.{field_name} term={name}",
                )
            walk.get(
                autocomplete,
                {**base, "field_name": field_name, "page": "²"},
                f"{opts.label}.{field_name} page=superscript",
            )
    for name in QUERY_VALUES:
        value = VALUE[name]
        walk.get(
            autocomplete,
            {"app_label": value, "model_name": value, "field_name": value, "term": "a"},
            f"every parameter={name}",
        )
        pk = quote(value, safe="")
        walk.get(f"/admin/r/{pk}/{pk}/", label=f"ids={name}")
        walk.get(f"/admin/r/1/{pk}/", label=f"object id={name}")
        walk.get(f"/admin/{pk}/", label=f"app label={name}")
    end = fingerprint()
    changed = sorted(t for t in end if end[t] != start.get(t))
    if changed:
        walk.failures.append(f"the walk as a whole changed rows of {', '.join(changed)}")
    assert not walk.failures, _report(walk)

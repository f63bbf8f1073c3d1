"""Outbound webhooks for integrators (issue 19): endpoints subscribed through the API and the
admin hear of incidents, SLA signals and maintenance through the outbox, signed with their own
Standard Webhooks secret, received here by a real HTTP server and verified with the
``standardwebhooks`` library."""

import datetime as dt
import json
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from incidents import workflow
from incidents.sweep import sweep_sla
from itsm import tokens
from itsm.actors import Actor
from notifications import delivery, webhooks
from notifications.models import Notification, NotificationStatus, WebhookEndpoint
from services import workflow as catalog
from services.models import MaintenanceStatus
from tests.factories import (
    AGENT_GROUP,
    SECURITY_GROUP,
    OrganizationFactory,
    ServiceFactory,
    UserFactory,
    sla_policy,
)

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
ALL_TYPES = [
    "incident.created",
    "incident.updated",
    "incident.resolved",
    "sla.warning",
    "sla.breached",
    "maintenance.scheduled",
    "maintenance.started",
    "maintenance.completed",
    "maintenance.cancelled",
]


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def agent():
    return UserFactory(username="agent", groups=[AGENT_GROUP])


@pytest.fixture
def security():
    return UserFactory(username="sherlock", groups=[SECURITY_GROUP])


@pytest.fixture
def service():
    policy = sla_policy(
        name="24x7",
        targets={
            1: (dt.timedelta(minutes=15), dt.timedelta(hours=1)),
            2: (dt.timedelta(minutes=30), dt.timedelta(hours=4)),
            3: (dt.timedelta(hours=1), dt.timedelta(hours=8)),
        },
        is_default=True,
    )
    return ServiceFactory(name="Payments", slug="payments", default_sla_policy=policy)


@pytest.fixture
def acme():
    return OrganizationFactory(slug="acme", name="Acme")


@pytest.fixture
def globex():
    return OrganizationFactory(slug="globex", name="Globex")


def endpoint(url, types=ALL_TYPES, **extra):
    return webhooks.create_endpoint(actor=Actor.system(), url=url, event_types=types, **extra)


def deliver():
    """Send every queued endpoint message now, as workers would on commit."""
    for _ in range(5):
        due = set(
            Notification.objects.filter(
                endpoint__isnull=False, status=NotificationStatus.PENDING
            ).values_list("event_id", flat=True)
        )
        if not due:
            return
        for event_id in sorted(due):
            delivery.deliver_event(event_id)


def received(receiver, secret, path="/hook"):
    """The bodies that arrived at ``path``, each verified against ``secret`` (raises if a
    signature does not match)."""
    bodies = []
    for got_path, headers, body in receiver.requests:
        if got_path != path:
            continue
        lowered = {k.lower(): v for k, v in headers.items()}
        bodies.append(Webhook(secret).verify(body, lowered))
    return bodies


def types_of(bodies):
    return Counter(b["type"] for b in bodies)


def test_each_event_type_arrives_once_signed_with_the_endpoints_secret(receiver, agent, service):
    hook = endpoint(receiver.url())
    other = endpoint(receiver.url("/other"))  # another secret: signatures are per endpoint
    assert hook.secret.startswith("whsec_") and hook.secret != other.secret

    incident = workflow.create_incident(
        actor=agent, title="Checkout down", impact=1, urgency=1, services=[service], now=T0
    )
    sweep_sla(now=at(11.25))  # 75 % of the 15 min response target: a warning
    sweep_sla(now=at(15))  # the breach (the 90 % warning is recorded, not announced)
    incident = workflow.acknowledge(incident, actor=agent, now=at(16))
    workflow.resolve(incident, actor=agent, code="fixed", notes="Restarted.", now=at(20))

    start = timezone.now() + dt.timedelta(days=1)
    window = catalog.schedule_maintenance(
        title="Database upgrade",
        services=[service],
        scheduled_start=start,
        scheduled_end=start + dt.timedelta(hours=2),
    )
    catalog.move_maintenance(window, to=MaintenanceStatus.IN_PROGRESS)
    catalog.move_maintenance(window, to=MaintenanceStatus.COMPLETED)
    dropped = catalog.schedule_maintenance(
        title="Network change",
        services=[service],
        scheduled_start=start,
        scheduled_end=start + dt.timedelta(hours=1),
    )
    catalog.move_maintenance(dropped, to=MaintenanceStatus.CANCELLED)
    deliver()

    bodies = received(receiver, hook.secret)
    assert types_of(bodies) == Counter(dict.fromkeys(ALL_TYPES, 1))
    assert types_of(received(receiver, other.secret, "/other")) == types_of(bodies)
    with pytest.raises(WebhookVerificationError):
        received(receiver, other.secret)  # the first endpoint's bodies fail the other secret

    by_type = {b["type"]: b for b in bodies}
    created = by_type["incident.created"]
    assert set(created) == {"type", "timestamp", "data"}
    assert created["data"]["incident"]["reference"] == incident.reference
    assert created["data"]["incident"]["state"] == "new"
    assert created["data"]["incident"]["services"][0]["slug"] == "payments"
    assert by_type["incident.updated"]["data"]["incident"]["state"] == "acknowledged"
    assert by_type["incident.resolved"]["data"]["incident"]["state"] == "resolved"
    breach = by_type["sla.breached"]["data"]
    assert (breach["target"], breach["threshold_percent"]) == ("response", 100)
    assert by_type["sla.warning"]["data"]["threshold_percent"] == 75
    assert by_type["maintenance.started"]["data"]["title"] == "Database upgrade"
    assert by_type["maintenance.cancelled"]["data"]["status"] == "cancelled"
    # One webhook-id per message, kept on retries: none repeats.
    ids = [h["webhook-id"] for p, h, _b in receiver.requests if p == "/hook"]
    assert len(ids) == len(set(ids)) == len(ALL_TYPES)


def test_an_organisations_endpoint_hears_only_its_own_incidents_never_confidential_ones(
    receiver, agent, security, service, acme, globex
):
    ours = endpoint(receiver.url("/acme"), ["incident.created"], organization=acme)
    everyone = endpoint(receiver.url("/all"), ["incident.created"])
    workflow.create_incident(actor=agent, title="Acme cannot log in", organization=acme)
    workflow.create_incident(actor=agent, title="Globex mail slow", organization=globex)
    workflow.create_incident(
        actor=security, title="CFO mailbox read", organization=acme, is_confidential=True
    )
    deliver()

    def titles(hook, path):
        return sorted(b["data"]["incident"]["title"] for b in received(receiver, hook.secret, path))

    assert titles(ours, "/acme") == ["Acme cannot log in"]
    # An endpoint bound to nobody reads like an unbound token: never a confidential incident.
    assert titles(everyone, "/all") == ["Acme cannot log in", "Globex mail slow"]
    assert b"CFO" not in b"".join(body for _p, _h, body in receiver.requests)


def test_inactive_endpoints_get_nothing(receiver, agent, service):
    endpoint(receiver.url("/off"), is_active=False)
    later_off = endpoint(receiver.url("/later"))
    workflow.create_incident(actor=agent, title="Queued before deactivation", services=[service])
    webhooks.change_endpoint(later_off, actor=Actor.system(), changes={"is_active": False})
    deliver()

    assert receiver.requests == []
    row = Notification.objects.get(endpoint=later_off)
    assert row.status == NotificationStatus.CANCELLED  # queued, then stopped at send time


def test_an_endpoint_hears_only_the_event_types_it_chose(receiver, agent, service):
    hook = endpoint(receiver.url(), ["incident.resolved"])
    incident = workflow.create_incident(actor=agent, title="Slow", services=[service])
    incident = workflow.acknowledge(incident, actor=agent)
    deliver()
    assert receiver.requests == []

    workflow.resolve(incident, actor=agent, code="fixed", notes="Done.")
    deliver()
    assert types_of(received(receiver, hook.secret)) == Counter({"incident.resolved": 1})


def test_a_transition_costs_no_statement_more_while_no_endpoint_listens(agent, service):
    """The active endpoints are read in the round trip of the row lock: endpoints that do not
    want the event (or none at all) add no statement to a change."""
    incident = workflow.create_incident(actor=agent, title="A", services=[service])

    def statements(change):
        with CaptureQueriesContext(connection) as ctx:
            change()
        return len(ctx.captured_queries)

    quiet = statements(lambda: workflow.acknowledge(incident, actor=agent))
    endpoint("https://hooks.example.com/x", ["maintenance.started"])
    other = workflow.create_incident(actor=agent, title="B", services=[service])
    assert statements(lambda: workflow.acknowledge(other, actor=agent)) == quiet


# --- the API ----------------------------------------------------------------------------------


def bearer(client, scopes, organization=None):
    _token, secret = tokens.issue(name="t", scopes=list(scopes), organization=organization)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


LIST = "/api/v1/webhooks/"


def test_api_organisation_tokens_manage_their_own_endpoints_only(client, acme, globex, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    bearer(client, ["write"], acme)
    answer = post(
        client, LIST, {"url": "https://hooks.acme.example/itsm", "event_types": ALL_TYPES}
    )
    assert answer.status_code == 201, answer.json()
    created = answer.json()
    assert created["organization"] == "acme"  # a bound token's endpoints are its own
    assert created["secret"].startswith("whsec_")
    assert WebhookEndpoint.objects.get(pk=created["id"]).secret == created["secret"]
    detail = f"{LIST}{created['id']}/"
    assert "secret" not in client.get(detail).json()
    assert all("secret" not in e for e in client.get(LIST).json()["results"])

    refused = post(
        client,
        LIST,
        {"url": "https://x.example/", "event_types": ["sla.breached"], "organization": "globex"},
    )
    assert refused.status_code == 400 and "organization" in refused.json()

    bearer(client, ["write"], globex)
    assert client.get(LIST).json()["results"] == []
    assert client.get(detail).status_code == 404
    assert (
        client.patch(detail, {"is_active": False}, content_type="application/json").status_code
        == 404
    )
    assert post(client, f"{detail}rotate-secret/").status_code == 404
    assert client.delete(detail).status_code == 404

    bearer(client, ["read"])
    assert client.get(LIST).status_code == 403
    bearer(client, ["write"])  # not bound to an organisation: the admin scope is needed
    assert (
        post(client, LIST, {"url": "https://a.example/", "event_types": ALL_TYPES}).status_code
        == 403
    )

    bearer(client, ["admin"])
    assert [e["id"] for e in client.get(LIST).json()["results"]] == [created["id"]]
    changed = client.patch(
        detail, {"event_types": ["incident.created"]}, content_type="application/json"
    )
    assert changed.status_code == 200 and changed.json()["event_types"] == ["incident.created"]
    assert client.delete(detail).status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_api_rotate_secret_and_test_ping_through_the_outbox(client, receiver, acme):
    bearer(client, ["admin"])
    created = post(client, LIST, {"url": receiver.url(), "event_types": ["incident.created"]})
    assert created.status_code == 201, created.json()
    detail = f"{LIST}{created.json()['id']}/"

    rotated = post(client, f"{detail}rotate-secret/")
    assert rotated.status_code == 200
    secret = rotated.json()["secret"]
    assert secret.startswith("whsec_") and secret != created.json()["secret"]

    queued = post(client, f"{detail}test/")
    assert queued.status_code == 202
    assert receiver.requests == []  # queued, not sent inline
    deliver()
    (ping,) = received(receiver, secret)  # signed with the new secret
    assert ping["type"] == "ping" and ping["data"]["endpoint_id"] == created.json()["id"]
    last = client.get(detail).json()["last_delivery"]
    assert last["status"] == "sent"

    client.patch(detail, {"is_active": False}, content_type="application/json")
    refused = post(client, f"{detail}test/")
    assert refused.status_code == 400 and "is_active" in refused.json()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "ftp://hooks.example.com/",
    ],
)
def test_api_refuses_a_url_the_ssrf_guard_would_refuse_with_a_field_message(client, url, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    bearer(client, ["admin"])
    answer = post(client, LIST, {"url": url, "event_types": ["incident.created"]})
    assert answer.status_code == 400
    assert list(answer.json()) == ["url"] and answer.json()["url"][0]
    assert not WebhookEndpoint.objects.exists()


def test_api_refuses_unknown_event_types_with_a_field_message(client):
    bearer(client, ["admin"])
    answer = post(client, LIST, {"url": "https://hooks.example.com/", "event_types": ["nope"]})
    assert answer.status_code == 400 and "event_types" in answer.json()
    answer = post(client, LIST, {"url": "https://hooks.example.com/", "event_types": []})
    assert answer.status_code == 400 and "event_types" in answer.json()


def test_api_list_takes_the_same_queries_at_10_and_100_endpoints(client, acme):
    """The last delivery of each endpoint is a subquery of the page's one query."""
    bearer(client, ["admin"])

    def page_queries(rows):
        have = WebhookEndpoint.objects.count()
        WebhookEndpoint.objects.bulk_create(
            WebhookEndpoint(
                url=f"https://hooks{i}.example.com/",
                event_types=ALL_TYPES,
                organization=acme if i % 2 else None,
            )
            for i in range(have, rows)
        )
        for hook in WebhookEndpoint.objects.order_by("pk")[have:]:
            webhooks.send_ping(hook, actor=Actor.system())
        client.get(LIST)  # the token's last-used stamp is written once a minute: not counted
        with CaptureQueriesContext(connection) as ctx:
            answer = client.get(LIST, {"page_size": 100})
        assert answer.status_code == 200
        assert len(answer.json()["results"]) == min(rows, 50)
        assert all(e["last_delivery"]["status"] == "pending" for e in answer.json()["results"])
        return len(ctx.captured_queries)

    assert page_queries(10) == page_queries(100)


def test_schema_documents_the_webhooks(client):
    staff = UserFactory(username="docs", is_staff=True, is_superuser=True)
    client.force_login(staff)
    schema = client.get(reverse("schema"), {"format": "json"}).json()
    assert schema["openapi"].startswith("3.1")
    assert set(ALL_TYPES) | {"ping"} <= set(schema["webhooks"])
    body = schema["webhooks"]["incident.created"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("WebhookIncidentEvent")


# --- the admin --------------------------------------------------------------------------------


def test_admin_adds_an_endpoint_showing_its_secret_once_and_rotates_it(client, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    admin_user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    add = reverse("admin:notifications_webhookendpoint_add")
    answer = client.post(
        add,
        {
            "url": "https://hooks.example.com/a",
            "event_types": ["incident.created"],
            "is_active": "on",
        },
        follow=True,
    )
    hook = WebhookEndpoint.objects.get()
    assert hook.created_by == admin_user
    assert hook.secret in answer.content.decode()
    changelist = reverse("admin:notifications_webhookendpoint_changelist")
    page = client.get(changelist, {"event_type": "incident.created", "q": "hooks"})
    assert page.status_code == 200 and hook.secret not in page.content.decode()
    assert "nothing sent yet" in page.content.decode()

    old = hook.secret
    answer = client.post(
        changelist, {"action": "rotate_secret", "_selected_action": [hook.pk]}, follow=True
    )
    hook.refresh_from_db()
    assert hook.secret != old and hook.secret in answer.content.decode()

    refused = client.post(
        add, {"url": "http://169.254.169.254/", "event_types": ["incident.created"]}
    )
    assert refused.status_code == 200 and WebhookEndpoint.objects.count() == 1


def test_admin_changelist_takes_the_same_queries_at_10_and_100_endpoints(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    changelist = reverse("admin:notifications_webhookendpoint_changelist")

    def page_queries(rows):
        have = WebhookEndpoint.objects.count()
        WebhookEndpoint.objects.bulk_create(
            WebhookEndpoint(url=f"https://hooks{i}.example.com/", event_types=ALL_TYPES)
            for i in range(have, rows)
        )
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(changelist).status_code == 200
        return len(ctx.captured_queries)

    assert page_queries(10) == page_queries(100)


def test_maintenance_of_private_services_reaches_no_organisations_endpoint(receiver, acme):
    ours = endpoint(receiver.url("/acme"), ["maintenance.scheduled"], organization=acme)
    everyone = endpoint(receiver.url("/all"), ["maintenance.scheduled"])
    start = timezone.now() + dt.timedelta(days=1)
    for title, public in (("Public upgrade", True), ("Internal upgrade", False)):
        catalog.schedule_maintenance(
            title=title,
            services=[ServiceFactory(is_public=public)],
            scheduled_start=start,
            scheduled_end=start + dt.timedelta(hours=1),
        )
    deliver()

    def titles(hook, path):
        return sorted(b["data"]["title"] for b in received(receiver, hook.secret, path))

    assert titles(ours, "/acme") == ["Public upgrade"]
    assert titles(everyone, "/all") == ["Internal upgrade", "Public upgrade"]


def test_a_new_url_takes_the_messages_still_queued(receiver, agent, service):
    hook = endpoint("https://hooks.example.com/old", ["incident.created"])
    workflow.create_incident(actor=agent, title="Queued for the old URL", services=[service])
    webhooks.change_endpoint(hook, actor=Actor.system(), changes={"url": receiver.url()})
    deliver()
    (body,) = received(receiver, hook.secret)
    assert body["data"]["incident"]["title"] == "Queued for the old URL"

"""Alerts in: recorded Alertmanager, Grafana and Events API payloads open, group, note and
resolve incidents through the workflow; what is refused is kept and opens nothing."""

import copy
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from incidents import alert_payloads, workflow
from incidents.models import (
    Alert,
    AlertRule,
    AlertStatus,
    EventKind,
    Grouping,
    Incident,
    IncidentEvent,
    IncidentState,
    IncidentUpdate,
    RejectedPayload,
)
from itsm import tokens
from itsm.actors import ActorKind
from services.models import ServiceStatus

pytestmark = pytest.mark.django_db
PAYLOADS = Path(__file__).parent / "payloads"
AM = "/api/v1/integrations/alertmanager/"
GRAFANA = "/api/v1/integrations/grafana/"
EVENTS = "/api/v1/integrations/events/"


def payload(name):
    return json.loads((PAYLOADS / f"{name}.json").read_text())


@pytest.fixture
def prom(client):
    """A client holding a token with the integration scope, as Alertmanager sends it."""
    _token, secret = tokens.issue(name="prom-prod", scopes=["integration"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def post(client, url, body, **headers):
    text = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(url, data=text, content_type="application/json", **headers)


def ok(response):
    assert response.status_code in (200, 202), response.content
    return response.json()


def timeline(incident):
    return list(
        IncidentEvent.objects.filter(incident=incident)
        .order_by("at", "id")
        .values_list("kind", flat=True)
    )


def notes(incident):
    return list(
        IncidentUpdate.objects.filter(incident=incident, is_public=False)
        .order_by("created_at", "id")
        .values_list("body", flat=True)
    )


@pytest.fixture
def checkout_rule(service):
    return AlertRule.objects.create(
        source="alertmanager",
        name="checkout errors",
        matchers={"job": "checkout", "severity": "=~critical|page"},
        service=service,
        service_status=ServiceStatus.MAJOR_OUTAGE,
        impact=1,
        urgency=1,
        title_template="{alertname}: {summary}",
        grouping=Grouping.GROUP_KEY,
    )


# --- the recorded Alertmanager life cycle ---------------------------------------------------


def test_a_firing_group_opens_one_incident_with_its_alerts_on_the_rules_service(
    prom, checkout_rule, service
):
    answer = ok(post(prom, AM, payload("alertmanager_firing")))

    (incident,) = Incident.objects.all()
    assert answer["new"] == 2 and answer["incidents_opened"] == [incident.pk]
    assert incident.title == "HighErrorRate: High error rate on checkout"
    assert incident.source == "alertmanager"
    assert (incident.impact, incident.urgency, incident.priority) == (1, 1, 1)
    assert list(incident.affected.values_list("service", "status")) == [
        (service.pk, ServiceStatus.MAJOR_OUTAGE)
    ]
    assert sorted(a.labels["instance"] for a in incident.alerts.all()) == [
        "web-1:9100",
        "web-2:9100",
    ]
    created = IncidentEvent.objects.get(incident=incident, kind=EventKind.CREATED)
    assert created.actor_kind == ActorKind.INTEGRATION
    assert created.actor_label == "Prometheus Alertmanager (prom-prod)"
    alert = Alert.objects.get(fingerprint="c1a2e3f4a5b6c7d8")
    assert alert.status == AlertStatus.FIRING and alert.ends_at is None
    assert alert.starts_at.isoformat() == "2026-12-01T09:58:12.345678+00:00"
    assert alert.payload["generatorURL"].startswith("http://prometheus.example.com")


def test_a_repeat_moves_last_seen_and_writes_nothing_else(prom, checkout_rule):
    ok(post(prom, AM, payload("alertmanager_firing")))
    (incident,) = Incident.objects.all()
    before = (
        timeline(incident),
        incident.version,
        dict(Alert.objects.values_list("pk", "last_seen")),
    )

    answer = ok(post(prom, AM, payload("alertmanager_repeat")))

    incident.refresh_from_db()
    assert answer["repeats"] == 2 and answer["new"] == 0 and answer["incidents_opened"] == []
    assert Incident.objects.count() == 1 and Alert.objects.count() == 2
    assert (timeline(incident), incident.version) == before[:2]
    for pk, seen in Alert.objects.values_list("pk", "last_seen"):
        assert seen > before[2][pk]


def test_a_partial_resolve_notes_the_timeline_and_leaves_the_incident_open(prom, checkout_rule):
    ok(post(prom, AM, payload("alertmanager_firing")))
    ok(post(prom, AM, payload("alertmanager_partial_resolve")))

    (incident,) = Incident.objects.all()
    assert incident.state == IncidentState.NEW
    assert notes(incident) == [
        "Alert resolved: HighErrorRate: High error rate on checkout (c1a2e3f4a5b6c7d8)."
    ]
    assert Alert.objects.get(fingerprint="c1a2e3f4a5b6c7d8").status == AlertStatus.RESOLVED
    assert Alert.objects.get(fingerprint="0f1e2d3c4b5a6978").status == AlertStatus.FIRING
    # Resending the same partial resolve adds nothing.
    ok(post(prom, AM, payload("alertmanager_partial_resolve")))
    assert len(notes(incident)) == 1


def test_when_every_alert_has_resolved_the_incident_resolves(prom, checkout_rule):
    for name in ("firing", "repeat", "partial_resolve", "resolved"):
        ok(post(prom, AM, payload(f"alertmanager_{name}")))

    (incident,) = Incident.objects.all()
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolution_code == "fixed"
    resolved = IncidentEvent.objects.get(incident=incident, kind=EventKind.RESOLVED)
    assert resolved.actor_kind == ActorKind.INTEGRATION
    assert len(notes(incident)) == 2
    assert set(Alert.objects.values_list("status", flat=True)) == {AlertStatus.RESOLVED}


def test_without_auto_resolve_the_incident_stays_open_for_a_person(prom, checkout_rule):
    checkout_rule.auto_resolve = False
    checkout_rule.save()
    ok(post(prom, AM, payload("alertmanager_firing")))
    ok(post(prom, AM, payload("alertmanager_resolved")))

    (incident,) = Incident.objects.all()
    assert incident.state == IncidentState.NEW
    assert len(notes(incident)) == 2
    # The incident is still open: the group's alerts firing again join it.
    ok(post(prom, AM, payload("alertmanager_firing")))
    assert Incident.objects.count() == 1 and len(notes(incident)) == 4


def test_an_alert_firing_again_after_its_incident_resolved_opens_a_new_one(prom, checkout_rule):
    ok(post(prom, AM, payload("alertmanager_firing")))
    ok(post(prom, AM, payload("alertmanager_resolved")))
    first = Incident.objects.get()

    answer = ok(post(prom, AM, payload("alertmanager_firing")))

    second = Incident.objects.exclude(pk=first.pk).get()
    assert answer["refired"] == 2 and answer["incidents_opened"] == [second.pk]
    assert second.state == IncidentState.NEW
    assert set(Alert.objects.values_list("incident", flat=True)) == {second.pk}
    assert Alert.objects.count() == 2


def test_an_alert_still_firing_when_staff_resolved_its_incident_opens_a_new_one(
    prom, checkout_rule, agent
):
    ok(post(prom, AM, payload("alertmanager_firing")))
    first = Incident.objects.get()
    workflow.resolve(first, actor=agent, code="fixed", notes="Restarted the pods.")

    ok(post(prom, AM, payload("alertmanager_repeat")))

    assert Incident.objects.count() == 2
    assert Incident.objects.exclude(pk=first.pk).get().alerts.count() == 2


# --- grouping: distinct alerts stay distinct; custom keys honoured --------------------------


def test_distinct_fingerprints_sharing_a_summary_stay_distinct_alerts(prom, checkout_rule):
    """goalert#4461 merged these; here each is its own alert, and per-fingerprint grouping
    gives each its own incident."""
    checkout_rule.grouping = Grouping.FINGERPRINT
    checkout_rule.save()
    ok(post(prom, AM, payload("alertmanager_firing")))

    assert Alert.objects.count() == 2
    assert Incident.objects.count() == 2
    assert {a.incident_id for a in Alert.objects.all()} == set(
        Incident.objects.values_list("pk", flat=True)
    )
    # Resolving one resolves its own incident only.
    ok(post(prom, AM, payload("alertmanager_partial_resolve")))
    states = dict(Alert.objects.values_list("fingerprint", "incident__state"))
    assert states == {
        "c1a2e3f4a5b6c7d8": IncidentState.RESOLVED,
        "0f1e2d3c4b5a6978": IncidentState.NEW,
    }


def test_alertmanagers_custom_group_keys_are_honoured(prom):
    """keep#6793 ignored custom dedup rules: here the route's group key decides (no rule: the
    default groups by it), so two routes' groups are two incidents, one route's is one."""
    one = payload("alertmanager_firing")
    other = copy.deepcopy(one)
    other["groupKey"] = '{}/{team="payments"}:{cluster="eu-1"}'
    for alert, fp in zip(other["alerts"], ("aaaa000000000001", "aaaa000000000002"), strict=True):
        alert["fingerprint"] = fp

    ok(post(prom, AM, one))
    ok(post(prom, AM, other))

    assert Alert.objects.count() == 4
    groups = {}
    for alert in Alert.objects.all():
        groups.setdefault(alert.incident_id, set()).add(alert.fingerprint)
    assert sorted(map(sorted, groups.values())) == [
        ["0f1e2d3c4b5a6978", "c1a2e3f4a5b6c7d8"],
        ["aaaa000000000001", "aaaa000000000002"],
    ]


def test_a_rule_grouping_by_chosen_labels_puts_one_cluster_in_one_incident(prom, service):
    AlertRule.objects.create(
        source="alertmanager",
        name="per cluster",
        grouping=Grouping.LABELS,
        group_by=["cluster"],
        service=service,
    )
    body = payload("alertmanager_firing")
    body["alerts"][1]["labels"]["cluster"] = "us-2"
    later = copy.deepcopy(body)
    later["groupKey"] = "another route"
    later["alerts"] = [copy.deepcopy(body["alerts"][0])]
    later["alerts"][0]["fingerprint"] = "bbbb000000000001"  # eu-1 again, another alert

    ok(post(prom, AM, body))
    ok(post(prom, AM, later))

    by_cluster = {}
    for alert in Alert.objects.all():
        by_cluster.setdefault(alert.labels["cluster"], set()).add(alert.incident_id)
    assert len(by_cluster["eu-1"]) == 1 and len(by_cluster["us-2"]) == 1
    assert by_cluster["eu-1"] != by_cluster["us-2"]
    assert Incident.objects.count() == 2


def test_the_first_matching_rule_by_order_routes_and_disabled_rules_are_skipped(prom, service):
    from tests.factories import ServiceFactory

    other = ServiceFactory(name="Search", slug="search")
    AlertRule.objects.create(
        source="alertmanager", name="off", order=1, enabled=False, service=other
    )
    AlertRule.objects.create(
        source="alertmanager", name="staging", order=2, matchers={"cluster": "!~eu-.*"}
    )
    AlertRule.objects.create(
        source="alertmanager",
        name="eu",
        order=3,
        matchers={"cluster": "=~eu-.*"},
        service=service,
        title_template="{alertname} on {job} {nothing}{x.__class__}{instance:>999999}",
    )
    ok(post(prom, AM, payload("alertmanager_firing")))

    incident = Incident.objects.get()
    assert incident.title == "HighErrorRate on checkout web-1:9100"
    assert list(incident.services.all()) == [service]


def test_no_matching_rule_opens_an_incident_on_no_service_titled_by_the_summary(prom):
    body = payload("alertmanager_firing")
    ok(post(prom, AM, body))
    incident = Incident.objects.get()
    assert incident.title == "High error rate on checkout"
    assert incident.priority == 3 and not incident.services.exists()

    del body["alerts"][0]["annotations"]["summary"]
    body["alerts"] = body["alerts"][:1]
    body["groupKey"] = "elsewhere"
    body["alerts"][0]["fingerprint"] = "cccc000000000001"
    ok(post(prom, AM, body))
    assert Incident.objects.order_by("-id").first().title == "HighErrorRate"


# --- Grafana and the Events API ---------------------------------------------------------------


def test_grafana_firing_then_resolved(prom):
    ok(post(prom, GRAFANA, payload("grafana_firing")))
    incident = Incident.objects.get()
    assert incident.source == "grafana"
    assert incident.title == "Disk /var/lib/postgresql is 92% full"
    assert Alert.objects.get().payload["values"] == {"B": 92.3, "C": 1}

    ok(post(prom, GRAFANA, payload("grafana_resolved")))
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED


def test_grafana_signature_is_verified_when_a_secret_is_set(prom, settings):
    settings.GRAFANA_WEBHOOK_SECRET = "s3cret"
    body = json.dumps(payload("grafana_firing")).encode()
    good = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()

    bad = post(prom, GRAFANA, body, HTTP_X_GRAFANA_ALERTING_SIGNATURE="0" * 64)
    missing = post(prom, GRAFANA, body)
    assert bad.status_code == missing.status_code == 401
    assert not Incident.objects.exists() and not Alert.objects.exists()
    assert RejectedPayload.objects.filter(status_code=401).count() == 2

    assert post(prom, GRAFANA, body, HTTP_X_GRAFANA_ALERTING_SIGNATURE=good).status_code == 200
    assert Incident.objects.count() == 1


def event(action, **extra):
    body = {"routing_key": "R0UT1NGKEY", "event_action": action, **extra}
    if action == "trigger":
        body.setdefault(
            "payload",
            {
                "summary": "Backup job failed on db-2",
                "source": "db-2.example.com",
                "severity": "error",
                "component": "postgres",
                "group": "backups",
                "custom_details": {"exit_code": 2},
            },
        )
    return body


def test_events_api_trigger_acknowledge_resolve(prom):
    first = ok(post(prom, EVENTS, event("trigger", dedup_key="backup-db-2")))
    assert first == {"status": "success", "message": "Event processed", "dedup_key": "backup-db-2"}
    incident = Incident.objects.get()
    assert incident.source == "events" and incident.title == "Backup job failed on db-2"
    assert Alert.objects.get().labels["severity"] == "error"
    assert "R0UT1NGKEY" not in json.dumps(Alert.objects.get().payload)

    ok(post(prom, EVENTS, event("trigger", dedup_key="backup-db-2")))  # a repeat
    assert Incident.objects.count() == 1

    ok(post(prom, EVENTS, event("acknowledge", dedup_key="backup-db-2")))
    incident.refresh_from_db()
    assert incident.state == IncidentState.ACKNOWLEDGED

    ok(post(prom, EVENTS, event("resolve", dedup_key="backup-db-2")))
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED


def test_events_api_trigger_without_a_dedup_key_gets_one(prom):
    answer = ok(post(prom, EVENTS, event("trigger")))
    assert answer["dedup_key"] == Alert.objects.get().fingerprint


def test_events_api_acknowledging_an_unknown_or_resolved_key_opens_nothing(prom):
    ok(post(prom, EVENTS, event("acknowledge", dedup_key="never-seen")))
    assert not Incident.objects.exists() and not Alert.objects.exists()

    ok(post(prom, EVENTS, event("trigger", dedup_key="k1")))
    ok(post(prom, EVENTS, event("resolve", dedup_key="k1")))
    ok(post(prom, EVENTS, event("acknowledge", dedup_key="k1")))
    (incident,) = Incident.objects.all()
    assert incident.state == IncidentState.RESOLVED


# --- who may send ---------------------------------------------------------------------------


def test_without_a_token_401_and_with_another_scope_403(client):
    body = payload("alertmanager_firing")
    assert post(client, AM, body).status_code == 401
    for scope in ("read", "write"):
        _token, secret = tokens.issue(name=scope, scopes=[scope])
        response = post(client, AM, body, HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert response.status_code == 403, scope
    assert post(client, AM, body, HTTP_AUTHORIZATION="Bearer itsm_nope_nope").status_code == 401
    assert not Alert.objects.exists() and not Incident.objects.exists()
    assert not RejectedPayload.objects.exists()  # strangers do not fill the table


# --- refused bodies --------------------------------------------------------------------------


def refused_only():
    assert not Alert.objects.exists() and not Incident.objects.exists()
    return RejectedPayload.objects.get()


def test_a_malformed_alertmanager_payload_is_400_per_field_and_kept(prom):
    body = payload("alertmanager_firing")
    body["alerts"][0]["status"] = "burning"
    body["alerts"][1]["startsAt"] = "yesterday"
    body["alerts"][1]["labels"]["severity"] = 2

    response = post(prom, AM, body, REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 400
    assert response.json() == {
        "alerts[0].status": ['Must be "firing" or "resolved".'],
        "alerts[1].labels.severity": ["Must be a string."],
        "alerts[1].startsAt": ["Not an RFC 3339 time with a zone, e.g. 2024-05-01T10:00:00Z."],
    }
    kept = refused_only()
    assert kept.source == "alertmanager" and kept.status_code == 400
    assert "alerts[0].status" in kept.error and '"burning"' in kept.body
    assert kept.client_ip == "10.1.2.3"


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (AM, "{not json", "non_field_errors"),
        (AM, {"version": "4", "alerts": []}, "alerts"),
        (AM, [1, 2], "non_field_errors"),
        (EVENTS, {"routing_key": "k", "event_action": "resolve"}, "dedup_key"),
        (EVENTS, {"routing_key": "k", "event_action": "trigger", "payload": {}}, "payload.summary"),
        (EVENTS, {"event_action": "page"}, "event_action"),
        # What PostgreSQL cannot store must be a 400, never a server error.
        (GRAFANA, '{"alerts": [{"values": {"B": NaN}}]}', "non_field_errors"),
        (AM, '{"receiver": "a\\u0000b", "alerts": []}', "non_field_errors"),
        (AM, b'{"receiver": "\x00\xff"}', "non_field_errors"),
        (AM, "[" * 100000 + "]" * 100000, "non_field_errors"),
    ],
)
def test_malformed_bodies_create_nothing_but_a_rejected_payload(prom, url, body, field):
    response = post(prom, url, body)
    assert response.status_code == 400
    assert field in response.json()
    refused_only()


def test_times_out_of_any_monitoring_range_are_refused(prom):
    body = payload("alertmanager_firing")
    body["alerts"][0]["startsAt"] = "9999-12-31T23:59:59-05:00"
    response = post(prom, AM, body)
    assert response.status_code == 400
    assert list(response.json()) == ["alerts[0].startsAt"]
    refused_only()


def test_an_oversized_body_is_413_and_kept_truncated(prom, settings):
    settings.INTEGRATION_MAX_BODY = 2000
    body = payload("alertmanager_firing")
    body["commonAnnotations"]["description"] = "x" * 5000

    response = post(prom, AM, body)

    assert response.status_code == 413
    kept = refused_only()
    assert kept.status_code == 413 and kept.body_size > 5000
    assert kept.body.startswith('{"receiver"')


# --- rules: API, validation, admin ----------------------------------------------------------


RULES = "/api/v1/integrations/rules/"


def test_managers_route_alerts_through_the_rules_api(client, service):
    from tests.factories import MANAGER_GROUP, UserFactory

    client.force_login(UserFactory(username="boss", groups=[MANAGER_GROUP], is_staff=True))
    created = client.post(
        RULES,
        {
            "source": "alertmanager",
            "name": "payments",
            "matchers": {"team": "payments"},
            "service": "payments",
            "impact": 1,
            "grouping": "fingerprint",
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    rule = AlertRule.objects.get()
    assert rule.service == service and rule.grouping == Grouping.FINGERPRINT
    listed = client.get(f"{RULES}?source=alertmanager")
    assert [r["name"] for r in listed.json()["results"]] == ["payments"]

    bad = client.patch(
        f"{RULES}{rule.pk}/",
        {"matchers": {"team": "=~(unclosed"}, "title_template": "{oops"},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert set(bad.json()) == {"matchers", "title_template"}
    rule.refresh_from_db()
    assert rule.matchers == {"team": "payments"}


def test_agents_and_tokens_may_not_change_rules(client, agent):
    client.force_login(agent)
    body = {"source": "grafana", "name": "x"}
    assert client.get(RULES).status_code == 200  # agents see how alerts are routed
    assert client.post(RULES, body, content_type="application/json").status_code == 403
    client.logout()
    _token, secret = tokens.issue(name="prom", scopes=["integration"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    assert client.post(RULES, body, content_type="application/json").status_code == 403
    assert not AlertRule.objects.exists()


def test_the_admin_lists_alerts_rules_and_refused_payloads(admin_client, prom, checkout_rule):
    ok(post(prom, AM, payload("alertmanager_firing")))
    post(prom, AM, {"alerts": "none"})
    for model in ("alert", "alertrule", "alertgroup", "rejectedpayload"):
        response = admin_client.get(f"/admin/incidents/{model}/?source=alertmanager")
        assert response.status_code == 200, model
    assert b"c1a2e3f4a5b6c7d8" in admin_client.get("/admin/incidents/alert/").content
    kept = RejectedPayload.objects.get()
    page = admin_client.get(f"/admin/incidents/rejectedpayload/{kept.pk}/change/")
    assert page.status_code == 200 and b"alerts" in page.content
    assert b'name="_save"' not in page.content  # read-only: nothing to save
    rule_form = admin_client.post(
        f"/admin/incidents/alertrule/{checkout_rule.pk}/change/",
        {
            "source": "alertmanager",
            "name": "checkout errors",
            "order": 1,
            "enabled": "on",
            "matchers": '{"job": "=~[bad"}',
            "service_status": "major_outage",
            "impact": 1,
            "urgency": 1,
            "title_template": "",
            "grouping": "group_key",
            "group_by": "[]",
        },
    )
    assert rule_form.status_code == 200 and b"regular expression" in rule_form.content


# --- the title template and the matchers (pure) ------------------------------------------------


@examples(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_any_title_template_renders_or_is_refused_never_raises(text):
    labels = {"alertname": "Disk", "instance": "db-1"}
    rendered = alert_payloads.render(text, labels, {"summary": "full"})
    assert isinstance(rendered, str)
    assert "<class" not in rendered and "object at 0x" not in rendered
    assert len(rendered) <= len(text) + 20 * (text.count("{") + 1)


def test_the_template_reads_labels_then_annotations_and_nothing_else():
    render = alert_payloads.render
    labels, notes_ = {"alertname": "Disk", "summary": "label wins"}, {"summary": "s", "desc": "d"}
    assert render("{alertname}/{summary}/{desc}/{gone}", labels, notes_) == "Disk/label wins/d/"
    assert render("{alertname.__class__}{alertname[0]}{0}{}{alertname!r:>40}", labels, {}) == (
        "Disk"
    )
    assert alert_payloads.template_problem("{unclosed") is not None
    assert alert_payloads.template_problem("{a} and {b}") is None


@pytest.mark.parametrize(
    ("matchers", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"severity": "critical"}, {"severity": "critical"}, True),
        ({"severity": "critical"}, {"severity": "critical-ish"}, False),
        ({"severity": "=~crit.*|page"}, {"severity": "page"}, True),
        ({"severity": "=~crit"}, {"severity": "critical"}, False),  # whole value, as Alertmanager
        ({"env": "!=prod"}, {}, True),
        ({"env": "!~prod|staging"}, {"env": "prod"}, False),
        ({"team": ""}, {}, True),  # a missing label reads as empty
    ],
)
def test_matchers(matchers, labels, expected):
    assert alert_payloads.matches(matchers, labels) is expected


def test_events_sharing_a_payload_group_share_an_incident_by_default(prom):
    ok(post(prom, EVENTS, event("trigger", dedup_key="backup-db-2")))
    ok(post(prom, EVENTS, event("trigger", dedup_key="backup-db-3")))
    assert Alert.objects.count() == 2 and Incident.objects.count() == 1


def test_a_refusal_is_logged_without_the_token(client, caplog):
    _token, secret = tokens.issue(name="prom-prod", scopes=["integration"])
    with caplog.at_level("INFO"):
        response = post(client, AM, {"alerts": [{}]}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 400
    assert "refused alertmanager payload (400)" in caplog.text
    kept = RejectedPayload.objects.get()
    for text in (caplog.text, kept.error, kept.body):
        assert secret not in text


def test_a_payloads_repeats_cost_the_same_queries_however_many_there_are(prom):
    """The repeats of a payload are touched together (one transaction, two statements), so a
    storm of resends costs per payload, not per alert; and a new alert among them still joins
    the group's incident."""
    base = payload("alertmanager_firing")
    template = base["alerts"][0]

    def body(count, extra=()):
        alerts = []
        for n in [*range(count), *extra]:
            alert = copy.deepcopy(template)
            alert["fingerprint"] = f"fp{n:04d}"
            alert["labels"]["instance"] = f"web-{n}:9100"
            alerts.append(alert)
        return {**base, "alerts": alerts}

    ok(post(prom, AM, body(20)))
    (incident,) = Incident.objects.all()
    seen = dict(Alert.objects.values_list("fingerprint", "last_seen"))
    counts = []
    for size in (2, 20):
        with CaptureQueriesContext(connection) as queries:
            answer = ok(post(prom, AM, body(size)))
        assert (answer["repeats"], answer["new"]) == (size, 0)
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert all(
        last > seen[fp] for fp, last in Alert.objects.values_list("fingerprint", "last_seen")
    )

    answer = ok(post(prom, AM, body(20, extra=[20])))
    assert (answer["repeats"], answer["new"]) == (20, 1)
    assert Alert.objects.get(fingerprint="fp0020").incident == incident
    assert Incident.objects.count() == 1

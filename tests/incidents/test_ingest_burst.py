"""Alerts sent at once, on real PostgreSQL with real threads: copies of one alert make one
incident and one alert; different alerts of one new group make one incident; alerts of one
incident resolving at once resolve it once."""

import json
import threading
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client

from incidents import alert_payloads, ingest
from incidents.models import Alert, AlertGroup, EventKind, Incident, IncidentEvent, IncidentState
from itsm import tokens
from itsm.actors import Actor

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PAYLOADS = Path(__file__).parent / "payloads"


def prometheus():
    return Actor.integration(
        ref="burst",
        label="Alertmanager",
        permissions=tokens.SCOPE_PERMISSIONS["integration"],
    )


def firing_payload():
    return json.loads((PAYLOADS / "alertmanager_firing.json").read_text())


def run_together(count, work):
    """``work(n)`` in ``count`` threads released at once; the errors they raised."""
    barrier = threading.Barrier(count)
    errors = []

    def run(n):
        try:
            barrier.wait()
            work(n)
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_thousand_copies_of_one_alert_make_one_incident_and_one_alert(on_postgres):
    body = firing_payload()
    body["alerts"] = body["alerts"][:1]
    actor = prometheus()

    def send(_n):
        for _ in range(20):
            ingest.ingest("alertmanager", alert_payloads.parse("alertmanager", body), actor=actor)

    assert run_together(50, send) == []

    assert Alert.objects.count() == 1
    (incident,) = Incident.objects.all()
    assert Alert.objects.get().incident == incident
    assert AlertGroup.objects.filter(is_open=True).count() == 1
    # Only the opening is on the timeline: the 999 repeats wrote nothing.
    assert list(IncidentEvent.objects.values_list("kind", flat=True)) == [EventKind.CREATED]


def test_different_alerts_of_one_new_group_make_one_incident(on_postgres):
    body = firing_payload()
    template = body["alerts"][0]
    actor = prometheus()

    def send(n):
        alert = json.loads(json.dumps(template))
        alert["fingerprint"] = f"f{n:015d}"
        alert["labels"]["instance"] = f"web-{n}:9100"
        ingest.ingest(
            "alertmanager",
            alert_payloads.parse("alertmanager", {**body, "alerts": [alert]}),
            actor=actor,
        )

    assert run_together(20, send) == []

    assert Alert.objects.count() == 20
    (incident,) = Incident.objects.all()
    assert set(Alert.objects.values_list("incident", flat=True)) == {incident.pk}


def test_the_alerts_of_an_incident_resolving_at_once_resolve_it_once(on_postgres):
    body = firing_payload()
    actor = prometheus()
    alerts = []
    for n in range(10):
        alert = json.loads(json.dumps(body["alerts"][0]))
        alert["fingerprint"] = f"r{n:015d}"
        alerts.append(alert)
    ingest.ingest(
        "alertmanager",
        alert_payloads.parse("alertmanager", {**body, "alerts": alerts}),
        actor=actor,
    )

    def resolve(n):
        alert = {**alerts[n], "status": "resolved", "endsAt": "2026-12-01T10:30:00Z"}
        ingest.ingest(
            "alertmanager",
            alert_payloads.parse("alertmanager", {**body, "alerts": [alert]}),
            actor=actor,
        )

    assert run_together(10, resolve) == []

    incident = Incident.objects.get()
    assert incident.state == IncidentState.RESOLVED
    assert incident.events.filter(kind=EventKind.RESOLVED).count() == 1
    assert incident.updates.filter(is_public=False).count() == 10


def test_concurrent_webhook_posts_over_http_make_one_incident(on_postgres):
    _token, secret = tokens.issue(name="prom", scopes=["integration"])
    text = (PAYLOADS / "alertmanager_firing.json").read_text()
    statuses = []

    def post(_n):
        client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
        for _ in range(5):
            response = client.post(
                "/api/v1/integrations/alertmanager/", data=text, content_type="application/json"
            )
            statuses.append(response.status_code)

    assert run_together(20, post) == []

    assert set(statuses) == {200} and len(statuses) == 100
    assert Alert.objects.count() == 2
    assert Incident.objects.count() == 1

"""Safe retries: a POST repeated with its ``Idempotency-Key`` answers the first response and
acts once; the same key with another body 422; keys are per caller; they expire and are
purged; a repeat while the first is in flight 409."""

import datetime as dt
import json

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from incidents import workflow
from incidents.models import IncidentUpdate
from itsm import idempotency, tokens
from itsm.models import IdempotencyRecord
from itsm.tasks import purge_idempotency_records
from services.models import ServiceStatus
from tests.factories import AGENT_GROUP, ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident():
    agent = UserFactory(username="agent", groups=[AGENT_GROUP])
    web = ServiceFactory(name="Website", slug="website")
    return workflow.create_incident(
        actor=agent, title="Checkout fails", services={web: ServiceStatus.MAJOR_OUTAGE}
    )


@pytest.fixture
def secret():
    return tokens.issue(name="ci", scopes=["write"])[1]


def post_update(client, incident, secret, key, body="Looking into it", **extra):
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": key, **extra}
    return client.post(
        f"/api/v1/incidents/{incident.pk}/updates/",
        {"body": body},
        content_type="application/json",
        headers=headers,
    )


def notes(incident):
    return IncidentUpdate.objects.filter(incident=incident).count()


def test_a_repeat_answers_the_first_response_and_acts_once(client, incident, secret):
    before = notes(incident)
    first = post_update(client, incident, secret, "7f1c-retry")
    again = post_update(client, incident, secret, "7f1c-retry")
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Content-Type"] == "application/json"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert notes(incident) == before + 1
    # A new key is a new request.
    assert post_update(client, incident, secret, "another").status_code == 200
    assert notes(incident) == before + 2


def test_the_same_key_with_another_body_is_refused_and_changes_nothing(client, incident, secret):
    post_update(client, incident, secret, "k1")
    before = notes(incident)
    refused = post_update(client, incident, secret, "k1", body="Something else")
    assert refused.status_code == 422
    assert "another request" in refused.json()["Idempotency-Key"][0]
    assert notes(incident) == before
    # ... and on another path (another incident's action) too.
    other = client.post(
        f"/api/v1/incidents/{incident.pk}/acknowledge/",
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "k1"},
    )
    assert other.status_code == 422


def test_another_callers_key_never_matches(client, incident, secret):
    other_secret = tokens.issue(name="other", scopes=["write"])[1]
    before = notes(incident)
    mine = post_update(client, incident, secret, "shared-key")
    theirs = post_update(client, incident, other_secret, "shared-key", body="Their own note")
    assert mine.status_code == theirs.status_code == 200
    assert "Idempotent-Replayed" not in theirs.headers
    assert notes(incident) == before + 2
    assert IdempotencyRecord.objects.filter(key="shared-key").count() == 2


def test_a_key_is_kept_for_the_ttl_then_acts_again_and_is_purged(client, incident, secret):
    post_update(client, incident, secret, "old")
    record = IdempotencyRecord.objects.get(key="old")
    kept = record.expires_at - timezone.now()
    assert dt.timedelta(hours=23, minutes=59) < kept <= dt.timedelta(hours=24)
    assert settings.CELERY_BEAT_SCHEDULE["idempotency-purge"]["task"] == (
        purge_idempotency_records.name
    )
    # A day later the key is forgotten: the same request acts again.
    IdempotencyRecord.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    before = notes(incident)
    again = post_update(client, incident, secret, "old")
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert notes(incident) == before + 1
    # The purge deletes what expired and keeps what did not.
    post_update(client, incident, secret, "fresh")
    IdempotencyRecord.objects.filter(key="old").update(expires_at=timezone.now())
    assert purge_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_a_refusal_is_not_kept_so_a_corrected_request_may_reuse_the_key(client, incident, secret):
    refused = post_update(client, incident, secret, "fix-me", body="")
    assert refused.status_code == 400
    assert "body" in refused.json()
    assert not IdempotencyRecord.objects.exists()
    assert post_update(client, incident, secret, "fix-me").status_code == 200


def test_a_bad_key_gets_a_clear_400(client, incident, secret):
    before = notes(incident)
    refused = post_update(client, incident, secret, "x" * 256)
    assert refused.status_code == 400
    assert "255" in refused.json()["Idempotency-Key"][0]
    assert notes(incident) == before


def test_no_replay_for_a_token_revoked_since(client, incident, secret):
    post_update(client, incident, secret, "k")
    tokens.revoke(tokens.ApiToken.objects.all())
    assert post_update(client, incident, secret, "k").status_code == 401


def test_a_repeat_while_the_first_is_in_flight_is_refused_with_409(
    client, incident, secret, on_postgres
):
    """An in-flight request holds the advisory lock of (credential, key) in its transaction:
    another connection holding it stands for a request still running on another worker."""
    token = tokens.ApiToken.objects.get()
    credential = f"token:{token.pk}"
    params = connection.get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    try:
        with other.transaction():
            other.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                idempotency.lock_sql_args(credential, "busy"),
            )
            before = notes(incident)
            refused = post_update(client, incident, secret, "busy")
            assert refused.status_code == 409
            assert refused.headers["Retry-After"] == "1"
            assert "still being answered" in refused.json()["detail"]
            assert notes(incident) == before
        # The first has finished: the repeat goes through.
        assert post_update(client, incident, secret, "busy").status_code == 200
    finally:
        other.close()


def test_alert_webhooks_take_a_key_too(client, db):
    _t, secret = tokens.issue(name="prom", scopes=["integration"])
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "itsm",
        "groupKey": '{}:{alertname="Down"}',
        "groupLabels": {"alertname": "Down"},
        "commonLabels": {"alertname": "Down"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Down", "instance": "web-1"},
                "annotations": {"summary": "web-1 is down"},
                "startsAt": "2026-12-03T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "a1b2c3",
            }
        ],
    }

    def send():
        return client.post(
            "/api/v1/integrations/alertmanager/",
            json.dumps(payload),
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "am-1"},
        )

    first, again = send(), send()
    assert first.status_code == again.status_code == 200, first.content
    assert first.json()["new"] == 1
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"


def test_the_schema_documents_the_key_on_every_post(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    schema = client.get("/api/schema/?format=json").json()
    posts = [(path, ops["post"]) for path, ops in schema["paths"].items() if "post" in ops]
    assert len(posts) >= 10
    for path, post in posts:
        names = [p["name"] for p in post.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in names, path
        assert {"409", "422"} <= set(post["responses"]), path

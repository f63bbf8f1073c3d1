"""Liveness and readiness probes, against the real database and broker of the run."""

import time

import pytest

from itsm.celery import app as celery_app

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused


def test_healthz_needs_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_with_database_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


@pytest.mark.django_db
def test_readyz_names_the_broker_when_it_is_down(client, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", CLOSED_PORT_BROKER)
    monkeypatch.setitem(celery_app.conf, "broker_write_url", None)

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")


@pytest.mark.django_db
def test_readyz_answers_quickly_when_the_broker_is_down(client, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "broker_url", CLOSED_PORT_BROKER)
    monkeypatch.setitem(celery_app.conf, "broker_write_url", None)
    started = time.monotonic()
    assert client.get("/readyz").status_code == 503
    assert time.monotonic() - started < 2

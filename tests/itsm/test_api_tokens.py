"""API tokens: issued once, stored as a digest, checked on every request, revoked and expired
for good; DRF's open defaults closed; a per-token throttle."""

import datetime as dt
import io

import pytest
from django.core.cache.backends.redis import RedisCache
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from itsm import tokens
from itsm.api_auth import TokenRateThrottle
from itsm.models import ApiToken
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def issue(*args):
    out = io.StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue().strip()


def me(client, secret):
    return client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_a_token_from_the_command_authenticates_and_only_its_digest_is_kept(client):
    org = OrganizationFactory(name="Acme", slug="acme")
    secret = issue("ci-bot", "--scope", "read", "--scope", "write", "--organization", "acme")

    response = me(client, secret)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "kind": "token",
        "name": "ci-bot",
        "scopes": ["read", "write"],
        "organization": "acme",
        "expires_at": None,
    }
    token = ApiToken.objects.get()
    assert token.organization == org
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM itsm_apitoken")
        stored = " ".join(map(str, cursor.fetchall()))
    assert secret.rsplit("_", 1)[1] not in stored


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer itsm_nothere_nothing",
        "Bearer not-even-a-token",
        "Bearer",
        "Bearer a b",
        "Basic cm9vdDpyb290",  # DRF's Basic authentication is not accepted
    ],
)
def test_anything_but_a_valid_token_is_refused(client, header):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    root.set_password("root")
    root.save()
    kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/api/v1/me/", **kwargs)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_revoked_and_expired_tokens_stop_working(client):
    revoked = issue("old", "--scope", "read")
    expiring = issue("short", "--scope", "read", "--expires-in-days", "1")
    assert me(client, revoked).status_code == 200
    assert me(client, expiring).status_code == 200

    assert tokens.revoke(ApiToken.objects.filter(name="old")) == 1
    ApiToken.objects.filter(name="short").update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )

    assert me(client, revoked).status_code == 401
    assert me(client, expiring).status_code == 401
    assert tokens.revoke(ApiToken.objects.all()) == 1  # the revoked one is not revoked again


def test_the_command_refuses_what_it_cannot_issue():
    with pytest.raises(CommandError, match="No organisation"):
        issue("x", "--scope", "read", "--organization", "nobody")
    with pytest.raises(CommandError, match="positive"):
        issue("x", "--scope", "read", "--expires-in-days", "0")
    with pytest.raises(CommandError):
        issue("x", "--scope", "superpowers")
    assert not ApiToken.objects.exists()


def test_last_used_is_written_at_most_once_a_minute():
    _token, secret = tokens.issue(name="poller", scopes=["read"])
    t0 = timezone.now()
    tokens.authenticate(secret, now=t0)
    tokens.authenticate(secret, now=t0 + dt.timedelta(seconds=30))
    assert ApiToken.objects.get().last_used_at == t0
    tokens.authenticate(secret, now=t0 + dt.timedelta(seconds=61))
    assert ApiToken.objects.get().last_used_at == t0 + dt.timedelta(seconds=61)


def test_scopes_give_the_token_its_permissions():
    _t, reader = tokens.issue(name="r", scopes=["read"])
    _t, alerts = tokens.issue(name="a", scopes=["integration"])
    read_actor = tokens.authenticate(reader)[1]
    alert_actor = tokens.authenticate(alerts)[1]
    assert read_actor.has_perm("incidents.view_incident")
    assert not read_actor.has_perm("incidents.work_incident")
    assert alert_actor.has_perm("incidents.add_incident")
    assert not alert_actor.has_perm("services.view_contact")


def test_the_admin_shows_the_secret_once_and_revokes(client):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    org = OrganizationFactory(name="Acme", slug="acme")
    client.force_login(root)

    page = client.post(
        "/admin/itsm/apitoken/add/",
        {"name": "grafana", "scopes": ["integration"], "organization": org.pk, "expires_at": ""},
    )

    assert page.status_code == 200, page.content
    html = page.content.decode()
    token = ApiToken.objects.get()
    secret = html.split('id="token-secret"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    assert secret.startswith(f"itsm_{token.key}_")
    assert token.created_by == root
    assert me(client, secret).status_code == 200
    assert secret not in client.get("/admin/itsm/apitoken/").content.decode()
    assert secret not in client.get(f"/admin/itsm/apitoken/{token.pk}/change/").content.decode()

    client.post(
        "/admin/itsm/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert ApiToken.objects.get().revoked_at is not None
    client.logout()
    assert me(client, secret).status_code == 401


def test_the_admin_refuses_a_token_without_scope(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = client.post("/admin/itsm/apitoken/add/", {"name": "nothing", "expires_at": ""})
    assert page.status_code == 200
    assert "This field is required." in page.content.decode()
    assert not ApiToken.objects.exists()


def test_a_token_over_its_rate_gets_429_with_retry_after(client, settings, monkeypatch):
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "3/min"})
    _t, secret = tokens.issue(name="greedy", scopes=["read"])
    _t, other = tokens.issue(name="polite", scopes=["read"])
    codes = [me(client, secret).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = me(client, secret)
    assert int(refused.headers["Retry-After"]) > 0
    assert me(client, other).status_code == 200  # per token, not for everyone


def test_the_throttle_lets_requests_through_when_its_cache_is_down(client, monkeypatch):
    """A Redis that refuses connections must not turn every API call into a 500."""
    down = RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 0.5}})
    monkeypatch.setattr(TokenRateThrottle, "cache", down)
    _t, secret = tokens.issue(name="bot", scopes=["read"])
    assert me(client, secret).status_code == 200

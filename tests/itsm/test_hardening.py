"""HTTP hardening: a Content-Security-Policy with no inline script on the admin, the public site
and the API docs; our templates give it nothing inline to block; HSTS preload only when asked."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import ContactFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
APPS = ["itsm", "services", "incidents", "problems", "notifications", "statuspage"]


def policy(response):
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    return {name: values for name, *values in (d.split() for d in header.split(";") if d.strip())}


def assert_no_inline_script(response):
    directives = policy(response)
    script_src = directives.get("script-src", directives.get("default-src"))
    assert script_src is not None
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/", "/admin/login/", "/healthz", "/api/v1/", "/api/docs/", "/api/schema/"],
)
def test_public_pages_carry_the_policy(path, client):
    response = client.get(path)
    assert response.status_code < 500
    assert_no_inline_script(response)


@pytest.mark.django_db
def test_unsubscribe_page_carries_the_policy(client):
    from notifications.unsubscribe import make_token

    response = client.get(f"/unsubscribe/{make_token(ContactFactory().pk)}/")
    assert response.status_code == 200
    assert_no_inline_script(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url_name",
    [
        "admin:index",
        "admin:incidents_incident_changelist",
        "admin:incidents_incident_add",
        "admin:services_service_changelist",
        "admin:services_service_add",
        "admin:notifications_notification_changelist",
    ],
)
def test_admin_pages_carry_the_policy(url_name, client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    assert_no_inline_script(response)


@pytest.mark.django_db
def test_the_api_docs_load_their_script_from_a_file(client):
    """Swagger UI's page used an inline script; the policy would block it."""
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert not inline_scripts(page.content.decode())
    script = re.search(r'<script src="(/api/docs/\?script[^"]*)"', page.content.decode())
    assert script, page.content.decode()
    assert client.get(script[1].replace("&amp;", "&")).status_code == 200


@pytest.mark.django_db
def test_the_api_docs_need_no_internet(client):
    """Swagger UI came from a CDN, so /api/docs/ was blank on a desk without internet: every
    script, style and icon of the page (and of its script) is our own static file."""
    from django.contrib.staticfiles import finders

    html = client.get("/api/docs/").content.decode()
    script = re.search(r'<script src="(/api/docs/\?script[^"]*)"', html)
    script_body = client.get(script[1].replace("&amp;", "&")).content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(
        r'"(/static/[^"]+|https?://[^"]+)"', script_body
    )
    static = [a for a in assets if a.startswith("/static/")]
    assert static, html
    assert not [a for a in assets if a.startswith(("http://", "https://", "//"))], assets
    for asset in static:
        assert finders.find(asset.removeprefix("/static/").split("?")[0]), asset
    assert "cdn.jsdelivr.net" not in client.get("/api/docs/").headers["Content-Security-Policy"]


SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.I | re.S)
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I | re.S)
JS_URL = re.compile(r"""(?:href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.I)


def inline_scripts(html):
    """Script elements with a body, or without a src (an inline script the policy blocks)."""
    return [
        m[0] for m in SCRIPT.finditer(html) if m[2].strip() or "src=" not in m[1].replace(" ", "")
    ]


def our_templates():
    return sorted(p for app in APPS for p in (ROOT / app).glob("templates/**/*.html"))


def test_there_are_templates_to_check():
    assert len(our_templates()) > 5


@pytest.mark.parametrize("template", our_templates(), ids=lambda p: str(p.relative_to(ROOT)))
def test_our_templates_have_no_inline_script_or_handlers(template):
    html = template.read_text()
    assert not inline_scripts(html)
    assert not HANDLER.findall(html)
    assert not JS_URL.findall(html)


def settings_in_subprocess(**env):
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "x" * 60, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_hsts_preload_is_off_unless_asked_for():
    """Preload lists are hard to leave: a site gets on one only by saying so."""
    assert settings_in_subprocess(SECURE_HTTPS="1") == "31536000 True False"
    assert settings_in_subprocess(SECURE_HTTPS="1", SECURE_HSTS_PRELOAD="1") == (
        "31536000 True True"
    )

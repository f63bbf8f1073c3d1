"""The admin in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``,
installed by ``.ci/run`` with apt; never ``playwright install``), axe-core through
axe-playwright-python. Screenshots go to ``<var>/screenshots/admin/`` for CI to keep.

Playwright's sync API runs an event loop in the test's thread and Django's ORM refuses to run
beside one, so every fixture that writes data runs before ``browser`` starts."""

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1366, "height": 900}
MOBILE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)
            if not os.access(CHROMIUM, os.X_OK):
                item.add_marker(pytest.mark.skip(reason="needs Debian's chromium"))


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots():
    folder = Path(django_settings.VAR_DIR) / "screenshots" / "admin"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def session_cookie(user, live_server):
    """A signed-in session for ``user``, as the cookie a browser context takes."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    return {"name": cookie.key, "value": cookie.value, "url": live_server.url}


def serious_violations(page):
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> "
        + "; ".join(node["html"][:160] for node in v["nodes"][:5])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def horizontal_overflow(page):
    """How many pixels the page is wider than the screen (0: no horizontal scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")

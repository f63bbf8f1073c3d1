"""The published status page in a real browser: Playwright driving Debian's Chromium
(``/usr/bin/chromium``, installed by ``.ci/run`` with apt; never ``playwright install``), on a
desktop and a 390 px phone, with axe-core (bundled by axe-playwright-python) for accessibility.
Screenshots go to ``<var>/screenshots/`` for CI to keep."""

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from incidents import workflow
from services import workflow as catalog
from services.models import CauseKind, ServiceGroup, ServiceStatus
from statuspage.publish import publish
from tests.factories import AGENT_GROUP, ServiceFactory, UserFactory

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs Debian's chromium"),
]

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "mobile": {"width": 390, "height": 844}}


@pytest.fixture
def page_data(transactional_db, settings, tmp_path):
    """Public services in two groups, an active incident with a public update (and a work
    note), and a service with a 30-minute outage yesterday; published in full."""
    settings.STATUS_PAGE_READ_CACHE_SECONDS = 0
    settings.STATUS_PAGE_DIR = str(tmp_path / "public")
    agent = UserFactory(username="agent", groups=[AGENT_GROUP])
    payments = ServiceGroup.objects.create(name="Payments", display_order=1)
    web_group = ServiceGroup.objects.create(name="Web", display_order=2)
    card = ServiceFactory(name="Card payments", slug="card", group=payments)
    ServiceFactory(name="Bank transfers", slug="transfers", group=payments)
    website = ServiceFactory(name="Website", slug="website", group=web_group)
    ServiceFactory(name="Internal ledger", slug="ledger", is_public=False)
    website.created_at = timezone.now() - dt.timedelta(days=10)
    website.save()

    past = workflow.create_incident(
        actor=agent, title="Website down", services={website: ServiceStatus.MAJOR_OUTAGE}
    )
    workflow.post_update(
        past, actor=agent, body="The website is down.", is_public=True, public_status="identified"
    )
    workflow.resolve(past, actor=agent, code="fixed", notes="ok")
    yesterday_noon = (timezone.now() - dt.timedelta(days=1)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    cause = (CauseKind.INCIDENT, past.pk)
    catalog.rebuild_status_history(now=yesterday_noon - dt.timedelta(days=5))
    catalog.set_impacts(cause, {website.pk: ServiceStatus.MAJOR_OUTAGE}, at=yesterday_noon)
    catalog.end_impacts(cause, at=yesterday_noon + dt.timedelta(minutes=30))

    active = workflow.create_incident(
        actor=agent,
        title="Card payments fail for some customers",
        services={card: ServiceStatus.PARTIAL_OUTAGE},
    )
    workflow.post_update(
        active,
        actor=agent,
        body="Some card payments are declined; we are investigating.",
        is_public=True,
        public_status="investigating",
    )
    workflow.post_update(active, actor=agent, body="work note: restarted pod-7")
    publish(full=True)
    return {"active": active}


@pytest.fixture
def browser():
    # Imported here: Playwright's sync API runs an event loop in this thread, and Django's ORM
    # refuses to run beside one, so every query (the fixture above) happens before this starts.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots():
    folder = Path(django_settings.VAR_DIR) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serious_violations(page):
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> "
        + "; ".join(node["html"][:160] for node in v["nodes"][:5])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_the_status_page_in_a_browser(page_data, live_server, browser, screenshots, device):
    from playwright.sync_api import expect

    viewport = VIEWPORTS[device]
    context = browser.new_context(
        viewport=viewport, is_mobile=device == "mobile", has_touch=device == "mobile"
    )
    page = context.new_page()
    response = page.goto(f"{live_server.url}/")
    assert response.status == 200

    expect(page.locator(".banner h1")).to_have_text("Partial outage")
    expect(page.locator(".service-name", has_text="Card payments")).to_be_visible()
    assert page.locator(".service-name", has_text="Internal ledger").count() == 0

    title = "Card payments fail for some customers"
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    expect(page.get_by_text("Some card payments are declined")).to_be_visible()
    assert "pod-7" not in page.content()

    # Yesterday's half hour of outage is a red day whose tooltip shows on keyboard focus.
    # Found by its accessible name (aria-labelledby: the day's text), as a screen reader names it.
    red = page.locator("#service-website").get_by_role(
        "listitem", name=re.compile("30 minutes of outage")
    )
    expect(red).to_have_count(1)
    assert red.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(207, 34, 46)"
    tip = red.locator(".tip")
    expect(tip).to_be_hidden()
    red.focus()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("30 minutes of outage")
    expect(tip).to_contain_text("Website down")
    box = tip.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (
        f"the tooltip is cut off at the screen's edge: {box}"
    )
    page.screenshot(path=str(screenshots / f"status-{device}-tooltip.png"))

    # Keyboard users reach the bars with Tab from the top of the page, the skip link first.
    page.reload()
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    skip_box = skip.bounding_box()
    assert skip_box["x"] >= 0 and skip_box["y"] >= 0, "the focused skip link is on screen"
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('day')"):
            break
    else:
        pytest.fail("Tab never reaches a day of an uptime bar")
    focused_tip = page.locator(".day:focus .tip")
    expect(focused_tip).to_be_visible()

    page.evaluate("document.activeElement.blur()")
    page.screenshot(path=str(screenshots / f"status-{device}.png"), full_page=True)
    assert serious_violations(page) == []

    page.goto(f"{live_server.url}/incidents/{page_data['active'].pk}/")
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    page.screenshot(path=str(screenshots / f"incident-{device}.png"), full_page=True)
    assert serious_violations(page) == []
    context.close()


def test_the_romanian_page_in_a_browser(page_data, live_server, browser, screenshots):
    page = browser.new_page(viewport=VIEWPORTS["desktop"])
    assert page.goto(f"{live_server.url}/ro/").status == 200
    assert page.get_attribute("html", "lang") == "ro"
    assert page.locator(".service-name", has_text="Website").count() == 1
    page.screenshot(path=str(screenshots / "status-ro.png"), full_page=True)
    assert serious_violations(page) == []

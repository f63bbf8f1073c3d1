"""An agent works an incident in the browser: the header holds state, SLA and the actions; the
update form sits right under it; after each step the message is in view. At 1366 px and on a
390 px phone, with no horizontal scroll and no serious or critical axe-core violation."""

import datetime as dt

import pytest

from incidents import workflow
from tests.browser.conftest import (
    DESKTOP,
    MOBILE,
    horizontal_overflow,
    serious_violations,
    session_cookie,
)
from tests.factories import (
    AGENT_GROUP,
    ServiceFactory,
    SubscriptionFactory,
    UserFactory,
    sla_policy,
)

VIEWPORTS = {"desktop": DESKTOP, "mobile": MOBILE}


@pytest.fixture
def incident_page(transactional_db, live_server):
    agent = UserFactory(username="agent", groups=[AGENT_GROUP])
    policy = sla_policy(
        name="24x7",
        targets={2: (dt.timedelta(minutes=30), dt.timedelta(hours=4))},
        is_default=True,
    )
    payments = ServiceFactory(name="Payments", slug="payments", default_sla_policy=policy)
    SubscriptionFactory(service=payments)
    incident = workflow.create_incident(
        actor=agent, title="Card payments fail", impact=1, urgency=2, services=[payments]
    )
    url = f"{live_server.url}/admin/incidents/incident/{incident.pk}/change/"
    return {"cookie": session_cookie(agent, live_server), "url": url, "incident": incident}


def in_view(page, locator):
    box = locator.bounding_box()
    return box is not None and 0 <= box["y"] < page.viewport_size["height"]


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_an_agent_works_an_incident(incident_page, browser, screenshots, device):
    from playwright.sync_api import expect

    viewport = VIEWPORTS[device]
    context = browser.new_context(
        viewport=viewport, is_mobile=device == "mobile", has_touch=device == "mobile"
    )
    context.add_cookies([incident_page["cookie"]])
    page = context.new_page()
    assert page.goto(incident_page["url"]).status == 200
    header = page.locator("#incident-header")
    expect(header).to_contain_text("New")
    expect(header).to_contain_text("Response:")
    acknowledge = header.locator('input[name="_acknowledge"]')
    assert in_view(page, acknowledge), "Acknowledge is on the first screen"
    page.screenshot(path=str(screenshots / f"incident-{device}-new.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    assert serious_violations(page) == []

    acknowledge.click()
    message = page.locator(".messagelist li").first
    expect(message).to_be_visible()
    assert in_view(page, message), "the message is where the eye is"
    expect(header).to_contain_text("Response: met")

    page.locator("#updates textarea").first.fill("Declines at the acquirer; investigating.")
    page.locator('#updates input[type="submit"].default').click()
    expect(page.locator(".messagelist li").first).to_contain_text("Work note added")
    assert in_view(page, page.locator(".messagelist li").first)
    expect(page.locator("#events-group")).to_contain_text(
        "agent added a work note: “Declines at the acquirer; investigating.”"
    )
    page.screenshot(path=str(screenshots / f"incident-{device}-worked.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    assert serious_violations(page) == []
    context.close()

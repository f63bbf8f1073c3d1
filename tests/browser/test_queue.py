"""The incident queue as an agent sees it, on a 1366 px desktop and a 390 px phone."""

import pytest

from incidents import workflow
from tests.browser.conftest import (
    DESKTOP,
    MOBILE,
    horizontal_overflow,
    serious_violations,
    session_cookie,
)
from tests.factories import AGENT_GROUP, ServiceFactory, UserFactory

LONG_TITLE = "x" * 200


@pytest.fixture
def queue(transactional_db, live_server):
    agent = UserFactory(username="agent", groups=[AGENT_GROUP])
    payments = ServiceFactory(name="Payments", slug="payments")
    for priority, (impact, urgency) in enumerate([(1, 1), (1, 2), (2, 2), (3, 2), (3, 3)]):
        workflow.create_incident(
            actor=agent,
            title=f"Priority case {priority + 1}",
            impact=impact,
            urgency=urgency,
            services=[payments],
            assignee=agent,
        )
    workflow.create_incident(actor=agent, title=LONG_TITLE, services=[payments])
    return session_cookie(agent, live_server)


def test_a_long_title_wraps_and_the_queue_fits_1366_px(queue, live_server, browser, screenshots):
    context = browser.new_context(viewport=DESKTOP)
    context.add_cookies([queue])
    page = context.new_page()
    assert page.goto(f"{live_server.url}/admin/incidents/incident/").status == 200
    page.screenshot(path=str(screenshots / "queue-desktop.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    # Every column an agent works by is on screen for the long-titled row.
    row = page.locator("#result_list tbody tr", has_text=LONG_TITLE[:50])
    for column in ("field-priority_column", "field-state"):
        cell = row.locator(f"td.{column}, th.{column}").first
        box = cell.bounding_box()
        assert box is not None and box["x"] + box["width"] <= DESKTOP["width"], column
    assert serious_violations(page) == []
    context.close()


def test_the_queue_on_a_phone_does_not_scroll_sideways(queue, live_server, browser, screenshots):
    context = browser.new_context(viewport=MOBILE, is_mobile=True, has_touch=True)
    context.add_cookies([queue])
    page = context.new_page()
    assert page.goto(f"{live_server.url}/admin/incidents/incident/").status == 200
    page.screenshot(path=str(screenshots / "queue-mobile.png"), full_page=True)
    assert horizontal_overflow(page) <= 0
    context.close()

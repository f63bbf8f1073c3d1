"""What every admin page carries: a banner while a major incident is open (that the agent may
see), and a language switcher in the header."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from incidents import workflow
from tests.factories import UserFactory

BANNER = 'id="major-incident-banner"'


@pytest.fixture
def desk(client, db):
    user = UserFactory(username="desk")
    user.groups.add(Group.objects.get(name="Service desk agent"))
    client.force_login(user)
    return client


@pytest.fixture
def major(agent, service):
    return workflow.create_incident(
        actor=agent,
        title="Card payments down",
        impact=1,
        urgency=1,
        services=[service],
        is_major=True,
    )


@pytest.mark.parametrize("page", ["/admin/", "/admin/services/service/", "/admin/auth/user/"])
def test_an_open_major_incident_shows_on_every_admin_page(admin_client, major, page):
    content = admin_client.get(page).content.decode()
    assert BANNER in content
    assert major.reference in content and "Card payments down" in content
    assert reverse("admin:incidents_incident_change", args=[major.pk]) in content


def test_no_banner_without_an_open_major_incident(admin_client, agent, service, major):
    workflow.create_incident(actor=agent, title="Minor thing", services=[service])
    workflow.resolve(major, actor=agent, code="fixed", notes="Acquirer restarted")
    assert BANNER not in admin_client.get("/admin/").content.decode()


def test_a_confidential_major_incident_is_not_on_an_agents_banner(desk, agent, service):
    boss = UserFactory(username="boss", is_superuser=True, is_staff=True)
    workflow.create_incident(
        actor=boss,
        title="Payroll leak",
        services=[service],
        is_major=True,
        is_confidential=True,
    )
    content = desk.get("/admin/").content.decode()
    assert BANNER not in content and "Payroll leak" not in content


def test_the_banner_costs_one_query(admin_client, major):
    admin_client.get("/admin/")  # warm the session
    with CaptureQueriesContext(connection) as ctx:
        admin_client.get("/admin/services/service/")
    banner_queries = [q for q in ctx.captured_queries if '"is_major"' in q["sql"]]
    assert len(banner_queries) == 1


def test_the_status_page_runs_no_banner_query(client, major):
    with CaptureQueriesContext(connection) as ctx:
        client.get("/")
    assert not any('"is_major"' in q["sql"] for q in ctx.captured_queries)


def test_the_header_switches_the_admin_to_romanian(desk):
    page = desk.get("/admin/").content.decode()
    assert 'action="/i18n/setlang/"' in page and 'name="language"' in page
    response = desk.post("/i18n/setlang/", {"language": "ro", "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert 'lang="ro"' in desk.get("/admin/").content.decode()

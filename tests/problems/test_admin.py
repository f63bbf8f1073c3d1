"""The problem admin (list, filters, search, buttons, timeline, query counts) and the incident
admin's side of problems: known errors on the change page, the one-click link, the bulk
"open a problem" action and the page resolving a problem's open incidents together."""

import pytest
from django.contrib import admin as django_admin
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from incidents import workflow as incident_workflow
from incidents.models import EventKind, Incident, IncidentState
from problems import workflow
from problems.models import Problem, ProblemState
from tests.factories import ServiceFactory, UserFactory
from tests.incidents.test_admin import change_form_data

CHANGELIST = "/admin/problems/problem/"


def change_url(problem):
    return reverse("admin:problems_problem_change", args=[problem.pk])


def act_url(problem, action):
    return reverse("admin:problems_problem_act", args=[problem.pk, action])


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def pm(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def desk(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def known_error(manager, service):
    problem = workflow.create_problem(
        actor=manager, title="Gateway leaks sockets", services=[service]
    )
    return workflow.record_known_error(problem, actor=manager, workaround="Restart the gateway pod")


# --- the list ----------------------------------------------------------------------------------


def listed(response):
    return {p.pk for p in response.context["cl"].result_list}


def test_filters_and_search(pm, manager, service, other_service):
    a = workflow.create_problem(actor=manager, title="Disk full", services=[service], priority=1)
    b = workflow.create_problem(actor=manager, title="DNS flaps", services=[other_service])
    workflow.start_investigation(b, actor=manager)
    assert listed(pm.get(CHANGELIST, {"state": "investigating"})) == {b.pk}
    assert listed(pm.get(CHANGELIST, {"priority__exact": "1"})) == {a.pk}
    assert listed(pm.get(CHANGELIST, {"service": str(service.pk)})) == {a.pk}
    assert listed(pm.get(CHANGELIST, {"owner__id__exact": str(manager.pk)})) == {b.pk}
    assert listed(pm.get(CHANGELIST, {"q": "dns"})) == {b.pk}
    with CaptureQueriesContext(connection) as ctx:
        response = pm.get(CHANGELIST, {"q": a.reference})
    assert listed(response) == {a.pk}
    assert not any("LIKE" in q["sql"].upper() for q in ctx.captured_queries)
    assert pm.get(CHANGELIST, {"service": "²"}).status_code == 200


def changelist_queries(client, monkeypatch, per_page):
    monkeypatch.setattr(django_admin.site._registry[Problem], "list_per_page", per_page)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == per_page
    return len(ctx.captured_queries)


def test_changelist_query_count_does_not_grow_with_the_page(pm, manager, monkeypatch, agent):
    services = [ServiceFactory() for _ in range(3)]
    group_owner = UserFactory(username="owner2")
    problems = [
        Problem(title=f"Problem {n}", priority=n % 5 + 1, owner=group_owner if n % 2 else None)
        for n in range(110)
    ]
    Problem.objects.bulk_create(problems)
    for problem in Problem.objects.all()[:30]:
        problem.services.set(services[:2])
    incident = incident_workflow.create_incident(actor=agent, title="x", services=services[:1])
    Incident.objects.filter(pk=incident.pk).update(problem=Problem.objects.first())
    at_10 = changelist_queries(pm, monkeypatch, 10)
    at_100 = changelist_queries(pm, monkeypatch, 100)
    assert at_10 == at_100
    assert at_100 <= 10


def test_change_page_query_count_does_not_grow_with_the_timeline(pm, manager, problem, agent):
    incident = incident_workflow.create_incident(actor=agent, title="first")
    incident_workflow.link_problem(incident, actor=agent, problem=problem)
    problem.refresh_from_db()

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert pm.get(change_url(problem)).status_code == 200
        return len(ctx.captured_queries)

    queries()  # the first request caches the content types
    few = queries()
    for n in range(20):
        workflow.edit(
            problem,
            actor=manager,
            expected_version=problem.version,
            changes={"title": f"Title {n}"},
        )
        problem.refresh_from_db()
        incident = incident_workflow.create_incident(actor=agent, title=f"i{n}")
        incident_workflow.link_problem(incident, actor=agent, problem=problem)
    assert queries() == few


# --- the change page ---------------------------------------------------------------------------


def button_names(response):
    return [b["name"] for b in response.context["workflow_buttons"]]


def test_only_legal_buttons_are_shown(pm, manager, problem):
    response = pm.get(change_url(problem))
    assert button_names(response) == ["start_investigation", "record_known_error", "resolve"]
    workflow.resolve(problem, actor=manager, permanent_fix="fixed")
    assert button_names(pm.get(change_url(problem))) == ["close", "reopen"]


def test_an_agent_reads_a_problem_without_buttons(client, agent, problem):
    client.force_login(agent)
    response = client.get(change_url(problem))
    assert response.status_code == 200
    assert response.context["workflow_buttons"] == []
    assert client.post(act_url(problem, "resolve"), {"version": 1}).status_code == 403


def test_buttons_run_the_workflow_and_the_timeline_shows_it(pm, problem):
    response = pm.post(act_url(problem, "start_investigation"), {"version": 1}, follow=True)
    assert f"{problem.reference} is being investigated." in messages_of(response)
    response = pm.post(
        act_url(problem, "record_known_error"),
        {"version": 2, "workaround": "Restart it", "root_cause": "leak"},
        follow=True,
    )
    problem.refresh_from_db()
    assert (problem.state, problem.workaround, problem.root_cause) == (
        ProblemState.KNOWN_ERROR,
        "Restart it",
        "leak",
    )
    page = pm.get(change_url(problem)).content.decode()
    assert "Known error recorded" in page and "Investigation started" in page


def test_a_refused_button_keeps_what_was_typed(pm, problem):
    # Stale: someone changed the problem after the page was loaded.
    response = pm.post(
        act_url(problem, "record_known_error"), {"version": 7, "workaround": "Typed text"}
    )
    assert response.status_code == 200
    assert "Typed text" in response.content.decode()
    assert "Reload" in " ".join(messages_of(response))
    # A missing workaround: the form says so beside the field.
    response = pm.post(act_url(problem, "record_known_error"), {"version": 1, "workaround": ""})
    assert response.status_code == 200
    assert Problem.objects.get(pk=problem.pk).state == ProblemState.NEW


def test_add_and_edit_through_the_workflow(pm, service, manager):
    response = pm.post(
        "/admin/problems/problem/add/",
        {"title": "Slow DNS", "description": "", "priority": "2", "services": [service.pk]},
        follow=True,
    )
    assert response.status_code == 200
    problem = Problem.objects.get(title="Slow DNS")
    assert problem.events.get().kind == "created"
    assert list(problem.services.all()) == [service]
    form = change_form_data(pm.get(change_url(problem)))
    response = pm.post(change_url(problem), {**form, "title": "Slow DNS resolvers"}, follow=True)
    assert response.status_code == 200
    problem.refresh_from_db()
    assert (problem.title, problem.version) == ("Slow DNS resolvers", 2)
    # A stale form is refused and comes back with the error.
    response = pm.post(change_url(problem), {**form, "title": "Other"})
    assert response.status_code == 200
    assert "Reload" in response.content.decode()
    assert Problem.objects.get(pk=problem.pk).title == "Slow DNS resolvers"


# --- resolving a problem offers its open incidents ---------------------------------------------


def test_resolving_offers_the_open_incidents_together(pm, manager, problem, make_incident):
    first, second = make_incident(), make_incident()
    for incident in (first, second):
        incident_workflow.link_problem(incident, actor=manager, problem=problem)
    response = pm.post(act_url(problem, "resolve"), {"version": 1, "permanent_fix": "Patched"})
    resolve_url = reverse("admin:incidents_incident_resolve_for_problem", args=[problem.pk])
    assert response.status_code == 302 and response["Location"] == resolve_url
    page = pm.get(resolve_url)
    assert page.status_code == 200
    text = page.content.decode()
    assert first.reference in text and second.reference in text
    assert page.context["form"]["notes"].value() == "Patched"
    response = pm.post(
        resolve_url, {"incidents": [first.pk], "code": "fixed", "notes": "Patched"}, follow=True
    )
    assert f"Resolved 1 incident: {first.reference}." in messages_of(response)
    states = dict(Incident.objects.values_list("pk", "state"))
    assert states == {first.pk: IncidentState.RESOLVED, second.pk: IncidentState.NEW}
    # Nothing left open but the one not chosen; with none, the page sends back to the problem.
    pm.post(resolve_url, {"incidents": [second.pk], "code": "fixed", "notes": "x"})
    assert pm.get(resolve_url)["Location"] == change_url(problem)


def test_resolving_without_incidents_goes_back_to_the_problem(pm, problem):
    response = pm.post(
        act_url(problem, "resolve"), {"version": 1, "permanent_fix": "Patched"}, follow=True
    )
    assert response.redirect_chain[-1][0] == change_url(problem)
    assert f"{problem.reference} resolved." in messages_of(response)


# --- the incident page -----------------------------------------------------------------------


def incident_url(incident):
    return reverse("admin:incidents_incident_change", args=[incident.pk])


def test_the_incident_page_suggests_known_errors_and_links_one_in_one_click(
    desk, known_error, make_incident
):
    incident = make_incident()
    response = desk.get(incident_url(incident))
    assert response.context["known_errors"] == [known_error]
    text = response.content.decode()
    assert "Restart the gateway pod" in text and "Link and quote the workaround" in text
    response = desk.post(
        reverse("admin:incidents_incident_link_known_error", args=[incident.pk]),
        {"problem": known_error.pk, "version": incident.version},
        follow=True,
    )
    assert any("is linked to the known error" in m for m in messages_of(response))
    incident.refresh_from_db()
    assert incident.problem == known_error
    event = incident.events.get(kind=EventKind.PROBLEM_LINKED)
    assert "Restart the gateway pod" in event.note
    assert "Restart the gateway pod" in response.content.decode()  # on the timeline
    response = desk.post(
        reverse("admin:incidents_incident_unlink_problem", args=[incident.pk]),
        {"version": incident.version},
        follow=True,
    )
    incident.refresh_from_db()
    assert incident.problem is None


def test_a_stale_or_bad_link_click_changes_nothing(desk, known_error, problem, make_incident):
    incident = make_incident()
    url = reverse("admin:incidents_incident_link_known_error", args=[incident.pk])
    # Not a known error, or no id at all: refused with a message.
    for value in (problem.pk, "", "x²"):
        response = desk.post(url, {"problem": value, "version": incident.version}, follow=True)
        assert "Choose a known error to link." in messages_of(response)
    incident.refresh_from_db()
    assert incident.problem is None
    assert desk.get(url).status_code == 405


def test_known_errors_are_searchable_from_the_incident_page(
    desk, known_error, make_incident, other_service
):
    incident = make_incident(services=[other_service])
    response = desk.get(incident_url(incident))
    assert response.context["known_errors"] == []
    response = desk.get(incident_url(incident), {"known_error": "gateway"})
    assert response.context["known_error_results"] == [known_error]
    assert "Link and quote the workaround" in response.content.decode()


def test_incident_page_queries_do_not_grow_with_known_errors(desk, manager, service, make_incident):
    incident = make_incident()

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert desk.get(incident_url(incident)).status_code == 200
        return len(ctx.captured_queries)

    def add_known_error(n):
        p = workflow.create_problem(actor=manager, title=f"KE {n}", services=[service])
        workflow.record_known_error(p, actor=manager, workaround=f"W {n}")

    add_known_error(0)
    queries()  # warm the session and the caches (content types, calendars)
    one = queries()
    for n in range(1, 5):
        add_known_error(n)
    assert queries() == one


# --- bulk: open a problem for the selected incidents ------------------------------------------


def test_bulk_open_a_problem_for_selected_incidents(pm, make_incident, service):
    first, second = make_incident(title="Card payments fail"), make_incident(title="Refunds fail")
    data = {"action": "create_problem", "_selected_action": [first.pk, second.pk]}
    form = pm.post("/admin/incidents/incident/", data)
    assert form.status_code == 200
    assert form.context["form"]["title"].value() == "Card payments fail"
    response = pm.post(
        "/admin/incidents/incident/",
        {**data, "apply": "1", "title": "Acquirer TLS", "description": ""},
        follow=True,
    )
    problem = Problem.objects.get(title="Acquirer TLS")
    assert response.redirect_chain[-1][0] == change_url(problem)
    assert f"{problem.reference} opened with 2 incidents linked." in messages_of(response)
    assert set(problem.incidents.all()) == {first, second}
    assert list(problem.services.all()) == [service]


def action_choices(client):
    response = client.get("/admin/incidents/incident/")
    return [c[0] for c in response.context["action_form"].fields["action"].choices]


def test_the_bulk_action_is_offered_to_whoever_may_create_problems(client, agent, manager):
    client.force_login(agent)
    assert "create_problem" not in action_choices(client)
    client.force_login(manager)
    assert "create_problem" in action_choices(client)

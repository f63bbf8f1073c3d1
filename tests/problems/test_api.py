"""/api/v1/problems/: read (visibility, filters, constant queries) and transitions as actions
with the incident API's error shapes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents import workflow as incident_workflow
from itsm import tokens
from problems import workflow
from problems.models import Problem, ProblemState
from tests.factories import OrganizationFactory, ServiceFactory

URL = "/api/v1/problems/"


def bearer(client, scopes=("read",), organization=None):
    _token, secret = tokens.issue(name="t", scopes=list(scopes), organization=organization)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def action(problem, name):
    return f"{URL}{problem.pk}/{name}/"


def test_read_a_problem(client, problem, service, agent, make_incident):
    incident_workflow.link_problem(make_incident(), actor=agent, problem=problem)
    bearer(client)
    response = client.get(f"{URL}{problem.pk}/")
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    body = response.json()
    assert body["reference"] == problem.reference
    assert body["state"] == "new"
    assert body["services"] == [{"id": service.pk, "slug": "payments", "name": "Payments"}]
    assert body["incident_count"] == 1


def test_a_token_bound_to_an_organisation_sees_no_problem(client, problem):
    bearer(client, organization=OrganizationFactory())
    assert client.get(URL).json()["results"] == []
    assert client.get(f"{URL}{problem.pk}/").status_code == 404


def test_filters(client, manager, problem, other_service):
    other = workflow.create_problem(actor=manager, title="Mail", services=[other_service])
    workflow.record_known_error(other, actor=manager, workaround="Use webmail")
    bearer(client)

    def titles(**params):
        response = client.get(URL, params)
        assert response.status_code == 200, response.content
        return sorted(p["title"] for p in response.json()["results"])

    assert titles(state="known_error") == ["Mail"]
    assert titles(service="payments") == [problem.title]
    assert titles(search="mail") == ["Mail"]
    assert client.get(URL, {"state": "bogus"}).status_code == 400


def test_list_queries_do_not_grow(client, manager):
    services = [ServiceFactory() for _ in range(2)]
    bearer(client)

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(URL, {"page_size": 200}).status_code == 200
        return len(ctx.captured_queries)

    for n in range(10):
        workflow.create_problem(actor=manager, title=f"P{n}", services=services, owner=manager)
    queries()  # the token's first use is recorded once
    at_10 = queries()
    for n in range(90):
        workflow.create_problem(actor=manager, title=f"Q{n}", services=services)
    assert queries() == at_10


def test_transitions_as_actions(client, problem):
    bearer(client, scopes=("read", "write"))
    response = client.post(action(problem, "start-investigation"), HTTP_IF_MATCH='"1"')
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "investigating" and response["ETag"] == '"2"'
    response = client.post(
        action(problem, "known-error"), {"workaround": "Restart"}, content_type="application/json"
    )
    assert response.json()["state"] == "known_error"
    response = client.post(
        action(problem, "resolve"), {"permanent_fix": "Patched"}, content_type="application/json"
    )
    assert response.json()["state"] == "resolved"
    assert client.post(action(problem, "close")).json()["state"] == "closed"
    response = client.post(
        action(problem, "reopen"), {"reason": "Back"}, content_type="application/json"
    )
    assert response.json()["state"] == "investigating"
    assert problem.events.count() == 6


def test_refusals(client, problem):
    bearer(client, scopes=("read",))
    assert client.post(action(problem, "close")).status_code == 403
    bearer(client, scopes=("read", "write"))
    # Illegal from new: 409; stale: 412 with the current version; missing text: 400 by field.
    assert client.post(action(problem, "close")).status_code == 409
    stale = client.post(action(problem, "start-investigation"), HTTP_IF_MATCH='"9"')
    assert stale.status_code == 412 and stale.json()["current_version"] == 1
    bad = client.post(
        action(problem, "known-error"), {"workaround": " "}, content_type="application/json"
    )
    assert bad.status_code == 400 and "workaround" in bad.json()
    assert (
        client.post(action(problem, "start-investigation"), HTTP_IF_MATCH="x²").status_code == 400
    )
    assert client.post(f"{URL}999999/close/").status_code == 404
    assert Problem.objects.get(pk=problem.pk).state == ProblemState.NEW


@pytest.mark.parametrize("scopes", [("read", "write")])
def test_a_bound_token_cannot_act(client, problem, scopes):
    bearer(client, scopes=scopes, organization=OrganizationFactory())
    assert client.post(action(problem, "start-investigation")).status_code == 404

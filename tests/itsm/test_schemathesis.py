"""schemathesis against ``/api/schema/``: every operation of the REST API, called in-process with
generated valid and invalid input by a real token on a seeded database, answers no server
error and nothing the schema does not describe (status, content type, headers, body).

Bounded (``MAX_EXAMPLES`` per operation) so the whole run stays well under two minutes on two
cores; ``SCHEMATHESIS_MAX_EXAMPLES`` raises it for a deeper run. The stateful test follows the
links from the incident list to its detail and actions.
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from incidents import workflow
from itsm import tokens
from itsm.api_auth import TokenRateThrottle
from services.models import ServiceStatus
from tests.factories import AGENT_GROUP, OrganizationFactory, ServiceFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "12"))
FULL = os.environ.get("SCHEMATHESIS_FULL", "") not in ("", "0")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def seeded(monkeypatch):
    """A small desk: two organisations, services, incidents in several states, and a token
    that may do everything the API offers (admin and integration scopes)."""
    # Thousands of generated requests per token: the throttle is tested elsewhere.
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "100000/min"})
    agent = UserFactory(username="agent", is_staff=True, groups=[AGENT_GROUP])
    acme = OrganizationFactory(slug="acme")
    web = ServiceFactory(name="Website", slug="website")
    mail = ServiceFactory(name="Mail", slug="mail")
    opened = workflow.create_incident(
        actor=agent, title="Checkout fails", services={web: ServiceStatus.MAJOR_OUTAGE}
    )
    taken = workflow.create_incident(
        actor=agent, title="Mail slow", services=[mail], organization=acme
    )
    workflow.acknowledge(taken, actor=agent)
    _token, secret = tokens.issue(name="schemathesis", scopes=["admin", "integration"])
    return {"secret": secret, "incidents": [opened.pk, taken.pk]}


@pytest.fixture
def wsgi_app():
    """Django's WSGI application on the test's database connection: as Django's test client
    does, the end of a request must not close the connection the test's transaction is on."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(seeded, wsgi_app):
    auth = {"Authorization": f"Bearer {seeded['secret']}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers=auth)
    if not FULL:
        # The coverage phase's invalid inputs number in thousands (boundaries of every field
        # of every operation): the default run keeps its valid ones and unexpected methods;
        # invalid input is still fuzzed (MAX_EXAMPLES per operation).
        schema.config.phases.coverage.generation.modes = [GenerationMode.POSITIVE]
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_error_and_no_answer_outside_the_schema(case, seeded):
    # Each example on the seeded database as it was: one that changes it (or breaks the
    # transaction with a database error) does not decide what the next one meets.
    savepoint = transaction.savepoint()
    try:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {seeded['secret']}"}, checks=CHECKS
        )
    finally:
        transaction.savepoint_rollback(savepoint)


def test_stateful_sequences_follow_the_links(api_schema, seeded):
    """Sequences along the links schemathesis infers from the schema (an incident's id from one
    answer into the detail and each workflow action), each answer checked as above. In the
    bounded run most sequences still meet ids schemathesis made up (404s): the links are not
    yet written into the schema, only inferred."""
    auth = {"Authorization": f"Bearer {seeded['secret']}"}
    answered = []

    class Sequences(api_schema.as_state_machine()):
        def setup(self):
            self.savepoint = transaction.savepoint()

        def teardown(self):
            transaction.savepoint_rollback(self.savepoint)

        def get_call_kwargs(self, case):
            return {"headers": auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            answered.append(((case.path_parameters or {}).get("id"), response.status_code))
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    Sequences.run(
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
    )
    assert answered  # the sequences ran (what they met is checked call by call above)

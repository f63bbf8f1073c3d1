import datetime as dt

import pytest

from incidents import workflow as incident_workflow
from problems import workflow
from tests.factories import (
    AGENT_GROUP,
    PROBLEM_MANAGER_GROUP,
    ServiceFactory,
    UserFactory,
    sla_policy,
)

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def agent(db):
    """A service desk agent: works incidents, reads problems, links known errors."""
    return UserFactory(username="agent", groups=[AGENT_GROUP])


@pytest.fixture
def manager(db):
    """A problem manager: works problems and the incidents linked to them."""
    return UserFactory(username="pm", groups=[PROBLEM_MANAGER_GROUP])


@pytest.fixture
def policy(db):
    return sla_policy(name="24x7", is_default=True)


@pytest.fixture
def service(db, policy):
    return ServiceFactory(name="Payments", slug="payments", default_sla_policy=policy)


@pytest.fixture
def other_service(db, policy):
    return ServiceFactory(name="Mail", slug="mail", default_sla_policy=policy)


@pytest.fixture
def problem(manager, service):
    return workflow.create_problem(
        actor=manager, title="Acquirer drops TLS sessions", services=[service], now=T0
    )


@pytest.fixture
def make_incident(agent, service):
    def make(title="Card payments fail", services=None, **kwargs):
        return incident_workflow.create_incident(
            actor=agent, title=title, services=services or [service], **kwargs
        )

    return make

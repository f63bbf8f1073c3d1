"""What the status page's tests share: a desk agent, a security member, a published incident."""

import pytest

from incidents import workflow
from tests.factories import AGENT_GROUP, SECURITY_GROUP, UserFactory


@pytest.fixture
def agent():
    return UserFactory(username="agent", groups=[AGENT_GROUP])


@pytest.fixture
def security():
    return UserFactory(username="sherlock", groups=[SECURITY_GROUP])


def published(agent, title, services, *, body="Investigating.", status="investigating", at=None):
    """An incident on ``services`` made public by a first public update (at ``at``: now)."""
    incident = workflow.create_incident(actor=agent, title=title, services=services, now=at)
    workflow.post_update(
        incident, actor=agent, body=body, is_public=True, public_status=status, now=at
    )
    return incident

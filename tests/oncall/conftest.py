import datetime as dt

import pytest

from tests.factories import AGENT_GROUP, GroupFactory, ServiceFactory, UserFactory, sla_policy


@pytest.fixture
def agent(db):
    """A service desk agent: may create and work incidents (the workflow checks it)."""
    return UserFactory(username="agent", groups=[AGENT_GROUP])


@pytest.fixture
def teammate(db):
    return UserFactory(username="teammate", groups=[AGENT_GROUP])


@pytest.fixture
def team(db):
    return GroupFactory(name="Service desk")


@pytest.fixture
def policy(db):
    """A 24×7 policy: P1 15 min / 1 h, P3 1 h / 8 h, as the global default."""
    return sla_policy(
        name="24x7",
        targets={
            1: (dt.timedelta(minutes=15), dt.timedelta(hours=1)),
            2: (dt.timedelta(minutes=30), dt.timedelta(hours=4)),
            3: (dt.timedelta(hours=1), dt.timedelta(hours=8)),
        },
        is_default=True,
    )


@pytest.fixture
def service(db, policy):
    return ServiceFactory(name="Payments", slug="payments", default_sla_policy=policy)

"""The admin opens on the agent's work: what is theirs, due soon, breached, waiting
unassigned in their groups, and any open major incident."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents import workflow
from incidents.models import Incident
from incidents.selectors import my_work
from tests.factories import AGENT_GROUP, UserFactory


@pytest.fixture
def desk(db):
    night_shift = Group.objects.create(name="Night shift")
    me = UserFactory(username="me", groups=[AGENT_GROUP])
    me.groups.add(night_shift)
    return me, night_shift


@pytest.fixture
def work(desk, agent, teammate, service):
    me, night_shift = desk

    def open_one(title, **kwargs):
        return workflow.create_incident(actor=agent, title=title, services=[service], **kwargs)

    made = {
        "mine": open_one("Mine", assignee=me),
        "theirs": open_one("Theirs", assignee=teammate),
        "waiting": open_one("Waiting in my group"),
        "other_group": open_one("Waiting elsewhere"),
        "major": open_one("Everything is down", assignee=teammate, is_major=True),
        "breached": open_one("Late", assignee=teammate),
        "done": open_one("Done", assignee=me),
    }
    workflow.assign(made["waiting"], actor=agent, group=night_shift)
    workflow.assign(made["breached"], actor=agent, group=night_shift)
    workflow.assign(made["other_group"], actor=agent, group=Group.objects.create(name="Network"))
    Incident.objects.filter(pk=made["breached"].pk).update(
        resolve_breached_at=timezone.now() - dt.timedelta(minutes=5)
    )
    workflow.resolve(made["done"], actor=me, code="fixed", notes="ok")
    return me, made


def titles(items):
    return sorted(incident.title for incident in items)


def test_my_work_sorts_the_open_incidents_into_lists(work):
    me, _made = work
    # Five minutes on, every P3 here (respond within 1 h) is due within the hour.
    found = my_work(me, timezone.now() + dt.timedelta(minutes=5))
    assert titles(found["mine"]) == ["Mine"]
    assert titles(found["unassigned"]) == ["Waiting in my group"]
    assert titles(found["breached"]) == ["Late"]
    # Due soon (P3: respond within the hour) among mine and my groups', not the whole desk's.
    assert titles(found["due_soon"]) == ["Late", "Mine", "Waiting in my group"]
    assert titles(found["major"]) == ["Everything is down"]
    everything = {
        i.title
        for key in ("mine", "due_soon", "breached", "unassigned", "major")
        for i in found[key]
    }
    assert "Theirs" not in everything and "Done" not in everything
    assert "Waiting elsewhere" not in everything


def test_the_admin_home_shows_my_work(client, work):
    me, made = work
    client.force_login(me)
    with CaptureQueriesContext(connection) as ctx:
        content = client.get("/admin/").content.decode()
    panel = content[
        content.index('id="my-work"') : content.index("</section>", content.index('id="my-work"'))
    ]
    assert made["mine"].reference in panel and made["waiting"].reference in panel
    assert made["breached"].reference in panel and made["major"].reference in panel
    assert made["theirs"].reference not in panel and made["done"].reference not in panel
    assert "?assignee=me&amp;state=open" in panel
    incident_queries = [q for q in ctx.captured_queries if '"incidents_incident"' in q["sql"]]
    assert len(incident_queries) <= 2  # the panel and the major-incident banner


def test_a_reader_without_incident_access_sees_no_panel(client, db):
    outsider = UserFactory(username="outsider", is_staff=True)
    client.force_login(outsider)
    assert 'id="my-work"' not in client.get("/admin/").content.decode()

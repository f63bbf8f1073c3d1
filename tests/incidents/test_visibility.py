"""Who may see what: ``visible_to`` for people, tokens, integrations and the system, and
confidential incidents, which do not exist for anyone outside the Security group, incident
managers, their assignee and their commander: not in any admin URL, count, staff email, service
status or customer message."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from incidents import workflow
from incidents.models import Incident, IncidentEvent, IncidentUpdate, SlaSignal
from itsm.actors import Actor
from notifications.models import Notification, NotificationEvent
from notifications.rendering import render_email
from problems.models import Problem
from services.models import Service, ServiceStatus, Team
from tests.factories import (
    AGENT_GROUP,
    MANAGER_GROUP,
    SECURITY_GROUP,
    GroupFactory,
    OrganizationFactory,
    SubscriptionFactory,
    UserFactory,
)

SECRET_TITLE = "Payroll database copied out by an attacker"
CONTROL_TITLE = "Payroll export is slow"


@pytest.fixture
def outsider(db):
    """A service desk agent outside the Security group: works every ordinary incident (and may
    read the SLA signal list, which agents are not given by default)."""
    user = UserFactory(username="outsider", groups=[AGENT_GROUP])
    user.user_permissions.add(Permission.objects.get(codename="view_slasignal"))
    return user


@pytest.fixture
def security(db):
    user = UserFactory(username="sherlock", groups=[SECURITY_GROUP])
    user.user_permissions.add(Permission.objects.get(codename="view_slasignal"))
    return user


@pytest.fixture
def holmes(db):
    return UserFactory(username="holmes", groups=[SECURITY_GROUP])


@pytest.fixture
def manager(db):
    return UserFactory(username="manager", groups=[MANAGER_GROUP])


@pytest.fixture
def pair(service, security, holmes, agent, teammate):
    """A confidential incident and a control incident, alike in everything a page shows: both
    assigned (so both mailed their assignee), both on a problem, both with an SLA signal."""
    problem = Problem.objects.create(title="Payroll troubles")
    secret = workflow.create_incident(
        actor=security,
        title=SECRET_TITLE,
        impact=1,
        urgency=1,
        services={service: ServiceStatus.MAJOR_OUTAGE},
        assignee=holmes,
        is_confidential=True,
    )
    control = workflow.create_incident(
        actor=agent,
        title=CONTROL_TITLE,
        impact=1,
        urgency=1,
        services={service: ServiceStatus.MAJOR_OUTAGE},
        assignee=teammate,
    )
    for incident in (secret, control):
        Incident.objects.filter(pk=incident.pk).update(problem=problem)
        SlaSignal.objects.create(
            incident=incident, target="response", threshold=750, due_at=timezone.now()
        )
    return secret, control


# --- the table: every admin URL that could tell an incident exists ------------------------------

MISSING_PK = 999_999


def _listed_title(response, incident):
    return incident.title in response.content.decode()


def _listed_or_opened(response, incident):
    # An exact reference opens the incident (a redirect to its page) for those who may see it.
    if response.status_code == 302:
        return response["Location"].endswith(f"/incident/{incident.pk}/change/")
    return _listed_title(response, incident)


def _object_page(response, incident):
    return response.status_code == 200


def _autocomplete(response, incident):
    return str(incident.pk) in {row["id"] for row in response.json()["results"]}


def _event_keys(response, incident):
    return f"incident:{incident.pk}:" in response.content.decode()


def _notification_rows(response, incident):
    return incident.assignee.email in response.content.decode()


URLS = {
    "queue": ("/admin/incidents/incident/", _listed_title),
    "queue, open filter": ("/admin/incidents/incident/?state=open", _listed_title),
    "queue, service filter": ("/admin/incidents/incident/?service={service}", _listed_title),
    "queue, priority filter": ("/admin/incidents/incident/?priority__exact=1", _listed_title),
    "queue, SLA filter": ("/admin/incidents/incident/?sla=due_soon", _listed_title),
    "queue, search by word": ("/admin/incidents/incident/?q=Payroll", _listed_title),
    "queue, search by reference": (
        "/admin/incidents/incident/?q={reference}",
        _listed_or_opened,
    ),
    "raw-id popup": ("/admin/incidents/incident/?_to_field=id&_popup=1", _listed_title),
    "autocomplete": (
        "/admin/autocomplete/?app_label=incidents&model_name=incidentevent"
        "&field_name=incident&term=Payroll",
        _autocomplete,
    ),
    "timeline": ("/admin/incidents/incidentevent/", _listed_title),
    "timeline, by reference": ("/admin/incidents/incidentevent/?q={reference}", _listed_title),
    "SLA signals": ("/admin/incidents/slasignal/", _listed_title),
    "notification events": ("/admin/notifications/notificationevent/", _event_keys),
    "notifications": ("/admin/notifications/notification/", _notification_rows),
    "change page": ("/admin/incidents/incident/{pk}/change/", _object_page),
    "history view": ("/admin/incidents/incident/{pk}/history/", _object_page),
    "email preview": ("/admin/incidents/incident/{pk}/preview/", _object_page),
    "view on site": ("/admin/r/{content_type}/{pk}/", None),
}


def _get(client, template, incident, pk=None):
    url = template.format(
        pk=pk or incident.pk,
        reference=incident.reference if pk is None else f"INC-{pk}",
        service=incident.services.get().pk,
        content_type=ContentType.objects.get_for_model(Incident).pk,
    )
    return client.get(url)


@pytest.mark.parametrize("case", list(URLS))
def test_a_confidential_incident_does_not_exist_for_an_outsider(
    client, settings, case, pair, outsider, security
):
    secret, control = pair
    template, shows = URLS[case]
    client.force_login(outsider)
    if shows is None:  # /admin/r/: the answer for the secret is the answer for a missing row
        settings.DEBUG = True  # Django's 404 page then says why, which is where a leak would be
        page = _get(client, template, secret)
        missing = _get(client, template, secret, pk=MISSING_PK)
        assert page.status_code == missing.status_code == 404
        assert secret.title not in page.content.decode()
        assert "doesn’t exist" in page.content.decode()
        return
    assert shows(_get(client, template, control), control), "the control must be visible"
    assert not shows(_get(client, template, secret), secret)
    if shows is _object_page:
        page = _get(client, template, secret)
        missing = _get(client, template, secret, pk=MISSING_PK)
        assert page.status_code == missing.status_code
        assert page.get("Location") == missing.get("Location")
    # The table can fail: for someone in the Security group the same URL shows it.
    client.force_login(security)
    if case != "notifications":  # the assignee's own address is the only thing that row shows
        assert shows(_get(client, template, secret), secret)


def test_counts_leave_it_out(client, pair, outsider, security):
    secret, control = pair
    client.force_login(outsider)
    response = client.get("/admin/incidents/incident/?q=Payroll")
    assert response.context["cl"].result_count == 1
    assert response.context["cl"].paginator.count == 1
    problems = client.get("/admin/problems/problem/")
    assert [p.linked_incidents for p in problems.context["cl"].result_list] == [1]
    client.force_login(security)
    assert client.get("/admin/incidents/incident/?q=Payroll").context["cl"].result_count == 2
    problems = client.get("/admin/problems/problem/")
    assert [p.linked_incidents for p in problems.context["cl"].result_list] == [2]


def test_workflow_buttons_answer_404_not_403(client, pair, outsider):
    secret, _control = pair
    client.force_login(outsider)
    response = client.post(
        f"/admin/incidents/incident/{secret.pk}/act/acknowledge/", {"version": secret.version}
    )
    assert response.status_code == 404
    assert Incident.objects.get(pk=secret.pk).state == "new"


# --- who sees it ----------------------------------------------------------------------------------


def test_visible_to_people(pair, outsider, security, holmes, manager, agent):
    secret, control = pair
    commander = UserFactory(username="commander", groups=[AGENT_GROUP])
    Incident.objects.filter(pk=secret.pk).update(commander=commander)
    boss = UserFactory(username="boss", is_superuser=True)
    visible = {
        user.username: set(Incident.objects.visible_to(user).values_list("pk", flat=True))
        for user in (outsider, security, holmes, manager, commander, boss, agent)
    }
    both = {secret.pk, control.pk}
    assert visible == {
        "outsider": {control.pk},
        "agent": {control.pk},  # created nothing confidential, is neither assignee nor commander
        "sherlock": both,  # the Security group
        "holmes": both,  # assignee (and Security)
        "manager": both,
        "commander": both,
        "boss": both,
    }


def test_assignee_outside_security_sees_it(pair, outsider, security):
    secret, _control = pair
    workflow.assign(secret, actor=security, assignee=outsider)
    assert Incident.objects.visible_to(outsider).filter(pk=secret.pk).exists()


def test_timeline_updates_and_signals_follow_their_incident(pair, outsider, security):
    secret, control = pair
    workflow.post_update(secret, actor=security, body="Forensics under way.")
    for model in (IncidentEvent, IncidentUpdate, SlaSignal):
        seen = set(model.objects.visible_to(outsider).values_list("incident_id", flat=True))
        assert secret.pk not in seen
        assert secret.pk in set(
            model.objects.visible_to(security).values_list("incident_id", flat=True)
        )


def test_tokens_integrations_and_the_system(service, agent, security):
    ours, theirs = OrganizationFactory(), OrganizationFactory()
    mine = workflow.create_incident(
        actor=agent, title="ours", services=[service], organization=ours
    )
    other = workflow.create_incident(
        actor=agent, title="theirs", services=[service], organization=theirs
    )
    secret = workflow.create_incident(
        actor=security, title="secret", services=[service], organization=ours, is_confidential=True
    )

    def seen(actor):
        return set(Incident.objects.visible_to(actor).values_list("pk", flat=True))

    bound = Actor.token(ref=7, label="ours-ci", organization_id=ours.pk)
    assert seen(bound) == {mine.pk}
    assert seen(Actor.token(ref=8, label="desk-wide")) == {mine.pk, other.pk}
    assert seen(Actor.integration(ref="alertmanager", label="Alertmanager")) == {mine.pk, other.pk}
    assert seen(Actor.system()) == {mine.pk, other.pk, secret.pk}


def test_visible_to_is_one_query_however_many_incidents(
    pair, outsider, django_assert_num_queries, service, agent
):
    outsider.has_perm("incidents.view_incident")  # permissions cached, as in any admin request
    with django_assert_num_queries(1):
        list(Incident.objects.visible_to(outsider))
    for n in range(5):
        workflow.create_incident(actor=agent, title=f"more {n}", services=[service])
    with django_assert_num_queries(1):
        list(Incident.objects.visible_to(outsider))


# --- what it changes outside --------------------------------------------------------------------


def test_it_never_moves_a_public_service_status(service, security, agent):
    workflow.create_incident(
        actor=security,
        title=SECRET_TITLE,
        services={service: ServiceStatus.MAJOR_OUTAGE},
        is_confidential=True,
    )
    assert Service.objects.get(pk=service.pk).status == ServiceStatus.OPERATIONAL
    control = workflow.create_incident(
        actor=agent, title=CONTROL_TITLE, services={service: ServiceStatus.PARTIAL_OUTAGE}
    )
    assert Service.objects.get(pk=service.pk).status == ServiceStatus.PARTIAL_OUTAGE
    # Marked confidential later, its impact leaves the service too.
    workflow.edit(
        control,
        actor=security,
        expected_version=Incident.objects.get(pk=control.pk).version,
        changes={"is_confidential": True},
    )
    assert Service.objects.get(pk=service.pk).status == ServiceStatus.OPERATIONAL


def test_staff_emails_go_only_to_those_who_may_see_it(service, security, outsider, agent):
    team = GroupFactory(name="Payments team")
    team.user_set.add(outsider, security)
    Team.objects.create(group=team, email="payments-team@desk.example.com")
    secret = workflow.create_incident(
        actor=security,
        title=SECRET_TITLE,
        services=[service],
        assignment_group=team,
        is_confidential=True,
    )
    control = workflow.create_incident(
        actor=agent, title=CONTROL_TITLE, services=[service], assignment_group=team
    )

    def mailed(incident):
        return set(
            Notification.objects.filter(
                event__subject_kind="incident", event__subject_id=incident.pk
            ).values_list("address", flat=True)
        )

    assert mailed(control) == {"payments-team@desk.example.com"}
    assert mailed(secret) == {security.email}


def test_no_customer_hears_of_it_without_a_public_update_which_names_nothing(
    service, security, dispatched_events
):
    SubscriptionFactory(service=service)
    secret = workflow.create_incident(
        actor=security, title=SECRET_TITLE, description="Dump on a paste site", services=[service]
    )
    secret = workflow.edit(
        secret, actor=security, expected_version=secret.version, changes={"is_confidential": True}
    )
    assert not NotificationEvent.objects.filter(
        subject_kind="incident", subject_id=secret.pk, kind__startswith="incident_"
    )
    workflow.post_update(
        secret,
        actor=security,
        body="Some payroll exports are delayed; we are working on it.",
        is_public=True,
        public_status="investigating",
    )
    event = NotificationEvent.objects.get(
        subject_kind="incident", subject_id=secret.pk, kind="incident_published"
    )
    subject, text, html = render_email(event.kind, event.payload, "en")
    for where in (str(event.payload), subject, text, html):
        assert SECRET_TITLE not in where
        assert secret.reference not in where
        assert "paste site" not in where
        assert f"/incidents/{secret.pk}/" not in where
    assert "Some payroll exports are delayed" in text
    assert subject == "We are investigating a problem: Investigating"


@pytest.fixture
def dispatched_events(monkeypatch):
    """Keep workers out: the test reads the outbox rows the change wrote."""
    from notifications import delivery

    monkeypatch.setattr(delivery, "dispatch_event", lambda *a, **k: True)
    monkeypatch.setattr(delivery, "dispatch_expansion", lambda *a, **k: True)

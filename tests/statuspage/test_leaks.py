"""Nothing internal reaches the public side: internal data carries marker strings, and no marker
appears in any published output (every snapshot row as served, in both languages, and every
file of the published folder) nor in any mail a public subscriber receives."""

import datetime as dt
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from incidents import workflow
from services import workflow as catalog
from services.models import MaintenanceStatus, ServiceStatus
from statuspage.models import Snapshot
from statuspage.publish import publish, url_for
from tests.factories import (
    AGENT_GROUP,
    SECURITY_GROUP,
    ContactFactory,
    OrganizationFactory,
    ServiceFactory,
    SubscriptionFactory,
    UserFactory,
)
from tests.notifications import conftest as notification_fixtures
from tests.statuspage.test_subscribe import confirm_link, mails_to

smtp = notification_fixtures.smtp
dispatched = notification_fixtures.dispatched

pytestmark = pytest.mark.django_db

SUBSCRIBERS = {"pat@public.example": "en", "ioana@public.example": "ro"}

# Every internal string: none may appear in any public output (compared case-insensitively).
MARKERS = (
    "zq-assignee-first",
    "zq-assignee-last",
    "zq-assignee@internal.example",
    "zq-commander",
    "zq-security-user",
    "zq-private-service",
    "zq-private-slug",
    "zq-private-description",
    "zq-org-name",
    "zq-org-slug",
    "zq-contact-name",
    "zq-contact@customer.example",
    "zq-description",
    "zq-work-note",
    "zq-hold-reason",
    "zq-resolution-note",
    "zq-confidential-title",
    "zq-confidential-update",  # on no page; see MAIL_ONLY
    "zq-unpublished-title",
    "zq-unpublished-note",
    "zq-cancelled-maintenance",
    "zq-cancelled-description",
    "zq-private-maintenance",
    "zq-private-maintenance-description",
)

# A confidential incident's public update is written for its customers: they are mailed its text
# (with no title, reference or link, ``incidents.notify.incident_payload``), no page shows it.
MAIL_ONLY = ("zq-confidential-update",)


@pytest.fixture(autouse=True)
def _fresh(settings, tmp_path):
    settings.STATUS_PAGE_READ_CACHE_SECONDS = 0
    settings.STATUS_PAGE_DIR = str(tmp_path / "public")
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def deliver(dispatched):
    def run():
        from notifications import delivery

        while dispatched:
            event_id, _copies = dispatched.pop(0)
            delivery.deliver_event(event_id)

    return run


def subscribe(address, language, ip, deliver, smtp, capture):
    with capture(execute=True):
        response = Client(REMOTE_ADDR=ip).post(
            "/subscribe/", {"email": address, "all_services": "on", "language": language}
        )
    assert response.status_code == 200
    deliver()
    (confirmation,) = mails_to(smtp, address)
    with capture(execute=True):
        assert Client(REMOTE_ADDR=ip).post(confirm_link(confirmation)).status_code == 200
    deliver()


def catalog_services():
    """The public services (the subscribers choose among them) and a private one."""
    website = ServiceFactory(name="Website", slug="website")
    payments = ServiceFactory(name="Payments", slug="payments")
    private = ServiceFactory(
        name="Zq-private-service",
        slug="zq-private-slug",
        description="zq-private-description",
        is_public=False,
    )
    return website, payments, private


def internal_and_public_data(website, payments, private):
    """Public services and incidents, and around them every kind of internal data, each
    carrying a marker."""
    agent = UserFactory(
        username="agent",
        first_name="Zq-assignee-first",
        last_name="Zq-assignee-last",
        email="zq-assignee@internal.example",
        groups=[AGENT_GROUP],
    )
    commander = UserFactory(username="zq-commander", groups=[AGENT_GROUP])
    security = UserFactory(username="zq-security-user", groups=[SECURITY_GROUP])
    organisation = OrganizationFactory(name="Zq-org-name Ltd", slug="zq-org-slug")
    contact = ContactFactory(
        organization=organisation, name="Zq-contact-name", email="zq-contact@customer.example"
    )

    SubscriptionFactory(service=website, contact=contact)
    # A public service hurt through a private one: it says so without naming it.
    catalog.add_dependency(service=website, depends_on=private)

    # An active public incident with everything internal an agent adds to it.
    active = workflow.create_incident(
        actor=agent,
        title="Website down",
        description="zq-description",
        services={website: ServiceStatus.MAJOR_OUTAGE, private: ServiceStatus.MAJOR_OUTAGE},
        organization=organisation,
        contact=contact,
        assignee=agent,
        commander=commander,
    )
    workflow.post_update(active, actor=agent, body="zq-work-note: restarted pod-7")
    workflow.post_update(
        active,
        actor=agent,
        body="We are investigating.",
        is_public=True,
        public_status="investigating",
    )
    workflow.hold(active, actor=agent, reason="zq-hold-reason")
    workflow.resume(active, actor=agent)

    # A resolved public incident with internal resolution notes.
    resolved = workflow.create_incident(
        actor=agent,
        title="Payments slow",
        services={payments: ServiceStatus.PARTIAL_OUTAGE},
        organization=organisation,
        assignee=agent,
    )
    workflow.post_update(
        resolved,
        actor=agent,
        body="Payments are slow.",
        is_public=True,
        public_status="identified",
    )
    workflow.resolve(
        resolved, actor=agent, code="fixed", notes="zq-resolution-note", public_message="Fixed."
    )

    # A confidential incident with a public update, and an unpublished one.
    secret = workflow.create_incident(
        actor=security,
        title="zq-confidential-title",
        services={website: ServiceStatus.MAJOR_OUTAGE},
        is_confidential=True,
    )
    workflow.post_update(
        secret,
        actor=security,
        body="zq-confidential-update",
        is_public=True,
        public_status="identified",
    )
    unpublished = workflow.create_incident(
        actor=agent, title="zq-unpublished-title", services=[payments]
    )
    workflow.post_update(unpublished, actor=agent, body="zq-unpublished-note")

    # Maintenance: a public window, a cancelled one, one on a private service only (in
    # progress, so it also moves the private service and, through it, the website).
    now = timezone.now()
    catalog.schedule_maintenance(
        title="Database upgrade",
        services=[payments],
        scheduled_start=now + dt.timedelta(days=1),
        scheduled_end=now + dt.timedelta(days=1, hours=2),
        public_description="Payments pause for ten minutes.",
    )
    cancelled = catalog.schedule_maintenance(
        title="zq-cancelled-maintenance",
        services=[website],
        scheduled_start=now + dt.timedelta(days=2),
        scheduled_end=now + dt.timedelta(days=2, hours=1),
        public_description="zq-cancelled-description",
    )
    return active, cancelled


def cancel_and_go_on(cancelled, private):
    """Cancel the window (its scheduled announcement went out while it was still planned) and
    run a window on a private service only from start to end."""
    now = timezone.now()
    catalog.move_maintenance(cancelled, to=MaintenanceStatus.CANCELLED)
    internal = catalog.schedule_maintenance(
        title="zq-private-maintenance",
        services=[private],
        scheduled_start=now - dt.timedelta(minutes=5),
        scheduled_end=now + dt.timedelta(hours=1),
        public_description="zq-private-maintenance-description",
    )
    catalog.start_and_end_maintenance()
    catalog.move_maintenance(internal, to=MaintenanceStatus.COMPLETED)


def mail_text(mail):
    """Headers and every part decoded (a quoted-printable body would hide a marker)."""
    parts = [str(value) for value in mail.values()]
    for part in mail.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


def found_markers(text, *, allowed=()):
    text = text.lower()
    return [m for m in MARKERS if m in text and m not in allowed]


def test_no_internal_marker_reaches_any_public_output(
    settings, smtp, deliver, django_capture_on_commit_callbacks
):
    website, payments, private = catalog_services()
    for number, (address, language) in enumerate(SUBSCRIBERS.items()):
        subscribe(
            address,
            language,
            f"192.0.2.{10 + number}",
            deliver,
            smtp,
            django_capture_on_commit_callbacks,
        )
    smtp.messages.clear()

    with django_capture_on_commit_callbacks(execute=True):
        active, cancelled = internal_and_public_data(website, payments, private)
    deliver()
    # Announced while planned, then called off: those mails were true when sent; after the
    # cancellation nothing more is said of it (checked with everything else below).
    for address in SUBSCRIBERS:
        assert any("zq-cancelled-maintenance" in m["Subject"] for m in mails_to(smtp, address))
    with smtp.lock:
        smtp.messages[:] = [
            m for m in smtp.messages if "zq-cancelled-maintenance" not in m[1]["Subject"]
        ]
    with django_capture_on_commit_callbacks(execute=True):
        cancel_and_go_on(cancelled, private)
    deliver()
    with django_capture_on_commit_callbacks(execute=True):
        publish(full=True)

    leaks = {}
    # Every snapshot as served, in its language (Romanian under /ro/).
    client = Client()
    rows = list(Snapshot.objects.values_list("path", "language"))
    assert len(rows) > 20
    for path, language in rows:
        url = url_for(path, language)
        response = client.get(url)
        assert response.status_code == 200, url
        if found := found_markers(response.content.decode()):
            leaks[url] = found
    # Every file of the folder nginx serves.
    folder = Path(settings.STATUS_PAGE_DIR)
    files = [f for f in folder.rglob("*") if f.is_file()]
    assert len(files) >= len(rows)
    for file in files:
        if found := found_markers(file.read_bytes().decode()):
            leaks[str(file.relative_to(folder))] = found
    # Every mail to a public subscriber, whole (headers and every part).
    for address in SUBSCRIBERS:
        mails = mails_to(smtp, address)
        assert any("Website down" in m["Subject"] for m in mails), address
        for number, mail in enumerate(mails):
            if found := found_markers(mail_text(mail), allowed=MAIL_ONLY):
                leaks[f"mail {number} to {address}: {mail['Subject']}"] = found

    assert leaks == {}
    # The page is not empty of what it should show.
    page = client.get("/").content.decode()
    assert "Website down" in page and "We are investigating." in page
    assert "Database upgrade" in page
    assert client.get(f"/incidents/{active.pk}/").status_code == 200

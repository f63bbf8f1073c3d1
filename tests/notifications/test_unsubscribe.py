"""Unsubscribe: the signed link, the page, RFC 8058 one-click, and that it is honoured."""

import pytest
from django.test import Client

from incidents.notify import enqueue_incident_event
from notifications import delivery
from notifications.models import EmailOptOut, EventKind, Notification, NotificationStatus
from notifications.outbox import expand_event
from notifications.unsubscribe import make_token, read_token
from services.models import Contact, Subscription
from tests.factories import ContactFactory, OrganizationFactory, ServiceFactory, SubscriptionFactory
from tests.notifications.conftest import deliver_all, make_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def service():
    return ServiceFactory(name="Payments")


@pytest.fixture
def contact(service):
    contact = ContactFactory(email="mara@x.test", language="ro")
    SubscriptionFactory(contact=contact, service=service)
    # Her organisation is subscribed too: unsubscribing must stop that path as well.
    Subscription.objects.create(organization=contact.organization, service=service)
    return contact


def publish(service, n=1):
    """Publish an incident and expand it: its rows are queued, waiting for a worker."""
    incident = make_incident(service, public_status="investigating", title=f"Outage {n}")
    event = enqueue_incident_event(incident=incident, kind=EventKind.INCIDENT_PUBLISHED)
    expand_event(event.pk)
    return event


def test_the_email_carries_a_working_one_click_link(service, contact, smtp, dispatched):
    deliver_all(publish(service))
    (message,) = [m for _r, m in smtp.messages]
    header = str(message["List-Unsubscribe"]).strip()
    assert header.startswith("<http://") and header.endswith(">")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = header[1:-1]
    assert url in message.get_body(("plain",)).get_content()
    assert url in message.get_body(("html",)).get_content()
    path = url.split("127.0.0.1:8000", 1)[1]

    # A mail client's one-click POST: no cookie, no CSRF token.
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert EmailOptOut.objects.filter(contact=contact).exists()
    assert not contact.subscriptions.filter(is_active=True).exists()

    smtp.messages.clear()
    deliver_all(publish(service, 2))
    assert smtp.messages == []  # not even through the organisation's subscription


def test_confirm_page_then_post(service, contact, client):
    token = make_token(contact.pk)
    page = client.get(f"/unsubscribe/{token}/")
    assert page.status_code == 200
    assert "mara@x.test" in page.content.decode()
    assert "Dezabonare" in page.content.decode()  # in her language
    assert not EmailOptOut.objects.exists()  # a GET (a link scanner) changes nothing

    done = client.post(f"/unsubscribe/{token}/")
    assert done.status_code == 200
    assert EmailOptOut.objects.filter(contact=contact).exists()
    assert client.post(f"/unsubscribe/{token}/").status_code == 200  # idempotent


@pytest.mark.parametrize(
    "token",
    ["garbage", "12:notasignature", "make-for-other-contact"],
)
def test_a_bad_token_changes_nothing(token, service, contact, client):
    if token == "make-for-other-contact":
        # Signed for another purpose: the salt makes it worthless here.
        from django.core import signing

        token = signing.Signer(salt="something-else").sign(str(contact.pk))
    assert read_token(token) is None
    assert client.get(f"/unsubscribe/{token}/").status_code == 404
    assert client.post(f"/unsubscribe/{token}/").status_code == 404
    assert not EmailOptOut.objects.exists()
    assert contact.subscriptions.filter(is_active=True).count() == 1


def test_a_token_for_a_deleted_contact_is_404(client):
    contact = ContactFactory()
    token = make_token(contact.pk)
    contact.delete()
    assert client.post(f"/unsubscribe/{token}/").status_code == 404


def test_queued_rows_are_cancelled(service, contact, client, smtp, dispatched):
    event = publish(service)
    assert Notification.objects.get(event=event).status == NotificationStatus.PENDING
    client.post(f"/unsubscribe/{make_token(contact.pk)}/")
    row = Notification.objects.get(event=event)
    assert row.status == NotificationStatus.CANCELLED
    deliver_all(event)
    assert smtp.messages == []


def test_rows_already_claimed_are_checked_at_send_time(service, contact, client, smtp, dispatched):
    event = publish(service)
    ids, lease = delivery.claim_batch(event.pk)  # a worker holds the row...
    client.post(f"/unsubscribe/{make_token(contact.pk)}/")  # ...when she clicks
    delivery.send_claimed(ids, lease)
    assert smtp.messages == []
    assert Notification.objects.get(event=event).status == NotificationStatus.CANCELLED


def test_inactive_contact_is_never_mailed(service, contact, smtp, dispatched):
    event = publish(service)
    contact.is_active = False
    contact.save()
    deliver_all(event)
    assert smtp.messages == []
    row = Notification.objects.get(event=event)
    assert row.status == NotificationStatus.CANCELLED
    assert "inactive" in row.last_error


def test_deleted_contact_takes_its_queued_rows_with_it(service, contact, smtp, dispatched):
    other = ContactFactory(organization=OrganizationFactory())
    SubscriptionFactory(contact=other, service=service)
    event = publish(service)
    contact.delete()
    deliver_all(event)
    assert [r for r, _m in smtp.messages] == [[other.email]]


def test_contact_removed_behind_the_orms_back_is_not_mailed(service, contact, smtp, dispatched):
    event = publish(service)
    contact.subscriptions.all().delete()
    Contact.objects.filter(pk=contact.pk)._raw_delete(Contact.objects.db)
    deliver_all(event)
    assert smtp.messages == []
    assert Notification.objects.get(event=event).status == NotificationStatus.CANCELLED


# --- Links that expire, rotate with new mail, and survive a SECRET_KEY rotation ----------------

DAY = 24 * 3600


def token_made_days_ago(contact_id, days, monkeypatch):
    """The link an email sent ``days`` ago carried."""
    import time

    real_time = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real_time() - days * DAY)
        return make_token(contact_id)


def test_a_link_from_an_email_of_last_month_works(service, contact, client, monkeypatch):
    token = token_made_days_ago(contact.pk, 300, monkeypatch)
    assert client.post(f"/unsubscribe/{token}/").status_code == 200
    assert EmailOptOut.objects.filter(contact=contact).exists()


def test_a_link_older_than_its_lifetime_has_expired(service, contact, client, monkeypatch):
    token = token_made_days_ago(contact.pk, 366, monkeypatch)
    page = client.get(f"/unsubscribe/{token}/")
    assert page.status_code == 410
    assert "expired" in page.content.decode()
    assert "mara@x.test" not in page.content.decode()  # an old link tells nobody the address
    assert client.post(f"/unsubscribe/{token}/").status_code == 410
    assert not EmailOptOut.objects.exists()
    assert contact.subscriptions.filter(is_active=True).count() == 1


def test_the_lifetime_is_a_setting(service, contact, client, monkeypatch, settings):
    settings.UNSUBSCRIBE_LINK_MAX_AGE = 30 * DAY
    token = token_made_days_ago(contact.pk, 31, monkeypatch)
    assert client.post(f"/unsubscribe/{token}/").status_code == 410


def test_each_email_gets_a_fresh_link(contact, monkeypatch):
    """A link leaked from an old email dies with its age; new mail is not bound to it."""
    old = token_made_days_ago(contact.pk, 2, monkeypatch)
    assert make_token(contact.pk) != old
    assert read_token(make_token(contact.pk)) == contact.pk


def legacy_token(contact_id):
    """The format the links in mail sent before versioned tokens had: no date, never expiring."""
    from django.core import signing

    return signing.Signer(salt="itsm.notifications.unsubscribe").sign(str(contact_id))


def test_links_in_mail_sent_before_the_change_keep_working_for_the_grace_period(
    service, contact, client, settings
):
    token = legacy_token(contact.pk)
    assert client.get(f"/unsubscribe/{token}/").status_code == 200
    assert client.post(f"/unsubscribe/{token}/").status_code == 200
    assert EmailOptOut.objects.filter(contact=contact).exists()


def test_links_in_mail_sent_before_the_change_expire_after_the_grace_period(
    service, contact, client, settings
):
    from datetime import UTC, datetime

    settings.UNSUBSCRIBE_LEGACY_LINKS_UNTIL = datetime(2026, 1, 1, tzinfo=UTC)
    token = legacy_token(contact.pk)
    assert client.post(f"/unsubscribe/{token}/").status_code == 410
    assert not EmailOptOut.objects.exists()


def test_a_rotated_secret_key_in_the_fallbacks_keeps_old_links_working(contact, tmp_path):
    """Operators rotate SECRET_KEY through the environment: the old key goes to
    SECRET_KEY_FALLBACKS and every link already sent keeps working; a link signed with a key that
    is in neither is refused."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    make = "from notifications.unsubscribe import make_token as m; print(m(42))"
    read = (
        "import sys; from notifications.unsubscribe import read_token as r; print(r(sys.argv[1]))"
    )

    def run(code, *args, **env):
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}", *args],
            cwd=root,
            env={**os.environ, "ITSM_VAR_DIR": str(tmp_path), **env},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    old_key, new_key = "old-key-" + "a" * 50, "new-key-" + "b" * 50
    token = run(make, SECRET_KEY=old_key)
    assert run(read, token, SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=old_key) == "42"
    assert run(read, token, SECRET_KEY=new_key) == "None"

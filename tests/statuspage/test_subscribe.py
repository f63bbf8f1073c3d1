"""The public subscription (/subscribe/): double opt-in through a real SMTP server, rate limits,
and never telling who is subscribed."""

import re

import pytest
from django.core import signing
from django.core.cache import cache
from django.test import Client

from incidents import workflow
from notifications import delivery
from notifications.models import EventKind, Notification, NotificationEvent
from services.models import Contact, ServiceStatus, Subscription
from tests.factories import ContactFactory, ServiceFactory
from tests.notifications import conftest as notification_fixtures

# The SMTP sink and the synchronous delivery of the notification tests.
smtp = notification_fixtures.smtp
dispatched = notification_fixtures.dispatched


pytestmark = pytest.mark.django_db

ADDRESS = "ana@public.example"


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    # A cache of this test's own: the shared Redis is cleared by tests on other xdist workers.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "subscribe-rate-limits",
        }
    }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def payments():
    return ServiceFactory(name="Payments", slug="payments")


@pytest.fixture
def website():
    return ServiceFactory(name="Website", slug="website")


@pytest.fixture
def private():
    return ServiceFactory(name="Internal billing batch", slug="batch", is_public=False)


@pytest.fixture
def mailer(dispatched, django_capture_on_commit_callbacks):
    """Runs what the request commits (the on-commit dispatches) and delivers it, as workers do."""

    class Mailer:
        def post(self, client, data, **extra):
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post("/subscribe/", data, **extra)
            self.deliver()
            return response

        def deliver(self):
            while dispatched:
                event_id, _copies = dispatched.pop(0)
                delivery.deliver_event(event_id)

    return Mailer()


def client(ip="192.0.2.10"):
    return Client(REMOTE_ADDR=ip)


def publish(agent, service, title, django_capture_on_commit_callbacks, mailer):
    with django_capture_on_commit_callbacks(execute=True):
        incident = workflow.create_incident(
            actor=agent, title=title, services={service: ServiceStatus.MAJOR_OUTAGE}
        )
        workflow.post_update(
            incident,
            actor=agent,
            body=f"{title}: investigating.",
            is_public=True,
            public_status="investigating",
        )
    mailer.deliver()
    return incident


def mails_to(smtp, address):
    return smtp.by_recipient().get(address, [])


def text_of(message):
    return message.get_body(("plain",)).get_content()


def confirm_link(message):
    (url,) = re.findall(r"http://\S+/subscribe/confirm/\S+/", text_of(message))
    return url.split("127.0.0.1:8000", 1)[1]


def test_the_form_offers_public_services_only(payments, private):
    response = client().get("/subscribe/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'lang="en"' in page
    assert "Payments" in page
    assert "Internal billing batch" not in page
    assert '<label for="id_email">' in page


def test_subscribe_confirm_then_hear_about_chosen_services_only(
    agent,
    payments,
    website,
    smtp,
    mailer,
    django_capture_on_commit_callbacks,
):
    response = mailer.post(
        client(), {"email": ADDRESS, "services": [payments.pk], "language": "en"}
    )
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()

    (confirmation,) = mails_to(smtp, ADDRESS)
    assert "Confirm your subscription" in confirmation["Subject"]
    assert "Payments" in text_of(confirmation)
    unsubscribe = str(confirmation["List-Unsubscribe"]).strip()
    assert unsubscribe.startswith("<http://") and "/unsubscribe/" in unsubscribe
    assert confirmation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Not confirmed yet: an incident on the chosen service says nothing to them.
    publish(agent, payments, "Card payments fail", django_capture_on_commit_callbacks, mailer)
    assert len(mails_to(smtp, ADDRESS)) == 1

    response = client().post(confirm_link(confirmation))
    assert response.status_code == 200
    assert "Subscription confirmed" in response.content.decode()
    contact = Contact.objects.get(email=ADDRESS)
    assert contact.organization is None and contact.confirmed_at is not None
    active = Subscription.objects.filter(contact=contact, is_active=True)
    assert list(active.values_list("service__slug", flat=True)) == ["payments"]

    smtp.messages.clear()
    publish(agent, website, "Website slow", django_capture_on_commit_callbacks, mailer)
    assert mails_to(smtp, ADDRESS) == []
    publish(agent, payments, "Refunds delayed", django_capture_on_commit_callbacks, mailer)
    (incident_mail,) = mails_to(smtp, ADDRESS)
    assert "Refunds delayed" in incident_mail["Subject"]
    assert str(incident_mail["List-Unsubscribe"]).strip().startswith("<http://")


def test_all_services_and_romanian(
    agent,
    payments,
    website,
    smtp,
    mailer,
    django_capture_on_commit_callbacks,
):
    mailer.post(client(), {"email": ADDRESS, "all_services": "on", "language": "ro"})
    (confirmation,) = mails_to(smtp, ADDRESS)
    assert confirmation["Content-Language"] == "ro"
    assert client().post(confirm_link(confirmation)).status_code == 200
    contact = Contact.objects.get(email=ADDRESS)
    assert contact.language == "ro"
    assert set(
        contact.subscriptions.filter(is_active=True).values_list("service__slug", flat=True)
    ) == {"payments", "website"}

    smtp.messages.clear()
    publish(agent, website, "Website slow", django_capture_on_commit_callbacks, mailer)
    assert len(mails_to(smtp, ADDRESS)) == 1


def test_all_services_includes_services_added_later_until_unsubscribed(
    agent, payments, private, smtp, mailer, django_capture_on_commit_callbacks
):
    mailer.post(client(), {"email": ADDRESS, "all_services": "on", "language": "en"})
    mailer.post(
        client(), {"email": "some@public.example", "services": [payments.pk], "language": "en"}
    )
    (first,) = mails_to(smtp, ADDRESS)
    for address in (ADDRESS, "some@public.example"):
        assert client().post(confirm_link(mails_to(smtp, address)[0])).status_code == 200
    smtp.messages.clear()

    # A new public service, and a private one made public: both reach the "all" subscriber
    # only; one that stays private reaches nobody.
    billing = ServiceFactory(name="Billing", slug="billing", is_public=True)
    private.is_public = True
    private.save()
    ServiceFactory(name="Back office", slug="back-office", is_public=False)
    follower = Contact.objects.get(email=ADDRESS)
    assert set(
        follower.subscriptions.filter(is_active=True).values_list("service__slug", flat=True)
    ) == {"payments", billing.slug, private.slug}
    assert Subscription.objects.filter(contact__email="some@public.example").count() == 1
    publish(agent, billing, "Invoices late", django_capture_on_commit_callbacks, mailer)
    (mail,) = mails_to(smtp, ADDRESS)
    assert "Invoices late" in mail["Subject"]
    assert mails_to(smtp, "some@public.example") == []

    # After unsubscribing, a service added later does not subscribe them again.
    url = str(first["List-Unsubscribe"]).strip()[1:-1].split("127.0.0.1:8000", 1)[1]
    assert client().post(url).status_code == 200
    ServiceFactory(name="Search", slug="search", is_public=True)
    assert not follower.subscriptions.filter(service__slug="search").exists()


def test_confirming_twice_is_harmless(payments, smtp, mailer):
    mailer.post(client(), {"email": ADDRESS, "services": [payments.pk], "language": "en"})
    link = confirm_link(mails_to(smtp, ADDRESS)[0])
    assert client().post(link).status_code == 200
    first = Contact.objects.get(email=ADDRESS).confirmed_at
    assert client().post(link).status_code == 200
    contact = Contact.objects.get(email=ADDRESS)
    assert contact.confirmed_at == first
    assert contact.subscriptions.filter(is_active=True).count() == 1


def test_opening_the_link_confirms_nothing_until_the_button(payments, smtp, mailer):
    """A mail scanner opens every link of a message (GET): that alone must not subscribe an
    address someone else typed in. The page names what the button would do."""
    mailer.post(client(), {"email": ADDRESS, "services": [payments.pk], "language": "en"})
    link = confirm_link(mails_to(smtp, ADDRESS)[0])
    for _ in range(3):
        page = client().get(link)
        assert page.status_code == 200
        assert page["Cache-Control"] == "private, no-store"
    text = page.content.decode()
    assert "Confirm your subscription" in text and ADDRESS in text and "Payments" in text
    assert '<form method="post"' in text
    contact = Contact.objects.get(email=ADDRESS)
    assert contact.confirmed_at is None
    assert not contact.subscriptions.filter(is_active=True).exists()

    assert "Subscription confirmed" in client().post(link).content.decode()
    assert contact.subscriptions.filter(is_active=True).count() == 1


def test_opening_an_expired_link_says_so(payments, smtp, mailer, monkeypatch):
    real = signing.TimestampSigner.timestamp
    monkeypatch.setattr(
        signing.TimestampSigner,
        "timestamp",
        lambda self: signing.b62_encode(signing.b62_decode(real(self)) - 49 * 3600),
    )
    mailer.post(client(), {"email": ADDRESS, "services": [payments.pk], "language": "en"})
    monkeypatch.undo()
    assert client().get(confirm_link(mails_to(smtp, ADDRESS)[0])).status_code == 410


def test_the_same_answer_for_known_and_unknown_addresses(payments, website, smtp, mailer):
    mailer.post(
        client(), {"email": "known@public.example", "services": [payments.pk], "language": "en"}
    )
    assert client().post(confirm_link(mails_to(smtp, "known@public.example")[0])).status_code == 200
    smtp.messages.clear()

    known = mailer.post(
        client(), {"email": "KNOWN@public.example", "services": [website.pk], "language": "en"}
    )
    unknown = mailer.post(
        client(), {"email": "new@public.example", "services": [website.pk], "language": "en"}
    )
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content

    # The owner of the known address is told, privately, and keeps what they have until they
    # click; one public subscriber per mailbox, whatever the letter case.
    (notice,) = mails_to(smtp, "known@public.example")
    assert "already subscribed" in notice["Subject"]
    assert "/unsubscribe/" in str(notice["List-Unsubscribe"])
    known_contact = Contact.objects.get(email__iexact="known@public.example")
    assert Contact.objects.filter(email__iexact="known@public.example").count() == 1
    active = known_contact.subscriptions.filter(is_active=True)
    assert list(active.values_list("service__slug", flat=True)) == ["payments"]
    assert client().post(confirm_link(notice)).status_code == 200
    assert list(active.values_list("service__slug", flat=True)) == ["website"]


def test_an_organisations_contact_address_gets_the_same_answer(payments, smtp, mailer):
    ContactFactory(email="buyer@customer.example")
    response = mailer.post(
        client(), {"email": "buyer@customer.example", "services": [payments.pk], "language": "en"}
    )
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()


def _counts():
    return (
        Contact.objects.count(),
        Subscription.objects.count(),
        NotificationEvent.objects.count(),
        Notification.objects.count(),
    )


def test_rate_limited_per_address(payments, smtp, mailer, settings):
    settings.SUBSCRIBE_RATE_PER_ADDRESS = 2
    data = {"email": ADDRESS, "services": [payments.pk], "language": "en"}
    for ip in ("192.0.2.1", "192.0.2.2"):
        assert mailer.post(client(ip), data).status_code == 200
    before = _counts()
    # Another client, another letter case: still the same address.
    response = mailer.post(client("192.0.2.3"), {**data, "email": ADDRESS.upper()})
    assert response.status_code == 429
    assert "Too many requests" in response.content.decode()
    assert _counts() == before
    assert len(mails_to(smtp, ADDRESS)) == 2


def test_rate_limited_per_client_address(payments, smtp, mailer, settings):
    settings.SUBSCRIBE_RATE_PER_IP = 2
    for n in range(2):
        data = {"email": f"p{n}@public.example", "services": [payments.pk], "language": "en"}
        assert mailer.post(client(), data).status_code == 200
    before = _counts()
    data = {"email": "p3@public.example", "services": [payments.pk], "language": "en"}
    assert mailer.post(client(), data).status_code == 429
    assert _counts() == before
    assert not Contact.objects.filter(email="p3@public.example").exists()
    assert mailer.post(client("198.51.100.7"), data).status_code == 200


@pytest.mark.parametrize(
    "data, field",
    [
        ({"email": "not-an-address", "all_services": "on"}, "email"),
        ({"email": "a@b.example", "services": ["999999"]}, "services"),
        ({"email": "a@b.example", "services": ["private"]}, "services"),
        ({"email": "a@b.example"}, "services"),
        ({"email": "a@b.example", "all_services": "on", "language": "de"}, "language"),
    ],
)
def test_bad_input_shows_the_form_again_and_creates_nothing(
    data,
    field,
    payments,
    private,
    smtp,
    mailer,
):
    data = {"language": "en", **data}
    if data.get("services") == ["private"]:
        data["services"] = [str(private.pk)]
    response = mailer.post(client(), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert 'role="alert"' in response.content.decode()
    assert _counts() == (0, 0, 0, 0)
    assert smtp.messages == []


def test_an_expired_link_says_so_and_changes_nothing(payments, smtp, mailer, monkeypatch):
    # The token is signed 49 hours ago (links live 48).
    real = signing.TimestampSigner.timestamp
    monkeypatch.setattr(
        signing.TimestampSigner,
        "timestamp",
        lambda self: signing.b62_encode(signing.b62_decode(real(self)) - 49 * 3600),
    )
    mailer.post(client(), {"email": ADDRESS, "services": [payments.pk], "language": "en"})
    monkeypatch.undo()
    response = client().post(confirm_link(mails_to(smtp, ADDRESS)[0]))
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    contact = Contact.objects.get(email=ADDRESS)
    assert contact.confirmed_at is None
    assert not contact.subscriptions.filter(is_active=True).exists()


def test_a_forged_link_is_not_found(payments):
    token = signing.dumps({"c": 1, "s": None, "l": "en"}, salt="another purpose")
    assert client().post(f"/subscribe/confirm/{token}/").status_code == 404


def test_unsubscribed_then_subscribing_again_works(
    agent,
    payments,
    smtp,
    mailer,
    django_capture_on_commit_callbacks,
):
    data = {"email": ADDRESS, "services": [payments.pk], "language": "en"}
    mailer.post(client(), data)
    (first,) = mails_to(smtp, ADDRESS)
    assert client().post(confirm_link(first)).status_code == 200
    # One-click unsubscribe from the confirmation mail.
    url = str(first["List-Unsubscribe"]).strip()[1:-1].split("127.0.0.1:8000", 1)[1]
    assert (
        client()
        .post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
        .status_code
        == 200
    )
    smtp.messages.clear()
    publish(agent, payments, "Card payments fail", django_capture_on_commit_callbacks, mailer)
    assert mails_to(smtp, ADDRESS) == []

    # Asked again: the confirmation still reaches them, and confirming lifts the opt-out.
    mailer.post(client(), data)
    (again,) = mails_to(smtp, ADDRESS)
    assert "Confirm your subscription" in again["Subject"]
    assert client().post(confirm_link(again)).status_code == 200
    smtp.messages.clear()
    publish(agent, payments, "Refunds delayed", django_capture_on_commit_callbacks, mailer)
    assert len(mails_to(smtp, ADDRESS)) == 1


def test_the_confirmation_is_queued_not_sent_in_the_request(payments, dispatched, smtp):
    response = client().post(
        "/subscribe/", {"email": ADDRESS, "services": [payments.pk], "language": "en"}
    )
    assert response.status_code == 200
    assert smtp.messages == []
    (row,) = Notification.objects.filter(address=ADDRESS)
    assert row.event.kind == EventKind.SUBSCRIPTION_CONFIRMATION
    assert row.status == "pending"


def test_each_subscriber_gets_the_update_in_their_language(
    agent, payments, smtp, mailer, django_capture_on_commit_callbacks
):
    for address, language in (("ana@public.example", "ro"), ("bob@public.example", "en")):
        mailer.post(client(), {"email": address, "all_services": "on", "language": language})
        (confirmation,) = mails_to(smtp, address)
        assert client().post(confirm_link(confirmation)).status_code == 200
    smtp.messages.clear()
    with django_capture_on_commit_callbacks(execute=True):
        incident = workflow.create_incident(
            actor=agent, title="Refunds delayed", services={payments: ServiceStatus.MAJOR_OUTAGE}
        )
        workflow.post_update(
            incident,
            actor=agent,
            body="Refunds are delayed; we are on it.",
            body_ro="Rambursările întârzie; ne ocupăm.",
            is_public=True,
            public_status="investigating",
        )
        workflow.post_update(
            incident,
            actor=agent,
            body="Refunds are flowing again.",
            is_public=True,
            public_status="monitoring",
        )
    mailer.deliver()

    romanian = [text_of(m) for m in mails_to(smtp, "ana@public.example")]
    english = [text_of(m) for m in mails_to(smtp, "bob@public.example")]
    assert len(romanian) == len(english) == 2
    assert any("Rambursările întârzie; ne ocupăm." in t for t in romanian)
    assert not any("Refunds are delayed" in t for t in romanian)
    assert any("Refunds are delayed; we are on it." in t for t in english)
    assert not any("Rambursările" in t for t in english)
    # No Romanian text: the Romanian subscriber gets the English one.
    assert any("Refunds are flowing again." in t for t in romanian)

    from statuspage.publish import publish as publish_page

    publish_page()
    page_ro = client().get(f"/ro/incidents/{incident.pk}/").content.decode()
    page_en = client().get(f"/incidents/{incident.pk}/").content.decode()
    assert "Rambursările întârzie; ne ocupăm." in page_ro and "Refunds are flowing" in page_ro
    assert "Refunds are delayed; we are on it." in page_en and "Rambursările" not in page_en

"""One-click unsubscribe: a link signed per contact, and what clicking it does."""

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notifications.models import EmailOptOut, Notification, NotificationStatus
from services.models import Channel, Contact

# A salt per purpose (and format): a token signed for unsubscribing is worth nothing elsewhere.
SALT = "itsm.notifications.unsubscribe.v2"
# Links in mail sent before tokens carried a version and a date: ``<id>:<signature>``.
LEGACY_SALT = "itsm.notifications.unsubscribe"
VERSION = "v2"


class LinkExpired(Exception):
    """A link we did sign, but longer ago than links live (``UNSUBSCRIBE_LINK_MAX_AGE``)."""


def make_token(contact_id):
    """``v2:<id>:<timestamp>:<signature>``. Dated, so each email carries a fresh link and a
    leaked one dies with its age; signed with ``SECRET_KEY``, and still read after a rotation
    while the old key is in ``SECRET_KEY_FALLBACKS`` (Django's signer tries those too)."""
    return f"{VERSION}:{signing.TimestampSigner(salt=SALT).sign(str(contact_id))}"


def read_token(token):
    """The contact id in ``token``, or None when it is not one we signed. Raises
    :class:`LinkExpired` for a genuine link that is too old."""
    version, _sep, rest = token.partition(":")
    try:
        if version == VERSION:
            value = signing.TimestampSigner(salt=SALT).unsign(
                rest, max_age=settings.UNSUBSCRIBE_LINK_MAX_AGE
            )
        else:
            value = signing.Signer(salt=LEGACY_SALT).unsign(token)
            if timezone.now() >= settings.UNSUBSCRIBE_LEGACY_LINKS_UNTIL:
                raise LinkExpired
    except signing.SignatureExpired:
        raise LinkExpired from None
    except signing.BadSignature:
        return None
    return int(value) if value.isascii() and value.isdigit() else None


def unsubscribe_url(contact_id):
    path = reverse("statuspage:unsubscribe", args=[make_token(contact_id)])
    return f"{settings.SITE_URL}{path}"


def unsubscribe_contact(contact):
    """Stop all email to ``contact``: deactivate its email subscriptions, record the opt-out
    (it also covers organisation-wide subscriptions) and cancel its queued email. Idempotent."""
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        contact.subscriptions.filter(channel=Channel.EMAIL, is_active=True).update(is_active=False)
        # Nor the services added later ("all services" on the status page).
        Contact.objects.filter(pk=contact.pk).update(follows_all_services=False)
        EmailOptOut.objects.get_or_create(contact=contact)
        # Rows already claimed by a worker are checked again just before sending.
        Notification.objects.filter(
            contact=contact, channel=Channel.EMAIL, status=NotificationStatus.PENDING
        ).update(
            status=NotificationStatus.CANCELLED,
            last_error="unsubscribed",
            lease_expires_at=None,
        )
    return contact


def clear_opt_out(contact):
    """Lift ``contact``'s opt-out: its owner asked again and confirmed by email (the status
    page's double opt-in). Idempotent."""
    EmailOptOut.objects.filter(contact=contact).delete()


def is_opted_out(contact_id):
    return EmailOptOut.objects.filter(contact_id=contact_id).exists()


__all__ = [
    "LinkExpired",
    "clear_opt_out",
    "make_token",
    "read_token",
    "unsubscribe_url",
    "unsubscribe_contact",
]

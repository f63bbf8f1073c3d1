"""One-click unsubscribe: a link signed per contact, and what clicking it does."""

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse

from notifications.models import EmailOptOut, Notification, NotificationStatus
from services.models import Channel, Contact

# A salt per purpose: a token signed for unsubscribing is worth nothing anywhere else.
SALT = "itsm.notifications.unsubscribe"


def make_token(contact_id):
    """Never expires: an unsubscribe link in a year-old email must still work."""
    return signing.Signer(salt=SALT).sign(str(contact_id))


def read_token(token):
    """The contact id in ``token``, or None when it is not one we signed."""
    try:
        value = signing.Signer(salt=SALT).unsign(token)
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() else None


def unsubscribe_url(contact_id):
    path = reverse("statuspage:unsubscribe", args=[make_token(contact_id)])
    return f"{settings.SITE_URL}{path}"


def unsubscribe_contact(contact):
    """Stop all email to ``contact``: deactivate its email subscriptions, record the opt-out
    (it also covers organisation-wide subscriptions) and cancel its queued email. Idempotent."""
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        contact.subscriptions.filter(channel=Channel.EMAIL, is_active=True).update(is_active=False)
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


def is_opted_out(contact_id):
    return EmailOptOut.objects.filter(contact_id=contact_id).exists()


__all__ = ["make_token", "read_token", "unsubscribe_url", "unsubscribe_contact"]

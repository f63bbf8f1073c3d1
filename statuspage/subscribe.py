"""The public subscription: double opt-in by email, rate limited, saying nothing about who is
subscribed.

A public subscriber is a ``Contact`` without an organisation, with one email ``Subscription``
per chosen public service. Asking (``request_subscription``) writes the contact and inactive
("pending") subscriptions and queues one confirmation email through the outbox; nothing is sent
inside the request, and the outbox never mails an inactive subscription. Clicking the signed,
expiring link in that email (``confirm_subscription``) makes the chosen subscriptions exactly
the active ones.

Whether an address is subscribed already never shows: the caller gets the same answer for
every address. An address already subscribed (confirmed, with active subscriptions) is left
as it is and gets an email saying so, with a link that switches it to the services chosen now
and the one-click unsubscribe; only its owner reads that mail.

"All services" is one subscription per public service at the time of confirmation, and the
contact ``follows_all_services``: a public service added (or made public) later gets their
subscription when it is saved. Every public service can be chosen; the audience of an incident
(the outbox's dependency closure) decides who hears.

Rate limits (Django's cache, fixed one-hour windows): ``SUBSCRIBE_RATE_PER_ADDRESS`` (5) per
address and ``SUBSCRIBE_RATE_PER_IP`` (20) per client address, ``SUBSCRIBE_RATE_WINDOW``
seconds (3600). A request over either limit changes nothing and sends nothing. A cache that
does not answer lets the request through (logged): the limits guard against floods, they are
not a security boundary, and the status page is wanted most when things are down.
"""

import hashlib
import logging
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from notifications.models import EventKind
from notifications.outbox import notify_contact
from notifications.unsubscribe import clear_opt_out
from services.models import Channel, Contact, Language, Subscription
from statuspage import public

logger = logging.getLogger(__name__)

SALT = "itsm.statuspage.subscribe.v1"
DEFAULT_CONFIRM_MAX_AGE = 48 * 3600
DEFAULT_RATE_PER_ADDRESS = 5
DEFAULT_RATE_PER_IP = 20
DEFAULT_RATE_WINDOW = 3600


class RateLimited(Exception):
    """Too many requests from this client address or for this email address."""


class LinkExpired(Exception):
    """A confirmation link we signed, but longer ago than ``SUBSCRIBE_CONFIRM_MAX_AGE``."""


class InvalidLink(Exception):
    """Not a confirmation link we signed (or its subscriber is gone)."""


def _setting(name, default):
    return getattr(settings, name, default)


def confirm_max_age():
    return int(_setting("SUBSCRIBE_CONFIRM_MAX_AGE", DEFAULT_CONFIRM_MAX_AGE))


# --- validation -------------------------------------------------------------------------------


def normalise_email(email):
    return (email or "").strip()


def clean_request(email, service_ids, language):
    """(email, public services or None for all, language), or ValidationError keyed by field."""
    errors = {}
    email = normalise_email(email)
    try:
        validate_email(email)
        if len(email) > Contact._meta.get_field("email").max_length:
            raise ValidationError("too long")
    except ValidationError:
        errors["email"] = [_("Enter a valid email address.")]
    services = None
    if service_ids is not None:
        try:
            wanted = {int(pk) for pk in service_ids}
        except (TypeError, ValueError):
            wanted = None
        found = list(public.public_services().filter(pk__in=wanted)) if wanted else []
        if not wanted or len(found) != len(wanted):
            errors["services"] = [_("Choose one or more of the services listed, or all services.")]
        services = found
    if language not in Language.values:
        errors["language"] = [_("Choose English or Romanian.")]
    if errors:
        raise ValidationError(errors)
    return email, services, language


# --- rate limits ------------------------------------------------------------------------------


def _digest(value):
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _over_limit(key, limit, window):
    """Count one hit on ``key``; True when that makes more than ``limit`` in the window."""
    cache.add(key, 0, timeout=window)
    try:
        hits = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        hits = 1
    return hits > limit


def check_rate_limits(email, client_ip):
    """Raise RateLimited when this address or this client asked too often."""
    window = int(_setting("SUBSCRIBE_RATE_WINDOW", DEFAULT_RATE_WINDOW))
    checks = [
        (
            f"subscribe:ip:{_digest(client_ip or 'unknown')}",
            int(_setting("SUBSCRIBE_RATE_PER_IP", DEFAULT_RATE_PER_IP)),
        ),
        (
            f"subscribe:address:{_digest(email.lower())}",
            int(_setting("SUBSCRIBE_RATE_PER_ADDRESS", DEFAULT_RATE_PER_ADDRESS)),
        ),
    ]
    try:
        limited = [_over_limit(key, limit, window) for key, limit in checks]
    except Exception:  # noqa: BLE001 - a cache outage must not take the page down
        logger.warning("subscribe rate limit not checked: the cache did not answer", exc_info=True)
        return
    if any(limited):
        raise RateLimited


# --- tokens -----------------------------------------------------------------------------------


def make_token(contact_id, service_ids, language):
    """A signed, dated token naming the contact and what it asked for (service ids, or None
    for all services). The selection travels in the token, so a subscriber who is already
    confirmed keeps what they have until they click."""
    value = {"c": contact_id, "s": sorted(service_ids) if service_ids is not None else None}
    value["l"] = language
    return signing.dumps(value, salt=SALT, compress=True)


def read_token(token):
    try:
        value = signing.loads(token, salt=SALT, max_age=confirm_max_age())
    except signing.SignatureExpired:
        raise LinkExpired from None
    except signing.BadSignature:
        raise InvalidLink from None
    if not isinstance(value, dict) or not isinstance(value.get("c"), int):
        raise InvalidLink
    return value


def confirm_url(token):
    return f"{settings.SITE_URL}{reverse('statuspage:subscribe_confirm', args=[token])}"


# --- the two steps ----------------------------------------------------------------------------


def _public_contact(email, language):
    """The public subscriber for ``email`` (any letter case), created when new; locked."""
    found = (
        Contact.objects.select_for_update(of=("self",))
        .filter(organization__isnull=True, email__iexact=email)
        .order_by("pk")
        .first()
    )
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Contact.objects.create(
                organization=None, name=email[:150], email=email, language=language
            )
    except IntegrityError:  # created by a concurrent request meanwhile
        return (
            Contact.objects.select_for_update(of=("self",))
            .filter(organization__isnull=True, email__iexact=email)
            .get()
        )


def _is_subscribed(contact):
    return contact.confirmed_at is not None and (
        contact.subscriptions.filter(channel=Channel.EMAIL, is_active=True).exists()
    )


def _site_name():
    return _setting("STATUS_PAGE_NAME", "") or urlsplit(settings.SITE_URL).hostname or "itsm"


def request_subscription(email, service_ids, language, client_ip):
    """Ask for a subscription of ``email`` to the public services ``service_ids`` (None: all),
    in ``language``: validate (ValidationError keyed by field), rate limit (RateLimited),
    then write the pending subscription and queue one confirmation email. Returns None,
    whoever the address is."""
    email, services, language = clean_request(email, service_ids, language)
    check_rate_limits(email, client_ip)
    chosen = services if services is not None else list(public.public_services())
    with transaction.atomic():
        contact = _public_contact(email, language)
        already = _is_subscribed(contact)
        if not already:
            # Pending: inactive until confirmed, so the outbox never mails them. A second
            # request before confirming replaces the first one's choice.
            contact.subscriptions.filter(channel=Channel.EMAIL, is_active=False).exclude(
                service__in=chosen
            ).delete()
            for service in chosen:
                Subscription.objects.get_or_create(
                    contact=contact,
                    service=service,
                    channel=Channel.EMAIL,
                    webhook_url="",
                    defaults={"is_active": False},
                )
        token = make_token(
            contact.pk, [s.pk for s in services] if services is not None else None, language
        )
        notify_contact(
            kind=EventKind.SUBSCRIPTION_CONFIRMATION,
            key=f"subscribe:{contact.pk}:{uuid.uuid4().hex}",
            contact=contact,
            language=language,
            payload={
                "confirm_url": confirm_url(token),
                "already_subscribed": already,
                "all_services": services is None,
                "services": [s.name for s in chosen],
                "site_name": _site_name(),
                "site_url": settings.SITE_URL,
                "valid_hours": confirm_max_age() // 3600,
            },
        )


@dataclass(frozen=True)
class Confirmed:
    """What a confirmation link subscribes to (before the click) or subscribed to (after)."""

    contact: Contact
    services: list
    all_services: bool
    language: str


def _asked_for(value):
    """The language and public services a token's value names (all public ones for None)."""
    language = value.get("l") if value.get("l") in Language.values else Language.EN
    wanted = value.get("s")
    services = public.public_services()
    if wanted is not None:
        services = services.filter(pk__in=[int(pk) for pk in wanted])
    return language, wanted is None, list(services)


def preview_subscription(token):
    """What ``confirm_subscription(token)`` would do, changing nothing (the page a GET of the
    link shows). Raises LinkExpired or InvalidLink."""
    value = read_token(token)
    contact = Contact.objects.filter(pk=value["c"], organization__isnull=True).first()
    if contact is None:
        raise InvalidLink
    language, all_services, services = _asked_for(value)
    return Confirmed(
        contact=contact, services=services, all_services=all_services, language=language
    )


def confirm_subscription(token):
    """Activate what the token asked for: its services become exactly the subscriber's active
    email subscriptions (an earlier opt-out is lifted: the owner of the address asked twice).
    Idempotent. Raises LinkExpired or InvalidLink."""
    value = read_token(token)
    with transaction.atomic():
        contact = (
            Contact.objects.select_for_update(of=("self",))
            .filter(pk=value["c"], organization__isnull=True)
            .order_by("pk")
            .first()
        )
        if contact is None:
            raise InvalidLink
        language, all_services, services = _asked_for(value)
        email = contact.subscriptions.filter(channel=Channel.EMAIL)
        email.exclude(service__in=services).filter(is_active=True).update(is_active=False)
        for service in services:
            subscription, created = Subscription.objects.get_or_create(
                contact=contact,
                service=service,
                channel=Channel.EMAIL,
                webhook_url="",
                defaults={"is_active": True},
            )
            if not created and not subscription.is_active:
                Subscription.objects.filter(pk=subscription.pk).update(is_active=True)
        contact.language = language
        contact.follows_all_services = all_services
        if contact.confirmed_at is None:
            contact.confirmed_at = timezone.now()
        contact.save(update_fields=["language", "follows_all_services", "confirmed_at"])
        clear_opt_out(contact)
    return Confirmed(
        contact=contact, services=services, all_services=all_services, language=language
    )


__all__ = [
    "Confirmed",
    "InvalidLink",
    "LinkExpired",
    "RateLimited",
    "check_rate_limits",
    "clean_request",
    "confirm_subscription",
    "make_token",
    "preview_subscription",
    "read_token",
    "request_subscription",
]

"""Named reads over the outbox."""

from notifications.models import Notification


def notifications_for_incident(incident):
    """Who was told about ``incident``, through which channel, when and with what result."""
    return (
        Notification.objects.filter(event__incident=incident)
        .select_related("event", "contact", "user", "subscription")
        .order_by("-created_at", "-id")
    )

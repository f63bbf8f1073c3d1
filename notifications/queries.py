"""Named reads over the outbox."""

from notifications.models import Notification, NotificationEvent


def notifications_for_incident(incident):
    """Who was told about ``incident``, through which channel, when and with what result. Rows
    appear as workers expand each event; ``events_being_expanded`` says which are not done."""
    return (
        Notification.objects.filter(event__incident=incident)
        .select_related("event", "contact", "user", "subscription")
        .order_by("-created_at", "-id")
    )


def events_being_expanded(incident):
    """Events about ``incident`` whose recipients workers are still writing: a page listing who
    was notified should say "being prepared" for these, not "nobody"."""
    return NotificationEvent.objects.filter(incident=incident, expanded_at__isnull=True).order_by(
        "created_at", "id"
    )

"""Named reads over the outbox, by the subject an event names (kind and id): the app that owns
the subject (``incidents.notify`` for an incident) asks with its own kind."""

from notifications.models import Notification, NotificationEvent


def notifications_about(subject_kind, subject_id):
    """Who was told about the subject, through which channel, when and with what result. Rows
    appear as workers expand each event; ``events_being_expanded`` says which are not done."""
    return (
        Notification.objects.filter(event__subject_kind=subject_kind, event__subject_id=subject_id)
        .select_related("event", "contact", "user", "subscription")
        .order_by("-created_at", "-id")
    )


def events_being_expanded(subject_kind, subject_id):
    """Events about the subject whose recipients workers are still writing: a page listing who
    was notified should say "being prepared" for these, not "nobody"."""
    return NotificationEvent.objects.filter(
        subject_kind=subject_kind, subject_id=subject_id, expanded_at__isnull=True
    ).order_by("created_at", "id")

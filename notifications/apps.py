from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self):
        # Registers the tasks in every process (web, worker, beat): delivery sends them by name.
        import notifications.tasks  # noqa: F401

        # The catalog sits below notifications and cannot import the outbox: it announces
        # maintenance through this port, called inside its own transaction.
        from notifications.outbox import cancel_maintenance_events, enqueue_maintenance_event
        from services import announcements

        announcements.register_outbox(enqueue_maintenance_event, cancel_maintenance_events)
        # Integrators' webhook endpoints hear of maintenance through a port of the same kind.
        from notifications.webhooks import tell_integrators_of_maintenance

        announcements.register_integrators(tell_integrators_of_maintenance)

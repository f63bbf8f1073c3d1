from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = _("Incidents")

    def ready(self):
        # The incident read rule, for apps that link to incidents without importing this one
        # (the problems admin counts, the notifications admin hides events about incidents the
        # reader cannot see).
        from incidents import visibility
        from incidents.models import Incident
        from itsm.actors import register_scope, register_subject

        register_scope("incident", visibility.visible_q)
        register_subject("incident", visibility.visible_ids(Incident))

        # The outbox names its subject without a foreign key (notifications know no incident),
        # so no cascade reaches it: a deleted incident tells it itself.
        from django.db.models.signals import post_delete

        from incidents.notify import withdraw_notifications

        post_delete.connect(
            withdraw_notifications, sender=Incident, dispatch_uid="incident-withdraw-notifications"
        )

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServicesConfig(AppConfig):
    name = "services"
    verbose_name = _("Service catalog")

    def ready(self):
        from django.db.models.signals import post_delete

        from services.announcements import withdraw_announcements
        from services.models import MaintenanceWindow

        post_delete.connect(
            withdraw_announcements,
            sender=MaintenanceWindow,
            dispatch_uid="maintenance-withdraw-announcements",
        )

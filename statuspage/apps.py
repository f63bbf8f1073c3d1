from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StatuspageConfig(AppConfig):
    name = "statuspage"
    verbose_name = _("Status page")

    def ready(self):
        # Registers the tasks in every process: changes ask for a publish by the task's name.
        import statuspage.tasks  # noqa: F401

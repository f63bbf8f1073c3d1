"""Every registered admin refuses input that is not a value (itsm.admin_input).

``itsm`` is the last installed app, so the admin's autodiscovery imports this module after every
other ``admin.py``, ours and third-party (auth, django-axes): each admin registered by then is
re-registered as a subclass with the mixin first, and a new admin gets it without being told.
"""

from axes.admin import AccessAttemptAdmin
from axes.handlers.proxy import AxesProxyHandler
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from itsm.admin_input import SafeInputMixin


class AxesCleanupMixin:
    """django-axes' "Clean up expired attempts" reads the request's attempt time, which only its
    login path sets: run from the admin it raised AttributeError (a 500) every time."""

    @admin.action(description=_("Clean up expired attempts"))
    def cleanup_expired_attempts(self, request, queryset):
        AxesProxyHandler.update_request(request)
        return super().cleanup_expired_attempts(request, queryset)


FIXES = {AccessAttemptAdmin: (AxesCleanupMixin,)}


def harden(site):
    for model, model_admin in list(site._registry.items()):
        cls = type(model_admin)
        if isinstance(model_admin, SafeInputMixin):
            continue
        bases = (SafeInputMixin, *FIXES.get(cls, ()), cls)
        site.unregister(model)
        site.register(model, type(cls.__name__, bases, {"__module__": cls.__module__}))


harden(admin.site)

"""Every registered admin refuses input that is not a value (itsm.admin_input).

``itsm`` is the last installed app, so the admin's autodiscovery imports this module after every
other ``admin.py``, ours and third-party (auth, django-axes): each admin registered by then is
re-registered as a subclass with the mixin first, and a new admin gets it without being told.
"""

from axes.admin import AccessAttemptAdmin
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from itsm import tokens
from itsm.admin_input import SafeInputMixin
from itsm.models import ApiToken, TokenScope


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"),
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "read: every resource the token may see; write: also work incidents and manage "
            "subscriptions; admin: also the catalog; integration: alerts that open incidents."
        ),
    )

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", "organization", "expires_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued here (the secret is shown once, on the page after saving), renamed,
    given an expiry, and revoked; never shown again or edited into another organisation."""

    form = ApiTokenForm
    list_display = [
        "name",
        "key",
        "scope_list",
        "organization",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "created_at",
    ]
    list_filter = ["revoked_at", "organization"]
    search_fields = ["name", "key"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["key", "last_used_at", "revoked_at", "created_by", "created_at"]
    actions = ["revoke"]

    @admin.display(description=_("scopes"))
    def scope_list(self, token):
        return ", ".join(token.scopes)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # A token's reach is fixed when it is issued: a new reach is a new token.
        return [*self.readonly_fields, "scopes", "organization"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "scopes", "organization", "expires_at"]
        return [
            "name",
            "key",
            "scopes",
            "organization",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "created_by",
            "created_at",
        ]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, secret = tokens.issue(
            name=obj.name,
            scopes=form.cleaned_data["scopes"],
            organization=obj.organization,
            expires_at=obj.expires_at,
            created_by=request.user,
        )
        obj.__dict__.update({k: v for k, v in token.__dict__.items() if k != "_state"})
        obj._state.adding, obj._state.db = False, token._state.db
        request._issued_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        # The secret goes on this page only: not in a message (kept in a cookie or the session)
        # and not in a log.
        return TemplateResponse(
            request,
            "admin/itsm/apitoken/created.html",
            {
                **self.admin_site.each_context(request),
                "token": obj,
                "secret": request._issued_secret,
                "changelist_url": reverse("admin:itsm_apitoken_changelist"),
                "opts": self.model._meta,
            },
        )

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request, queryset):
        count = tokens.revoke(queryset)
        self.message_user(
            request,
            ngettext("%(count)d token revoked.", "%(count)d tokens revoked.", count)
            % {"count": count},
            messages.SUCCESS,
        )


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

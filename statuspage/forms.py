"""Forms of the public site."""

from django import forms
from django.utils.translation import gettext_lazy as _

from services.models import Language
from statuspage import public


class SubscribeForm(forms.Form):
    """Email, the public services to hear about (or all of them), and the language of the
    emails. The rules live in ``statuspage.subscribe.clean_request``; this form only shapes the
    input and shows its errors."""

    email = forms.CharField(label=_("Email address"), max_length=254, strip=True)
    all_services = forms.BooleanField(label=_("All services"), required=False, initial=True)
    services = forms.TypedMultipleChoiceField(
        label=_("Services"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    language = forms.ChoiceField(
        label=_("Language of the emails"), choices=Language.choices, initial=Language.EN
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs.update(
            {"type": "email", "autocomplete": "email", "inputmode": "email"}
        )
        self.fields["email"].widget.input_type = "email"
        # Any integer is accepted here; whether it names a public service is decided by
        # ``clean_request`` (one message for an unknown and a private service alike).
        self.fields["services"].choices = [(s.pk, s.name) for s in public.public_services()]
        self.fields["services"].valid_value = lambda value: True

    def clean(self):
        data = super().clean()
        if (
            not data.get("all_services")
            and not data.get("services")
            and "services" not in (self.errors)
        ):
            self.add_error("services", _("Choose one or more services, or all services."))
        return data

    def service_ids(self):
        """The chosen service ids, or None for all services."""
        if self.cleaned_data.get("all_services"):
            return None
        return list(self.cleaned_data.get("services") or [])

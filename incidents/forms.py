"""Forms of the incident admin. They parse input; the rules live in ``incidents.workflow``."""

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from incidents.models import Incident, PublicStatus, ResolutionCode
from problems.models import Problem, ProblemState
from services.models import Language


class IncidentForm(forms.ModelForm):
    """The change form carries the version it was loaded with, so a save can be refused when
    someone else changed the incident meanwhile."""

    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Incident
        # The admin narrows these per page (add or change); all of them go to the workflow.
        fields = [
            "title",
            "description",
            "impact",
            "urgency",
            "source",
            "organization",
            "contact",
            "assignee",
            "assignment_group",
            "is_major",
            "commander",
            "communications_lead",
            "problem",
            "is_confidential",
        ]

    PEOPLE_FIELDS = ("assignee", "commander", "communications_lead")

    # A save the workflow refused (``workflow.StaleVersion``), set by the admin to show the form
    # again with what was typed and the error beside the fields that clash.
    refusal = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["loaded_version"].initial = self.instance.version
            # Each field carries the value it was loaded with, so "what did this person change"
            # is measured against the version they saw, not against a colleague's later save:
            # a field they left alone never overwrites what someone changed meanwhile.
            for name, field in self.fields.items():
                if name != "loaded_version":
                    field.show_hidden_initial = True
        # Three lists of the same people: read them once, not once per select box.
        people = None
        for name in self.PEOPLE_FIELDS:
            field = self.fields.get(name)
            if field is None:
                continue
            if people is None:
                people = [("", field.empty_label)] + [
                    (user.pk, field.label_from_instance(user)) for user in field.queryset
                ]
            field.choices = people

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and cleaned.get("loaded_version") is None:
            # Without it a save could silently overwrite someone else's change.
            raise forms.ValidationError(
                _(
                    "This form does not say which version of the incident it was loaded from; "
                    "reload the page and make your change again."
                )
            )
        if self.refusal is not None:
            self._show_refusal(self.refusal)
        return cleaned

    def _show_refusal(self, refusal):
        field = getattr(refusal, "field", None)
        if field in self.fields and field not in self.errors:
            self.add_error(field, str(refusal))
            return
        self.add_error(None, str(refusal))
        for name in sorted(getattr(refusal, "fields", ()) or ()):
            if name in self.fields and name in self.changed_data and name not in self.errors:
                self.add_error(
                    name,
                    _(
                        "Changed meanwhile by someone else (now: %(value)s). Your value is kept "
                        "here: save again to replace theirs, or put theirs back."
                    )
                    % {"value": _display(self.instance, name)},
                )


def _display(instance, name):
    """A field's current value as a person reads it."""
    getter = getattr(instance, f"get_{name}_display", None)
    value = getter() if getter else getattr(instance, name)
    if value in (None, ""):
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return str(value)


def staff_users():
    """People an incident can be given to: active staff, a short list even on a big site."""
    return get_user_model().objects.filter(is_active=True, is_staff=True).order_by("username")


class HoldForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=200)


class ResolveForm(forms.Form):
    code = forms.ChoiceField(label=_("resolution code"), choices=ResolutionCode.choices)
    notes = forms.CharField(label=_("resolution notes"), widget=forms.Textarea(attrs={"rows": 3}))
    public_message = forms.CharField(
        label=_("public message"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Sent to subscribers if the incident is public; a default text otherwise."),
    )


class ReopenForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=500, required=False)


class UpdateForm(forms.Form):
    """A new work note or public update, and the language to preview its email in."""

    body = forms.CharField(label=_("message"), widget=forms.Textarea(attrs={"rows": 4}))
    body_ro = forms.CharField(
        label=_("message in Romanian"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text=_(
            "Optional, for a public update: Romanian subscribers and the Romanian status page "
            "get this text; without it they get the message above."
        ),
    )
    is_public = forms.BooleanField(label=_("public update"), required=False)
    public_status = forms.ChoiceField(
        label=_("public status"),
        choices=[("", "—"), *PublicStatus.choices],
        required=False,
    )
    language = forms.ChoiceField(
        label=_("preview language"), choices=Language.choices, required=False
    )


class LinkProblemForm(forms.Form):
    problem = forms.ModelChoiceField(
        label=_("problem"),
        queryset=Problem.objects.exclude(state=ProblemState.CLOSED).order_by("-created_at"),
    )


class ProblemFromIncidentsForm(forms.Form):
    """A new problem for the selected incidents (the incident list's bulk action)."""

    title = forms.CharField(label=_("problem title"), max_length=200)
    description = forms.CharField(
        label=_("description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


class ResolveLinkedForm(forms.Form):
    """Resolve a resolved problem's open incidents together: which ones, with what notes."""

    incidents = forms.TypedMultipleChoiceField(
        label=_("incidents to resolve"), coerce=int, widget=forms.CheckboxSelectMultiple
    )
    code = forms.ChoiceField(
        label=_("resolution code"), choices=ResolutionCode.choices, initial=ResolutionCode.FIXED
    )
    notes = forms.CharField(label=_("resolution notes"), widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, incidents, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["incidents"].choices = [(i.pk, str(i)) for i in incidents]
        self.fields["incidents"].initial = [i.pk for i in incidents]

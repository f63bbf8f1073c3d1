"""Problems worked in the admin: the list with its filters, the change page with the buttons
the state allows and the timeline. Every write goes through ``problems.workflow``; the views
only translate its errors into messages. Resolving offers the problem's open incidents for
resolution together: that page belongs to the incident admin (problems sit below incidents).
"""

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import construct_change_message
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from itsm.actors import ActorKind, scope_q
from itsm.admin_changelist import SafeLookupMixin
from problems import workflow
from problems.models import Problem, ProblemEvent, parse_reference
from services.models import Service


def _parse_id(text):
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 19 else None


# --- forms -------------------------------------------------------------------------------------


class ProblemForm(forms.ModelForm):
    """The change form carries the version it was loaded with: a save over someone else's
    change is refused (``workflow.StaleVersion``)."""

    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Problem
        fields = [
            "title",
            "description",
            "priority",
            "services",
            "owner",
            "group",
            "root_cause",
            "workaround",
            "permanent_fix",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["loaded_version"].initial = self.instance.version

    def clean(self):
        cleaned = super().clean()
        refusal = getattr(self, "refusal", None)
        if refusal is not None:
            field = refusal.field if refusal.field in self.fields else None
            self.add_error(field, str(refusal))
        return cleaned


class KnownErrorForm(forms.Form):
    workaround = forms.CharField(
        label=gettext_lazy("workaround"), widget=forms.Textarea({"rows": 3})
    )
    root_cause = forms.CharField(
        label=gettext_lazy("root cause"), required=False, widget=forms.Textarea({"rows": 2})
    )


class ResolveProblemForm(forms.Form):
    permanent_fix = forms.CharField(
        label=gettext_lazy("permanent fix"), widget=forms.Textarea({"rows": 3})
    )
    root_cause = forms.CharField(
        label=gettext_lazy("root cause"), required=False, widget=forms.Textarea({"rows": 2})
    )


class ReopenProblemForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("reason"), max_length=500)


@dataclass(frozen=True)
class Transition:
    label: Any
    done: Any
    call: Any
    form: Any = None


TRANSITIONS = {
    "start_investigation": Transition(
        label=gettext_lazy("Start investigating"),
        done=gettext_lazy("%(reference)s is being investigated."),
        call=lambda p, user, version, data: workflow.start_investigation(
            p, actor=user, expected_version=version
        ),
    ),
    "record_known_error": Transition(
        label=gettext_lazy("Record a known error"),
        done=gettext_lazy("%(reference)s is a known error; its workaround is offered to agents."),
        call=lambda p, user, version, data: workflow.record_known_error(
            p,
            actor=user,
            workaround=data["workaround"],
            root_cause=data["root_cause"] or None,
            expected_version=version,
        ),
        form=KnownErrorForm,
    ),
    "resolve": Transition(
        label=gettext_lazy("Resolve"),
        done=gettext_lazy("%(reference)s resolved."),
        call=lambda p, user, version, data: workflow.resolve(
            p,
            actor=user,
            permanent_fix=data["permanent_fix"],
            root_cause=data["root_cause"] or None,
            expected_version=version,
        ),
        form=ResolveProblemForm,
    ),
    "close": Transition(
        label=gettext_lazy("Close"),
        done=gettext_lazy("%(reference)s closed."),
        call=lambda p, user, version, data: workflow.close(p, actor=user, expected_version=version),
    ),
    "reopen": Transition(
        label=gettext_lazy("Reopen"),
        done=gettext_lazy("%(reference)s reopened."),
        call=lambda p, user, version, data: workflow.reopen(
            p, actor=user, reason=data["reason"], expected_version=version
        ),
        form=ReopenProblemForm,
    ),
}


def buttons_for(problem, refused=None):
    legal = workflow.legal_actions(problem)
    refused = refused or {}
    shown = []
    for name, transition in TRANSITIONS.items():
        if name not in legal:
            continue
        is_refused = refused.get("button") == name
        form = refused["form"] if is_refused else None
        if form is None and transition.form:
            form = transition.form(auto_id=f"id_{name}_%s")
        shown.append(
            {
                "name": name,
                "label": transition.label,
                "url": reverse("admin:problems_problem_act", args=[problem.pk, name]),
                "form": form,
                "open": is_refused,
            }
        )
    return shown


# --- filters -----------------------------------------------------------------------------------


class ServiceFilter(admin.SimpleListFilter):
    title = gettext_lazy("affected service")
    parameter_name = "service"

    def lookups(self, request, model_admin):
        return list(Service.objects.order_by("name").values_list("pk", "name"))

    def queryset(self, request, queryset):
        pk = _parse_id(self.value())
        if pk is not None:
            through = Problem.services.through
            return queryset.filter(
                pk__in=through.objects.filter(service_id=pk).values("problem_id")
            )
        return queryset


# --- the admin ---------------------------------------------------------------------------------


class TimelineInline(admin.TabularInline):
    model = ProblemEvent
    fields = ["at", "actor_column", "kind", "change", "note"]
    readonly_fields = fields
    verbose_name_plural = gettext_lazy("timeline")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("actor"))
    def actor_column(self, obj):
        return _("system") if obj.actor_kind == ActorKind.SYSTEM else (obj.actor_label or "—")

    @admin.display(description=gettext_lazy("change"))
    def change(self, obj):
        return describe_change(obj.old_value, obj.new_value)


def _plain(value):
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) or "—"
    if isinstance(value, dict) and "label" in value:
        return str(value["label"])
    return "—" if value in (None, "") else str(value)


def describe_change(old, new):
    """A timeline event's from/to in words: "title: A → B; priority: 3 → 1"."""
    if old is None and new is None:
        return ""
    if (isinstance(old, dict) and "label" not in old) or (
        isinstance(new, dict) and "label" not in new
    ):
        old, new = old or {}, new or {}
        return "; ".join(
            f"{key}: {_plain(old[key])} → {_plain(new.get(key))}"
            if key in old
            else f"{key}: {_plain(new.get(key))}"
            for key in sorted({*old, *new})
        )
    return f"{_plain(old)} → {_plain(new)}"


LINKED_SHOWN = 50
EDIT_FIELDS = workflow.EDITABLE_FIELDS + ("services",)


@admin.register(Problem)
class ProblemAdmin(SafeLookupMixin, admin.ModelAdmin):
    form = ProblemForm
    list_display = [
        "reference",
        "title",
        "state",
        "priority",
        "owner",
        "group",
        "incident_count",
        "created_at",
    ]
    list_display_links = ["reference", "title"]
    list_filter = ["state", "priority", ServiceFilter, "owner", "group"]
    list_select_related = ["owner", "group__group"]
    search_fields = ["title"]
    search_help_text = gettext_lazy(
        "A problem reference (PRB-000012 or 12), or words of the title."
    )
    autocomplete_fields = ["services"]
    raw_id_fields = ["owner"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    # The model's ordering is dropped by the aggregate below (GROUP BY): say it here, or the
    # autocomplete pages an unordered list.
    ordering = ["-created_at", "-id"]
    inlines = [TimelineInline]
    change_form_template = "admin/problems/problem/change_form.html"
    readonly_on_change = [
        "reference",
        "state",
        "version",
        "created_at",
        "investigating_at",
        "known_error_at",
        "resolved_at",
        "closed_at",
    ]

    def get_queryset(self, request):
        # One aggregate in the page query, not a count per row; only the incidents the person
        # may see are counted (a confidential one must not show even as a number).
        visible = scope_q("incident", request.user, prefix="incidents__")
        return (
            super()
            .get_queryset(request)
            .visible_to(request.user)
            .annotate(linked_incidents=Count("incidents", filter=visible))
        )

    def get_search_results(self, request, queryset, search_term):
        pk = parse_reference(search_term) if search_term else None
        if pk is not None:
            return queryset.filter(pk=pk), False
        return super().get_search_results(request, queryset, search_term)

    def get_fieldsets(self, request, obj=None):
        main = ["title", "description", ("priority", "owner", "group"), "services"]
        if obj is None:
            return [(None, {"fields": main})]
        return [
            (None, {"fields": [("reference", "state"), *main, "loaded_version"]}),
            (
                gettext_lazy("Cause and fix"),
                {"fields": ["root_cause", "workaround", "permanent_fix"]},
            ),
            (
                gettext_lazy("Lifecycle"),
                {
                    "fields": [
                        ("created_at", "investigating_at", "known_error_at"),
                        ("resolved_at", "closed_at", "version"),
                    ]
                },
            ),
        ]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_on_change if obj else []

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    @admin.display(description=gettext_lazy("reference"), ordering="pk")
    def reference(self, obj):
        return obj.reference

    @admin.display(description=gettext_lazy("linked incidents"), ordering="linked_incidents")
    def incident_count(self, obj):
        return obj.linked_incidents

    # --- writes through the workflow -----------------------------------------------------------

    def has_work_permission(self, request, obj=None):
        return request.user.has_perm(workflow.ACTION_PERMISSIONS["resolve"])

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data if f in EDIT_FIELDS}
            if changes:
                workflow.edit(
                    obj,
                    actor=request.user,
                    expected_version=data.get("loaded_version"),
                    changes=changes,
                )
            return
        problem = workflow.create_problem(
            actor=request.user,
            title=data["title"],
            description=data["description"],
            priority=data["priority"],
            services=data["services"],
            owner=data["owner"],
            group=data["group"],
        )
        obj.pk = problem.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        """Nothing: the services went to the workflow with the rest."""

    def construct_change_message(self, request, form, formsets, add=False):
        return construct_change_message(form, [], add)  # the timeline inline is read-only

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "itsm_refusal", None)
        if refusal is not None:
            form = type(form.__name__, (form,), {"refusal": refusal})
        return form

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id:
            extra_context = {
                **(extra_context or {}),
                **self._change_page_context(request, object_id, extra_context or {}),
            }
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except workflow.WorkflowError as exc:
            if request.method != "POST":
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            # The save rolled back whole; the form comes back with what was typed.
            request.itsm_refusal = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def _change_page_context(self, request, object_id, extra_context):
        pk = _parse_id(object_id)
        problem = self.get_queryset(request).filter(pk=pk).first() if pk is not None else None
        if problem is None:
            return {}
        can_work = self.has_work_permission(request, problem)
        visible = scope_q("incident", request.user)
        linked = problem.incidents.all() if visible is None else problem.incidents.filter(visible)
        return {
            "problem": problem,
            "linked_incidents": list(linked.order_by("-pk")[:LINKED_SHOWN]),
            "workflow_buttons": buttons_for(problem, extra_context.get("refused"))
            if can_work
            else [],
            "resolve_incidents_url": reverse(
                "admin:incidents_incident_resolve_for_problem", args=[problem.pk]
            ),
            "can_work": can_work,
        }

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/act/<str:action>/",
                wrap(self.transition_view),
                name="problems_problem_act",
            ),
            *super().get_urls(),
        ]

    def transition_view(self, request, object_id, action):
        transition = TRANSITIONS.get(action)
        if transition is None:
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_work_permission(request):
            raise PermissionDenied
        pk = _parse_id(object_id)
        if pk is None:
            raise Http404
        problem = get_object_or_404(self.get_queryset(request), pk=pk)
        change_page = reverse("admin:problems_problem_change", args=[problem.pk])
        version = _parse_id(request.POST.get("version", ""))
        if version is None:
            messages.error(request, _("The page was missing the problem's version; reload it."))
            return HttpResponseRedirect(change_page)
        form = None
        if transition.form:
            form = transition.form(request.POST, auto_id=f"id_{action}_%s")
            if not form.is_valid():
                return self._show_again(request, problem, form, action)
        try:
            transition.call(problem, request.user, version, form.cleaned_data if form else {})
        except workflow.WorkflowError as exc:
            if form is None:
                messages.error(request, str(exc))
                return HttpResponseRedirect(change_page)
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            return self._show_again(request, problem, form, action, reason=str(exc))
        messages.success(request, transition.done % {"reference": problem.reference})
        if action == "resolve":
            # Its open incidents, offered for resolution together (the incident admin's page
            # sends straight back here when there are none).
            return HttpResponseRedirect(
                reverse("admin:incidents_incident_resolve_for_problem", args=[problem.pk])
            )
        return HttpResponseRedirect(change_page)

    def _show_again(self, request, problem, form, button, reason=None):
        messages.error(
            request, reason or _("Nothing was saved: correct what is marked by the form.")
        )
        request.method = "GET"
        return self.change_view(
            request, str(problem.pk), extra_context={"refused": {"button": button, "form": form}}
        )

"""The service desk: incidents worked in the admin.

Every write goes through ``incidents.workflow``: the change form's save, the buttons on the change
page and the changelist's bulk actions only translate its errors into messages. Reads come from
``incidents.selectors``. The changelist stays fast over a million incidents: no exact COUNT(*)
per page, joins and one prefetch so the query count does not grow with the page size.
"""

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import construct_change_message, unquote
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.paginator import Paginator
from django.db import connections
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from incidents import admin_metrics, admin_views, recurrence, selectors, workflow  # noqa: F401 (registers)
from incidents.admin_cost import CostColumnsMixin
from incidents.admin_reviews import ReviewActionsMixin
from incidents.deadlines import explain_lines
from incidents.forms import IncidentForm, staff_users
from incidents.models import (
    Alert,
    AlertGroup,
    AlertRule,
    Incident,
    IncidentEvent,
    IncidentService,
    IncidentState,
    PriorityMatrixEntry,
    RejectedPayload,
    SlaSignal,
    SlaTargetKind,
    parse_id,
    parse_reference,
)
from incidents.sla_text import sla_summary
from incidents.timeline_text import with_update_text
from itsm.actors import ActorKind
from itsm.admin_changelist import SafeLookupMixin
from problems import workflow as problem_workflow
from problems.models import ProposalState, RecurrenceProposal
from services.models import Service, ServiceStatus

# --- counting without COUNT(*) -----------------------------------------------------------------


def estimated_row_count(model, using):
    """PostgreSQL's planner estimate of the table's rows (pg_class.reltuples), or None where
    there is none (another database, a table never analysed)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    return row[0] if row and row[0] > 0 else None


class LargeTablePaginator(Paginator):
    """A paginator for tables too big to count on every page view.

    Unfiltered, on PostgreSQL, a big table's count is the planner's estimate. Filtered, rows are
    counted up to ``count_cap`` and no further: the count scans at most that many rows.
    ``count_is_exact`` says whether the number shown is exact.
    """

    count_cap = 10_000
    estimate_above = 100_000
    count_is_exact = True

    @cached_property
    def count(self):
        queryset = self.object_list
        if not queryset.query.where:
            estimate = estimated_row_count(queryset.model, queryset.db)
            if estimate is not None and estimate > self.estimate_above:
                self.count_is_exact = False
                return estimate
        counted = queryset.order_by()[: self.count_cap + 1].count()
        if counted > self.count_cap:
            self.count_is_exact = False
            return self.count_cap
        return counted


# --- the SLA column ----------------------------------------------------------------------------


# --- filters -----------------------------------------------------------------------------------


class StateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", _("Open (new, acknowledged, on hold)")), *IncidentState.choices]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(selectors.open_q())
        if self.value() in IncidentState.values:
            return queryset.filter(state=self.value())
        return queryset


class ServiceFilter(admin.SimpleListFilter):
    title = _("affected service")
    parameter_name = "service"

    def lookups(self, request, model_admin):
        return list(Service.objects.order_by("name").values_list("pk", "name"))

    def queryset(self, request, queryset):
        service_id = parse_id(self.value())
        if service_id is not None:
            return selectors.incidents_with_service(queryset, service_id)
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = _("assignee")
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        people = [(str(u.pk), u.get_username()) for u in staff_users()]
        return [("me", _("Assigned to me")), ("none", _("Unassigned")), *people]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        assignee_id = parse_id(value)
        if assignee_id is not None:
            return queryset.filter(assignee_id=assignee_id)
        return queryset


class SlaFilter(admin.SimpleListFilter):
    title = _("SLA")
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return [("breached", _("Breached")), ("due_soon", _("Due within 1 h"))]

    def queryset(self, request, queryset):
        if self.value() == "breached":
            return queryset.filter(selectors.breached_q())
        if self.value() == "due_soon":
            return queryset.filter(selectors.due_soon_q(timezone.now()))
        return queryset


# --- the incident admin ------------------------------------------------------------------------


class AffectedServiceFormSet(BaseInlineFormSet):
    """Every row offers the same list of services: read it once per page, not once per row
    (an autocomplete or a plain select would query again for each affected service)."""

    @cached_property
    def service_choices(self):
        field = self.form.base_fields["service"]
        return [("", field.empty_label)] + [
            (service.pk, field.label_from_instance(service)) for service in field.queryset
        ]

    def add_fields(self, form, index):
        super().add_fields(form, index)
        form.fields["service"].choices = self.service_choices
        # A table cell has no <label>: each control is named for screen readers (axe: the
        # service select and the delete box were unnamed, critical).
        row = "" if index is None else f" {index + 1}"
        for name, field in form.fields.items():
            if not field.widget.is_hidden:
                label = _("Delete") if name == "DELETE" else field.label
                # The service select sits inside the admin's related-object wrapper.
                widget = getattr(field.widget, "widget", field.widget)
                widget.attrs["aria-label"] = f"{label}{row}"


class AffectedServiceInline(admin.TabularInline):
    """Edited as part of the incident form: the admin hands the rows to ``workflow.edit`` as
    ``services``; they are never saved directly."""

    model = IncidentService
    fields = ["service", "status"]
    formset = AffectedServiceFormSet
    extra = 0
    verbose_name_plural = _("affected services")

    def get_extra(self, request, obj=None, **kwargs):
        return 0 if obj else 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("service")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TimelineInline(ReadOnlyInline):
    """The timeline as sentences (``incidents.timeline_text``), update texts inline."""

    model = IncidentEvent
    fields = ["at"]
    readonly_fields = fields
    template = "admin/incidents/incident/timeline_inline.html"
    verbose_name_plural = _("timeline")

    def get_queryset(self, request):
        return with_update_text(super().get_queryset(request))


def actor_name(event):
    """Who acted, as the timeline shows it: the person, token or integration by the label
    recorded with the event; the system as such."""
    if event.actor_kind == ActorKind.SYSTEM:
        return _("system")
    return event.actor_label or "—"


def describe_change(old, new):
    """A timeline event's from/to, in words a person reads: "priority: 3 → 1", or for the SLA
    engine's events "response target: 75% used, at 24 Nov 07:22 UTC"."""
    if old is None and new is None:
        return ""
    if isinstance(new, dict) and {"target", "threshold", "due_at"} <= set(new):
        values = {
            "target": SlaTargetKind(new["target"]).label.lower(),
            "percent": new["threshold"] // 10,
            "at": new["due_at"][:16].replace("T", " "),
        }
        if new["threshold"] >= 1000:
            return _("%(target)s target breached at %(at)s UTC") % values
        return _("%(target)s target: %(percent)s%% used at %(at)s UTC") % values
    if isinstance(old, dict) or isinstance(new, dict):
        old, new = old or {}, new or {}
        return "; ".join(
            f"{key}: {_plain(old[key])} → {_plain(new.get(key))}"
            if key in old
            else f"{key}: {_plain(new.get(key))}"
            for key in sorted({*old, *new})
        )
    return f"{_plain(old)} → {_plain(new)}"


def _plain(value):
    # Typed timeline values: a person, group, service or problem reads as its label, a set of
    # services as "Payments (major outage), …".
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) or "—"
    if isinstance(value, dict) and "label" in value:
        if value.get("status") in ServiceStatus.values:
            return f"{value['label']} ({ServiceStatus(value['status']).label.lower()})"
        return str(value["label"])
    return "—" if value in (None, "") else str(value)


PRIORITY_TONES = {1: "p1", 2: "p2", 3: "p3", 4: "p4", 5: "p5"}

# What the change form may send to ``workflow.edit`` and ``workflow.create_incident``.
EDIT_FIELDS = (
    *workflow.EDITABLE_FIELDS,
    "impact",
    "urgency",
    "assignee",
    "assignment_group",
    "problem",
)
CREATE_FIELDS = (
    "title",
    "description",
    "impact",
    "urgency",
    "organization",
    "contact",
    "source",
    "assignee",
    "assignment_group",
    "is_major",
    "commander",
    "communications_lead",
    "is_confidential",
)


def _without(fieldsets, field):
    """``fieldsets`` without ``field`` (and without a fieldset it leaves empty)."""
    kept = []
    for name, options in fieldsets:
        fields = [f for f in options["fields"] if f != field]
        if fields:
            kept.append((name, {**options, "fields": fields}))
    return kept


@admin.register(Incident)
class IncidentAdmin(ReviewActionsMixin, CostColumnsMixin, SafeLookupMixin, admin.ModelAdmin):
    form = IncidentForm
    list_display = [
        "reference_column",
        "title",
        "priority_column",
        # The SLA right after the priority: on a narrow screen it must not scroll out of view.
        "sla_column",
        "state",
        "services_column",
        "cost_column",
        "assignee",
        "opened_at",
    ]
    list_display_links = ["reference_column", "title"]

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj):
        # Django renders this box through a form widget and its template, row by row: most of a
        # 100-row page's render time (bench C6). The same markup, written directly.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html(_("Select this object for an action - {}"), obj),
        )

    list_filter = [
        StateFilter,
        "priority",
        ServiceFilter,
        AssigneeFilter,
        SlaFilter,
        "is_major",
    ]
    list_select_related = ["assignee"]
    search_fields = ["title", "description"]
    search_help_text = _(
        "An incident reference (INC-000123 or 123), or words of the title or description."
    )
    ordering = ["priority", "resolve_due_at"]
    list_per_page = 50
    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice over a million rows
    autocomplete_fields = ["organization", "contact", "problem"]
    # The updates read inline on the timeline; a table of their own said everything twice.
    inlines = [AffectedServiceInline, TimelineInline]
    actions = [
        "assign_to_me",
        "acknowledge_selected",
        "resolve_selected",
        "link_to_problem",
        "start_reviews",
        "create_problem",
    ]
    change_form_template = "admin/incidents/incident/change_form.html"

    add_fieldsets = [
        (None, {"fields": ["title", "description", ("impact", "urgency"), "source"]}),
        (_("People"), {"fields": ["organization", "contact", "assignee", "assignment_group"]}),
        (_("Major incident"), {"fields": ["is_major", "commander", "communications_lead"]}),
        (_("Confidential"), {"fields": ["is_confidential"]}),
    ]
    change_fieldsets = [
        (
            None,
            {
                "fields": [
                    ("reference_column", "state", "priority_column"),
                    "title",
                    "description",
                    ("impact", "urgency"),
                    "loaded_version",
                ]
            },
        ),
        (_("People"), {"fields": ["organization", "contact", "assignee", "assignment_group"]}),
        (_("Major incident"), {"fields": ["is_major", "commander", "communications_lead"]}),
        (_("Problem"), {"fields": ["problem"]}),
        (_("Confidential"), {"fields": ["is_confidential"]}),
        (_("Cost of downtime"), {"fields": ["cost_summary"]}),
        (
            _("SLA"),
            {
                "fields": [
                    "sla_column",
                    "sla_policy",
                    "sla_explanation",
                    ("response_target", "resolution_target"),
                    ("response_due_at", "resolve_due_at"),
                    ("response_breached_at", "resolve_breached_at"),
                ]
            },
        ),
        (
            _("Lifecycle"),
            {
                "fields": [
                    "source",
                    ("opened_at", "acknowledged_at", "responded_at"),
                    ("resolved_at", "first_resolved_at", "closed_at"),
                    "hold_reason",
                    ("resolution_code", "resolution_notes"),
                    ("public_status", "published_at"),
                    "version",
                ]
            },
        ),
    ]
    change_readonly_fields = [
        "reference_column",
        "state",
        "priority_column",
        "sla_column",
        "sla_policy",
        "sla_explanation",
        "response_target",
        "resolution_target",
        "response_due_at",
        "resolve_due_at",
        "response_breached_at",
        "resolve_breached_at",
        "source",
        "opened_at",
        "acknowledged_at",
        "responded_at",
        "resolved_at",
        "first_resolved_at",
        "closed_at",
        "hold_reason",
        "resolution_code",
        "resolution_notes",
        "public_status",
        "published_at",
        "version",
        "cost_summary",
    ]

    # --- reads ---------------------------------------------------------------------------------

    def get_object(self, request, object_id, from_field=None):
        # The change page's context read the incident already (``change_page_context``, which
        # runs first): a GET shows that same row instead of reading it twice.
        kept = getattr(request, "itsm_incident", None)
        if (
            kept is not None
            and request.method == "GET"
            and from_field is None
            and str(kept.pk) == str(object_id)
        ):
            return kept
        return super().get_object(request, object_id, from_field)

    def get_queryset(self, request):
        # What the person may see (``incidents.visibility``): the list, its count, search,
        # filters, the change and history pages, autocomplete, raw-id popups and ``/admin/r/``
        # all read through here, so a confidential incident is simply not there for others.
        queryset = super().get_queryset(request).visible_to(request.user)
        if (getattr(request.resolver_match, "url_name", "") or "").endswith("_changelist"):
            return selectors.incident_queue(queryset)
        # One incident (change page, workflow buttons): its SLA policy shown, no list prefetch.
        return queryset.select_related("sla_policy")

    def changelist_view(self, request, extra_context=None):
        """Searching an exact reference (``INC-000123``) opens that incident: the agent who
        typed it wants the incident, not a list of one. An id the agent may not see, or that
        does not exist, falls through to the (empty) list as any search does."""
        pk = parse_reference(request.GET.get(SEARCH_VAR, ""))
        if pk is not None and self.get_queryset(request).filter(pk=pk).exists():
            return HttpResponseRedirect(reverse("admin:incidents_incident_change", args=[pk]))
        return super().changelist_view(request, extra_context)

    def get_search_results(self, request, queryset, search_term):
        """A reference is an exact primary-key lookup; anything else searches title and
        description."""
        pk = parse_reference(search_term) if search_term else None
        if pk is not None:
            return queryset.filter(pk=pk), False
        return super().get_search_results(request, queryset, search_term)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in ("assignee", "commander", "communications_lead"):
            kwargs["queryset"] = staff_users()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if not workflow.may(request.user, "confidential"):
            return _without(self._get_fieldsets(request, obj), "is_confidential")
        return self._get_fieldsets(request, obj)

    def _get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        if not self.has_change_permission(request, obj):
            return [
                (
                    name,
                    {**options, "fields": [f for f in options["fields"] if f != "loaded_version"]},
                )
                for name, options in self.change_fieldsets
            ]
        return self.change_fieldsets

    def get_inlines(self, request, obj):
        return self.inlines if obj else [AffectedServiceInline]

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly_fields if obj else []

    # --- columns -------------------------------------------------------------------------------

    @admin.display(description=_("reference"), ordering="pk")
    def reference_column(self, obj):
        return obj.reference

    @admin.display(description=_("priority"), ordering="priority")
    def priority_column(self, obj):
        return format_html(
            '<span class="itsm-badge itsm-{}">{}</span>',
            PRIORITY_TONES.get(obj.priority, "p5"),
            obj.get_priority_display(),
        )

    @admin.display(description=_("affected services"))
    def services_column(self, obj):
        links = getattr(obj, "affected_list", None)
        if links is None:  # outside the changelist (e.g. the change page)
            links = list(obj.affected.select_related("service"))
        return format_html_join(", ", "{}", ((link.service.name,) for link in links)) or "—"

    @admin.display(description=_("SLA"), ordering="resolve_due_at")
    @admin.display(description=_("why these deadlines"))
    def sla_explanation(self, obj):
        # One line per target: which policy, service and calendar set it (SLA.md rule 2).
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in explain_lines(obj)))

    def sla_column(self, obj):
        tone, text = sla_summary(obj, timezone.now())
        return format_html('<span class="itsm-sla itsm-sla-{}">{}</span>', tone, text)

    # --- writes through the workflow -----------------------------------------------------------

    def has_work_permission(self, request, obj=None):
        """Workflow buttons and bulk actions: the permission the workflow itself checks
        (``work_incident``), so no button is offered that the workflow would then refuse."""
        return request.user.has_perm(workflow.ACTION_PERMISSIONS["acknowledge"])

    def has_open_problem_permission(self, request):
        """The bulk "open a problem": working incidents and creating problems."""
        return self.has_work_permission(request) and request.user.has_perm(
            problem_workflow.ACTION_PERMISSIONS["create"]
        )

    def save_model(self, request, obj, form, change):
        """Nothing here: the whole save is one workflow call in ``save_related``, once the
        affected services from the inline are known."""

    def save_related(self, request, form, formsets, change):
        services = affected_services_from(formsets)
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data if f in EDIT_FIELDS}
            if services is not None:
                changes["services"] = services
            if changes:
                workflow.edit(
                    form.instance,
                    actor=request.user,
                    expected_version=data.get("loaded_version"),
                    changes=changes,
                )
            return
        incident = workflow.create_incident(
            actor=request.user,
            services=services or {},
            **{f: data[f] for f in CREATE_FIELDS if f in data},
        )
        # The admin redirects and logs with the object it built; give it the created row.
        form.instance.pk = incident.pk
        form.instance._state.adding = False

    def construct_change_message(self, request, form, formsets, add=False):
        message = construct_change_message(form, [], add)
        if not add and affected_services_from(formsets) is not None:
            message.append({"changed": {"fields": ["affected services"]}})
        return message

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """A save the workflow refuses (a stale form, an illegal change) rolls back whole and
        the form comes back with what was typed and the error beside the field (issue 15:
        what the agent types is never lost)."""
        if object_id:
            extra_context = {
                **(extra_context or {}),
                **admin_views.change_page_context(
                    self, request, object_id, refused=(extra_context or {}).get("refused")
                ),
            }
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except workflow.WorkflowError as exc:
            if request.method != "POST":
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            if object_id:
                request.POST = self._typed_over_current(request, object_id, exc)
            request.itsm_refusal = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "itsm_refusal", None)
        if refusal is not None:
            form = type(form.__name__, (form,), {"refusal": refusal})
        return form

    def _typed_over_current(self, request, object_id, refusal):
        """The refused POST made to read as a form of the incident as it is now: what the
        agent changed stays as typed, what they left alone shows the current value, and the
        form's version is the current one, so saving again applies exactly their changes."""
        current = self.get_object(request, unquote(object_id))
        form_class = super().get_form(request, current, change=True)
        typed = form_class(request.POST, request.FILES, instance=current)
        mine = set(typed.changed_data)
        now = form_class(instance=current)
        data = request.POST.copy()
        for name in typed.fields:
            if name == "loaded_version":
                continue
            keys = [typed.add_initial_prefix(name)]
            if name not in mine:
                keys.append(typed.add_prefix(name))
            value = now[name].value()
            for key in keys:
                if value is False:
                    data.pop(key, None)  # an unticked box is absent from a POST
                elif value is True:
                    data[key] = "on"
                else:
                    data[key] = "" if value is None else str(value)
        if isinstance(refusal, workflow.StaleVersion):
            data[typed.add_prefix("loaded_version")] = str(refusal.current_version)
        return data

    def get_urls(self):
        wrap = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/act/<str:action>/",
                wrap(admin_views.transition_view(self)),
                name="{}_{}_act".format(*info),
            ),
            path(
                "<path:object_id>/post-update/",
                wrap(admin_views.post_update_view(self)),
                name="{}_{}_post_update".format(*info),
            ),
            path(
                "<path:object_id>/link-known-error/",
                wrap(admin_views.link_known_error_view(self)),
                name="{}_{}_link_known_error".format(*info),
            ),
            path(
                "<path:object_id>/unlink-problem/",
                wrap(admin_views.unlink_problem_view(self)),
                name="{}_{}_unlink_problem".format(*info),
            ),
            path(
                "for-problem/<int:problem_id>/resolve/",
                wrap(admin_views.resolve_for_problem_view(self)),
                name="{}_{}_resolve_for_problem".format(*info),
            ),
            path(
                "<path:object_id>/preview/",
                wrap(admin_views.preview_view(self)),
                name="{}_{}_preview".format(*info),
            ),
            *super().get_urls(),
        ]

    # --- bulk actions --------------------------------------------------------------------------

    @admin.action(description=_("Assign the selected incidents to me"), permissions=["work"])
    def assign_to_me(self, request, queryset):
        admin_views.run_bulk(
            self,
            request,
            queryset,
            lambda incident: workflow.assign(incident, actor=request.user, assignee=request.user),
            done=lambda n: ngettext(
                "Assigned %(count)d incident to you: %(references)s.",
                "Assigned %(count)d incidents to you: %(references)s.",
                n,
            ),
        )

    @admin.action(description=_("Acknowledge the selected incidents"), permissions=["work"])
    def acknowledge_selected(self, request, queryset):
        admin_views.run_bulk(
            self,
            request,
            queryset,
            lambda incident: workflow.acknowledge(incident, actor=request.user),
            done=lambda n: ngettext(
                "Acknowledged %(count)d incident: %(references)s.",
                "Acknowledged %(count)d incidents: %(references)s.",
                n,
            ),
        )

    @admin.action(description=_("Resolve the selected incidents…"), permissions=["work"])
    def resolve_selected(self, request, queryset):
        return admin_views.bulk_resolve(self, request, queryset)

    @admin.action(description=_("Link the selected incidents to a problem…"), permissions=["work"])
    def link_to_problem(self, request, queryset):
        return admin_views.bulk_link_problem(self, request, queryset)

    @admin.action(
        description=_("Open a problem for the selected incidents…"),
        permissions=["open_problem"],
    )
    def create_problem(self, request, queryset):
        return admin_views.bulk_create_problem(self, request, queryset)


def affected_services_from(formsets):
    """{service: status} from the affected-services inline when it changed, else None."""
    for formset in formsets:
        if formset.model is not IncidentService:
            continue
        if not formset.has_changed():
            return None
        deleted = set(formset.deleted_forms)
        return {
            form.cleaned_data["service"]: form.cleaned_data["status"]
            for form in formset.forms
            if form not in deleted and form.cleaned_data.get("service")
        }
    return None


# --- the smaller admins ------------------------------------------------------------------------


@admin.register(PriorityMatrixEntry)
class PriorityMatrixEntryAdmin(admin.ModelAdmin):
    """The nine cells of impact × urgency; staff change the priority in place."""

    list_display = ["cell", "impact", "urgency", "priority"]
    list_editable = ["priority"]
    list_display_links = ["cell"]
    readonly_fields = ["impact", "urgency"]

    @admin.display(description=_("cell"))
    def cell(self, obj):
        return f"{obj.impact}×{obj.urgency}"

    def has_add_permission(self, request):
        return False  # the matrix is complete; a missing cell would break priority

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """The record as the workflow and the sweep wrote it: seen, never edited here."""

    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(IncidentEvent)
class IncidentEventAdmin(SafeLookupMixin, ReadOnlyAdmin):
    list_display = ["at", "incident", "kind", "actor_column", "note"]
    list_filter = ["kind"]
    list_select_related = ["incident", "actor"]
    ordering = ["-at", "-id"]
    raw_id_fields = ["incident", "actor"]

    search_fields = ["note"]

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    @admin.display(description=_("actor"), ordering="actor_label")
    def actor_column(self, obj):
        return actor_name(obj)

    search_help_text = _("An incident reference (INC-000123), or words of the note.")

    def get_search_results(self, request, queryset, search_term):
        pk = parse_reference(search_term) if search_term else None
        if pk is not None:
            return queryset.filter(incident_id=pk), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(SlaSignal)
class SlaSignalAdmin(SafeLookupMixin, ReadOnlyAdmin):
    list_display = ["raised_at", "incident", "target", "threshold", "is_breach", "due_at"]
    list_filter = ["target", "threshold"]
    list_select_related = ["incident"]
    ordering = ["-raised_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    @admin.display(description=_("breach"), boolean=True)
    def is_breach(self, obj):
        return obj.is_breach


# --- alerts in ---------------------------------------------------------------------------------


@admin.register(AlertRule)
class AlertRuleAdmin(SafeLookupMixin, admin.ModelAdmin):
    """Routing of an integration's alerts: plain configuration, no workflow behind it."""

    list_display = [
        "name",
        "source",
        "order",
        "enabled",
        "service",
        "impact",
        "urgency",
        "grouping",
    ]
    list_filter = ["source", "enabled", "grouping"]
    list_editable = ["order", "enabled"]
    search_fields = ["name"]
    autocomplete_fields = ["service"]
    ordering = ["source", "order", "id"]


@admin.register(Alert)
class AlertAdmin(SafeLookupMixin, ReadOnlyAdmin):
    """Each alert as its source sent it, with the incident it feeds."""

    list_display = ["__str__", "source", "status", "fingerprint", "incident", "rule", "last_seen"]
    list_filter = ["source", "status"]
    list_select_related = ["incident", "rule"]
    search_fields = ["fingerprint", "group_key"]
    raw_id_fields = ["incident", "rule"]
    date_hierarchy = "last_seen"


@admin.register(AlertGroup)
class AlertGroupAdmin(SafeLookupMixin, ReadOnlyAdmin):
    list_display = ["key", "source", "is_open", "incident", "opened_at", "closed_at"]
    list_filter = ["source", "is_open"]
    list_select_related = ["incident"]
    search_fields = ["key"]


@admin.register(RejectedPayload)
class RejectedPayloadAdmin(SafeLookupMixin, ReadOnlyAdmin):
    """What an integration endpoint refused and why; kept for staff to see, never changed."""

    list_display = ["received_at", "source", "status_code", "short_error", "client_ip"]
    list_filter = ["source", "status_code"]
    search_fields = ["error", "client_ip"]
    date_hierarchy = "received_at"

    @admin.display(description=_("error"))
    def short_error(self, obj):
        return obj.error[:120]


# --- recurring incidents -----------------------------------------------------------------------


@admin.register(RecurrenceProposal)
class RecurrenceProposalAdmin(SafeLookupMixin, ReadOnlyAdmin):
    """Problems proposed for recurring incidents (``incidents.recurrence``): problem managers
    open a problem for a proposal's incidents in one action, or dismiss it. Registered here, not
    in the problems app, because opening one links incidents."""

    list_display = [
        "service",
        "incident_count",
        "window_start",
        "window_end",
        "state",
        "problem",
        "created_at",
    ]
    list_filter = ["state"]
    list_select_related = ["service", "problem"]
    ordering = ["-created_at", "-id"]
    actions = ["open_problems", "dismiss"]

    @admin.action(
        description=_("Open a problem for each selected proposal"), permissions=["accept"]
    )
    def open_problems(self, request, queryset):
        opened = []
        for proposal in queryset.filter(state=ProposalState.OPEN).select_related("service"):
            try:
                problem = recurrence.accept_proposal(proposal, actor=request.user)
            except workflow.WorkflowError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                opened.append(problem.reference)
        if opened:
            self.message_user(
                request,
                _("Opened: %(references)s.") % {"references": ", ".join(opened)},
                messages.SUCCESS,
            )

    @admin.action(description=_("Dismiss the selected proposals"), permissions=["accept"])
    def dismiss(self, request, queryset):
        dismissed = 0
        for proposal in queryset.filter(state=ProposalState.OPEN):
            try:
                problem_workflow.settle_proposal(
                    proposal, actor=request.user, state=ProposalState.DISMISSED
                )
            except problem_workflow.WorkflowError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                dismissed += 1
        if dismissed:
            self.message_user(
                request,
                ngettext(
                    "Dismissed %(count)d proposal.", "Dismissed %(count)d proposals.", dismissed
                )
                % {"count": dismissed},
                messages.SUCCESS,
            )

    def has_accept_permission(self, request):
        return request.user.has_perm(problem_workflow.ACTION_PERMISSIONS["create"])

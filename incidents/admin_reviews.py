"""Post-incident reviews in the admin: the review as rendered Markdown (read-only for those who
may not change incidents), staff's sections and the action items, a Markdown download, and the
incident action that starts reviews. Every write goes through ``incidents.review_workflow``."""

from django.contrib import admin, messages
from django.contrib.admin.utils import construct_change_message
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from incidents import review_workflow
from incidents.models import Incident
from incidents.reviews import ActionItem, PostIncidentReview
from incidents.workflow import NotPermitted, WorkflowError


class ActionItemInline(admin.TabularInline):
    """Items are added and their state changed here; the save goes through the workflow."""

    model = ActionItem
    extra = 1
    fields = ["title", "owner", "due_on", "state", "problem"]
    raw_id_fields = ["owner", "problem"]
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        if not self.has_change_permission(request, obj):
            return self.fields
        return []

    def has_add_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("incidents.change_incident")


@admin.register(PostIncidentReview)
class PostIncidentReviewAdmin(admin.ModelAdmin):
    list_display = ["incident", "created_at", "created_by", "markdown_link"]
    list_select_related = ["incident", "created_by"]
    search_fields = ["incident__title"]
    inlines = [ActionItemInline]
    fields = [
        "incident",
        "created_by",
        "created_at",
        "markdown_link",
        *review_workflow.REVIEW_FIELDS,
        "rendered",
    ]
    readonly_fields = ["incident", "created_by", "created_at", "markdown_link", "rendered"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(incident__in=Incident.objects.visible_to(request.user))
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Those who may change incidents write reviews (the workflow checks it again).
        return request.user.has_perm("incidents.change_incident")

    def get_readonly_fields(self, request, obj=None):
        if not self.has_change_permission(request, obj):
            return self.fields
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        changes = {f: form.cleaned_data[f] for f in form.changed_data if f in self._sections}
        if changes:
            review_workflow.edit_review(obj, actor=request.user, changes=changes)

    _sections = frozenset(review_workflow.REVIEW_FIELDS)

    def save_formset(self, request, form, formset, change):
        for item_form in formset.forms:
            if not item_form.has_changed() or not item_form.cleaned_data:
                continue
            data = item_form.cleaned_data
            if item_form.instance.pk is None:
                item = review_workflow.add_action_item(
                    form.instance,
                    actor=request.user,
                    title=data.get("title"),
                    owner=data.get("owner"),
                    due_on=data.get("due_on"),
                    problem=data.get("problem"),
                )
                if data.get("state") and data["state"] != item.state:
                    review_workflow.set_action_item_state(
                        item, actor=request.user, state=data["state"]
                    )
            elif "state" in item_form.changed_data:
                review_workflow.set_action_item_state(
                    item_form.instance, actor=request.user, state=data["state"]
                )

    def has_delete_permission(self, request, obj=None):
        return False

    def construct_change_message(self, request, form, formsets, add=False):
        # The items were saved by the workflow, not by the formsets' save().
        return construct_change_message(form, [], add)

    @admin.display(description=gettext_lazy("review"))
    def rendered(self, obj):
        return format_html(
            '<pre style="white-space: pre-wrap">{}</pre>', review_workflow.review_markdown(obj)
        )

    @admin.display(description=gettext_lazy("Markdown"))
    def markdown_link(self, obj):
        url = reverse("admin:incidents_postincidentreview_markdown", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Download"))

    def get_urls(self):
        return [
            path(
                "<int:pk>/markdown/",
                self.admin_site.admin_view(self.markdown_view),
                name="incidents_postincidentreview_markdown",
            ),
            *super().get_urls(),
        ]

    def markdown_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        review = get_object_or_404(self.get_queryset(request), pk=pk)
        response = HttpResponse(
            review_workflow.review_markdown(review), content_type="text/markdown; charset=utf-8"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{review.incident.reference}-review.md"'
        )
        return response


class ReviewActionsMixin:
    """The incident changelist's "start post-incident reviews" action."""

    @admin.action(description=gettext_lazy("Start post-incident reviews of the selected"))
    def start_reviews(self, request, queryset):
        started, refused = 0, []
        for incident in queryset[:100]:
            try:
                review_workflow.start_review(incident, actor=request.user)
                started += 1
            except (WorkflowError, NotPermitted) as exc:
                refused.append(f"{incident.reference}: {exc}")
        if started:
            self.message_user(
                request,
                ngettext("Started %(n)d review.", "Started %(n)d reviews.", started)
                % {"n": started},
                messages.SUCCESS,
            )
        for line in refused:
            self.message_user(request, line, messages.WARNING)

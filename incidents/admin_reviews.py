"""Post-incident reviews in the admin: read-only pages (the review as rendered Markdown, its
action items), a Markdown download, and the incident action that starts reviews. Writes go
through ``incidents.review_workflow``."""

from django.contrib import admin, messages
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
    model = ActionItem
    extra = 0
    fields = ["title", "owner", "due_on", "state", "problem"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PostIncidentReview)
class PostIncidentReviewAdmin(admin.ModelAdmin):
    list_display = ["incident", "created_at", "created_by", "markdown_link"]
    list_select_related = ["incident", "created_by"]
    search_fields = ["incident__title"]
    inlines = [ActionItemInline]
    fields = ["incident", "created_by", "created_at", "rendered", "markdown_link"]
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(incident__in=Incident.objects.visible_to(request.user))
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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

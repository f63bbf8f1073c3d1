from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from itsm.actors import scope_q
from itsm.admin_changelist import SafeLookupMixin
from problems.models import Problem


def parse_problem_reference(text):
    """The problem id in ``PRB-000012``, ``prb-12`` or ``12``; None if it is not one."""
    text = text.strip().upper().removeprefix("PRB-")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


@admin.register(Problem)
class ProblemAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = ["reference", "title", "state", "owner", "incident_count", "created_at"]
    list_display_links = ["reference", "title"]
    list_filter = ["state"]
    list_select_related = ["owner"]
    search_fields = ["title", "description"]
    search_help_text = _(
        "A problem reference (PRB-000012 or 12), or words of the title or description."
    )
    raw_id_fields = ["owner"]
    show_full_result_count = False
    # The model's ordering is dropped by the aggregate below (GROUP BY): say it here, or the
    # autocomplete pages an unordered list.
    ordering = ["-created_at", "-id"]

    def get_queryset(self, request):
        # One aggregate in the page query, not a count per row; only the incidents the person
        # may see are counted (a confidential one must not show even as a number).
        visible = scope_q("incident", request.user, prefix="incidents__")
        return (
            super()
            .get_queryset(request)
            .annotate(linked_incidents=Count("incidents", filter=visible))
        )

    def get_search_results(self, request, queryset, search_term):
        pk = parse_problem_reference(search_term) if search_term else None
        if pk is not None:
            return queryset.filter(pk=pk), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=_("reference"), ordering="pk")
    def reference(self, obj):
        return obj.reference

    @admin.display(description=_("linked incidents"), ordering="linked_incidents")
    def incident_count(self, obj):
        return obj.linked_incidents

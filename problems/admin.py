from django.contrib import admin

from problems.models import Problem


@admin.register(Problem)
class ProblemAdmin(admin.ModelAdmin):
    list_display = ["reference", "title", "state", "owner", "created_at"]
    list_filter = ["state"]
    list_select_related = ["owner"]
    search_fields = ["title", "description"]
    raw_id_fields = ["owner"]

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from services.models import (
    BusinessCalendar,
    BusinessHours,
    Contact,
    Contract,
    Holiday,
    MaintenanceWindow,
    Organization,
    Service,
    ServiceDependency,
    ServiceGroup,
    SlaPolicy,
    SlaTarget,
    Subscription,
    Team,
)


@admin.register(ServiceGroup)
class ServiceGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "display_order"]
    list_editable = ["display_order"]
    search_fields = ["name"]


class DependencyInline(admin.TabularInline):
    model = ServiceDependency
    fk_name = "service"
    extra = 0
    autocomplete_fields = ["depends_on"]
    verbose_name = _("dependency")
    verbose_name_plural = _("depends on")


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    autocomplete_fields = ["contact", "organization"]
    fields = ["contact", "organization", "channel", "webhook_url", "is_active"]


class ContractInline(admin.TabularInline):
    model = Contract
    extra = 0
    autocomplete_fields = ["organization", "service", "sla_policy"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "group",
        "status",
        "status_pinned",
        "is_public",
        "criticality",
        "owner_team",
        "default_sla_policy",
        "display_order",
    ]
    list_filter = ["status", "is_public", "criticality", "group", "owner_team", "status_pinned"]
    list_select_related = ["group", "owner_team", "default_sla_policy"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["group", "owner_team", "default_sla_policy"]
    inlines = [DependencyInline, SubscriptionInline, ContractInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "group", "display_order"]}),
        (_("Ownership"), {"fields": ["owner_team", "criticality", "default_sla_policy"]}),
        (_("Status"), {"fields": ["is_public", "status", "status_pinned"]}),
    ]


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    fields = ["name", "email", "language", "is_active"]
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ContactInline, ContractInline]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "organization", "language", "is_active"]
    list_filter = ["language", "is_active", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "email", "organization__name"]
    autocomplete_fields = ["organization"]
    inlines = [SubscriptionInline]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["service", "contact", "organization", "channel", "webhook_url", "is_active"]
    list_filter = ["channel", "is_active", "service"]
    list_select_related = ["service", "contact", "organization"]
    search_fields = ["service__name", "contact__email", "contact__name", "organization__name"]
    autocomplete_fields = ["service", "contact", "organization"]
    readonly_fields = ["webhook_secret"]


class BusinessHoursInline(admin.TabularInline):
    model = BusinessHours
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone", "is_24x7"]
    list_filter = ["is_24x7"]
    search_fields = ["name", "time_zone"]
    inlines = [BusinessHoursInline, HolidayInline]


class SlaTargetInline(admin.TabularInline):
    model = SlaTarget
    extra = 0


@admin.register(SlaPolicy)
class SlaPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "calendar", "is_default"]
    list_filter = ["is_default", "calendar"]
    list_select_related = ["calendar"]
    search_fields = ["name"]
    autocomplete_fields = ["calendar"]
    inlines = [SlaTargetInline]


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin):
    list_display = ["organization", "service", "sla_policy"]
    list_filter = ["sla_policy"]
    list_select_related = ["organization", "service", "sla_policy"]
    search_fields = ["organization__name", "service__name"]
    autocomplete_fields = ["organization", "service", "sla_policy"]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "scheduled_start", "scheduled_end"]
    list_filter = ["status", "services"]
    search_fields = ["title", "public_description"]
    date_hierarchy = "scheduled_start"
    autocomplete_fields = ["services"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["group", "email", "escalation_contact"]
    list_select_related = ["group", "escalation_contact"]
    search_fields = ["group__name", "email"]
    autocomplete_fields = ["group", "escalation_contact"]

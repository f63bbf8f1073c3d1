from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _

from itsm.admin_changelist import SafeLookupMixin
from services import workflow
from services.models import (
    BusinessCalendar,
    BusinessHours,
    Contact,
    Contract,
    Holiday,
    MaintenanceStatus,
    MaintenanceWindow,
    Organization,
    Service,
    ServiceDependency,
    ServiceGroup,
    SlaPolicy,
    SlaTarget,
    Subscription,
    Team,
    check_windows_do_not_overlap,
)


@admin.register(ServiceGroup)
class ServiceGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "display_order"]
    list_editable = ["display_order"]
    search_fields = ["name"]


class DependencyFormSet(BaseInlineFormSet):
    """The dependency inline: its additions are checked by ``workflow.check_dependency``, whose
    locks last until the admin's transaction (the whole request) commits, and it saves through
    ``workflow.edit_dependencies``. Two agents editing at once can no longer make a cycle."""

    def clean(self):
        super().clean()
        if self.instance.pk is None:
            return  # a new service: nothing depends on it yet, so no cycle through it
        for form in self._additions():
            try:
                workflow.check_dependency(
                    service=self.instance, depends_on=form.cleaned_data["depends_on"]
                )
            except ValidationError as error:
                form.add_error(None, error)

    def save(self, commit=True):
        super().save(commit=False)  # the admin's history message reads what this records
        deleted = set(self.deleted_forms)
        remove = [f.initial["depends_on"] for f in self.initial_forms if f in deleted]
        remove += [f.initial["depends_on"] for f in self._additions() if f in self.initial_forms]
        add = [f.cleaned_data["depends_on"] for f in self._additions()]
        workflow.edit_dependencies(service=self.instance, add=add, remove=remove)
        return []

    def _additions(self):
        """The valid forms that add an edge: new rows, and rows whose target was changed."""
        deleted = set(self.deleted_forms) if self.can_delete else set()
        return [
            form
            for form in self.forms
            if form not in deleted
            and not form.errors
            and "depends_on" in form.changed_data
            and form.cleaned_data.get("depends_on")
        ]


class DependencyInline(admin.TabularInline):
    model = ServiceDependency
    formset = DependencyFormSet
    fk_name = "service"
    extra = 0
    autocomplete_fields = ["depends_on"]
    verbose_name = _("dependency")
    verbose_name_plural = _("depends on")


def masked_secret(secret):
    """Enough of a signing secret to tell two apart, not enough to sign with."""
    return f"whsec_…{secret[-4:]}" if secret else "—"


def may_see_secrets(user):
    """Webhook signing secrets let their holder forge our webhooks: managers only (those who may
    change subscriptions); everyone else sees them masked."""
    return user.has_perm("services.change_subscription")


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    autocomplete_fields = ["contact", "organization"]
    fields = ["contact", "organization", "channel", "webhook_url", "is_active", "signing_secret"]
    readonly_fields = ["signing_secret"]

    @admin.display(description=_("webhook signing secret"))
    def signing_secret(self, obj):
        # Masked even for managers: the subscription's own page is where a secret is read.
        return masked_secret(obj.webhook_secret)


class ContractInline(admin.TabularInline):
    model = Contract
    extra = 0
    autocomplete_fields = ["organization", "service", "sla_policy"]


@admin.register(Service)
class ServiceAdmin(SafeLookupMixin, admin.ModelAdmin):
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
        (
            _("Cost of downtime (per hour)"),
            {
                "fields": [
                    ("cost_major_per_hour", "cost_partial_per_hour", "cost_degraded_per_hour")
                ]
            },
        ),
    ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if {"status", "status_pinned"} & set(form.changed_data):
            # Unpinned, the status derived from incidents and maintenance takes over at once.
            workflow.set_service_status(obj, status=obj.status, pinned=obj.status_pinned)


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    fields = ["name", "email", "language", "is_active"]
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ContactInline, ContractInline]


@admin.register(Contact)
class ContactAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = ["name", "email", "organization", "language", "is_active"]
    list_filter = ["language", "is_active", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "email", "organization__name"]
    autocomplete_fields = ["organization"]
    inlines = [SubscriptionInline]


@admin.register(Subscription)
class SubscriptionAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = ["service", "contact", "organization", "channel", "webhook_url", "is_active"]
    list_filter = ["channel", "is_active", "service"]
    list_select_related = ["service", "contact", "organization"]
    search_fields = ["service__name", "contact__email", "contact__name", "organization__name"]
    autocomplete_fields = ["service", "contact", "organization"]
    # Generated on save, never typed; shown by ``get_readonly_fields`` to whoever may see it.
    exclude = ["webhook_secret"]

    def get_readonly_fields(self, request, obj=None):
        return ["signing_secret" if may_see_secrets(request.user) else "masked_signing_secret"]

    @admin.display(description=_("webhook signing secret"))
    def signing_secret(self, obj):
        return obj.webhook_secret or "—"

    @admin.display(description=_("webhook signing secret"))
    def masked_signing_secret(self, obj):
        return masked_secret(obj.webhook_secret)

    def response_add(self, request, obj, post_url_continue=None):
        # Whoever creates a webhook subscription must hand its secret to the receiver; without
        # the change permission this is the only time they see it.
        if obj.webhook_secret and not may_see_secrets(request.user):
            self.message_user(
                request,
                _("The webhook signing secret, shown this once: %(secret)s")
                % {"secret": obj.webhook_secret},
                messages.WARNING,
            )
        return super().response_add(request, obj, post_url_continue)


class BusinessHoursFormSet(BaseInlineFormSet):
    """The windows of one weekday may touch but never overlap (SLA.md rule 7): checked over
    the rows of the form together, since each row alone cannot see its new siblings."""

    def clean(self):
        super().clean()
        windows = [
            (
                f.cleaned_data.get("weekday"),
                f.cleaned_data.get("opens_at"),
                f.cleaned_data.get("closes_at"),
            )
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        check_windows_do_not_overlap(windows)


class BusinessHoursInline(admin.TabularInline):
    model = BusinessHours
    formset = BusinessHoursFormSet
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = ["name", "time_zone", "is_24x7"]
    list_filter = ["is_24x7"]
    search_fields = ["name", "time_zone"]
    inlines = [BusinessHoursInline, HolidayInline]


class SlaTargetInline(admin.TabularInline):
    model = SlaTarget
    extra = 0


@admin.register(SlaPolicy)
class SlaPolicyAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = ["name", "calendar", "is_default"]
    list_filter = ["is_default", "calendar"]
    list_select_related = ["calendar"]
    search_fields = ["name"]
    autocomplete_fields = ["calendar"]
    inlines = [SlaTargetInline]


@admin.register(Contract)
class ContractAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = ["organization", "service", "sla_policy"]
    list_filter = ["sla_policy"]
    list_select_related = ["organization", "service", "sla_policy"]
    search_fields = ["organization__name", "service__name"]
    autocomplete_fields = ["organization", "service", "sla_policy"]


class MaintenanceWindowForm(forms.ModelForm):
    class Meta:
        model = MaintenanceWindow
        fields = ["title", "services", "scheduled_start", "scheduled_end", "public_description"]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("scheduled_start"), cleaned.get("scheduled_end")
        if start and end:
            # The workflow's own rule, shown beside the field before anything is saved.
            try:
                workflow.check_maintenance_schedule(start, end)
            except workflow.CatalogError as exc:
                self.add_error(exc.field, str(exc))
        return cleaned


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(SafeLookupMixin, admin.ModelAdmin):
    form = MaintenanceWindowForm
    list_display = ["title", "status", "scheduled_start", "scheduled_end", "affected"]
    list_filter = ["status", "services"]
    search_fields = ["title", "public_description"]
    date_hierarchy = "scheduled_start"
    autocomplete_fields = ["services"]
    actions = ["start_maintenance", "complete_maintenance", "cancel_maintenance"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("services")

    @admin.display(description=_("affected services"))
    def affected(self, window):
        return ", ".join(s.name for s in window.services.all())

    def get_readonly_fields(self, request, obj=None):
        # Status moves only through the actions, which tell subscribers and move services.
        return ["status"] if obj is None or obj.pk else []

    def save_model(self, request, obj, form, change):
        """Nothing here: the whole save is one workflow call in ``save_related``, with the
        services from the form."""

    def save_related(self, request, form, formsets, change):
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data if f in form.Meta.fields}
            if changes:
                workflow.edit_maintenance(form.instance, changes=changes)
            return
        window = workflow.schedule_maintenance(
            title=data["title"],
            services=data["services"],
            scheduled_start=data["scheduled_start"],
            scheduled_end=data["scheduled_end"],
            public_description=data.get("public_description", ""),
        )
        # The admin redirects and logs with the object it built; give it the created row.
        form.instance.pk = window.pk
        form.instance._state.adding = False

    def _move(self, request, queryset, to):
        moved, refused = [], []
        for window in queryset:
            try:
                workflow.move_maintenance(window, to=to)
                moved.append(window.title)
            except workflow.CatalogError as exc:
                refused.append(str(exc))
        if moved:
            self.message_user(request, _("Done: %s") % ", ".join(moved), messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    @admin.action(description=_("Start the selected maintenance"), permissions=["change"])
    def start_maintenance(self, request, queryset):
        self._move(request, queryset, MaintenanceStatus.IN_PROGRESS)

    @admin.action(description=_("Complete the selected maintenance"), permissions=["change"])
    def complete_maintenance(self, request, queryset):
        self._move(request, queryset, MaintenanceStatus.COMPLETED)

    @admin.action(description=_("Cancel the selected maintenance"), permissions=["change"])
    def cancel_maintenance(self, request, queryset):
        self._move(request, queryset, MaintenanceStatus.CANCELLED)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["group", "email", "escalation_contact"]
    list_select_related = ["group", "escalation_contact"]
    search_fields = ["group__name", "email"]
    autocomplete_fields = ["group", "escalation_contact"]

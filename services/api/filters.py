"""Filters of the catalog lists (django-filter). Related rows are named as in the bodies: a
service or organisation by slug, a group, calendar or team by name."""

import django_filters

from itsm.api_auth import actor_of
from itsm.api_filters import UtcIsoDateTimeFilter
from services.models import (
    BusinessCalendar,
    Channel,
    Contact,
    Criticality,
    Language,
    MaintenanceStatus,
    MaintenanceWindow,
    Organization,
    Service,
    ServiceDependency,
    ServiceStatus,
    SlaPolicy,
    Subscription,
)


class VisibleServiceFilter(django_filters.FilterSet):
    """A filter by service slug looks among the services the caller sees: naming a private
    service tells an organisation's token nothing about it (no row, as for a missing slug)."""

    def visible_services(self, slug):
        return Service.objects.visible_to(actor_of(self.request)).filter(slug=slug)


class ServiceFilter(VisibleServiceFilter):
    status = django_filters.MultipleChoiceFilter(choices=ServiceStatus.choices)
    criticality = django_filters.MultipleChoiceFilter(choices=Criticality.choices)
    group = django_filters.CharFilter(field_name="group__name", label="group (name)")
    owner_team = django_filters.CharFilter(field_name="owner_team__name", label="team (name)")
    depends_on = django_filters.CharFilter(
        method="filter_depends_on", label="depends directly on (slug)"
    )
    updated_since = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Service
        fields = ["is_public", "status_pinned"]

    def filter_depends_on(self, queryset, name, value):
        links = ServiceDependency.objects.filter(depends_on__in=self.visible_services(value))
        return queryset.filter(pk__in=links.values("service_id"))


class OrganizationFilter(django_filters.FilterSet):
    class Meta:
        model = Organization
        fields = ["is_active"]


class ContactFilter(django_filters.FilterSet):
    organization = django_filters.CharFilter(
        field_name="organization__slug", label="organisation (slug)"
    )
    public = django_filters.BooleanFilter(
        field_name="organization", lookup_expr="isnull", label="public subscriber (no organisation)"
    )
    language = django_filters.ChoiceFilter(choices=Language.choices)

    class Meta:
        model = Contact
        fields = ["is_active", "follows_all_services"]


class SubscriptionFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", label="service (slug)")
    organization = django_filters.CharFilter(
        field_name="organization__slug", label="organisation (slug)"
    )
    contact = django_filters.NumberFilter(field_name="contact_id", label="contact (id)")
    channel = django_filters.ChoiceFilter(choices=Channel.choices)

    class Meta:
        model = Subscription
        fields = ["is_active"]


class SlaPolicyFilter(django_filters.FilterSet):
    calendar = django_filters.CharFilter(field_name="calendar__name", label="calendar (name)")

    class Meta:
        model = SlaPolicy
        fields = ["is_default"]


class BusinessCalendarFilter(django_filters.FilterSet):
    class Meta:
        model = BusinessCalendar
        fields = ["is_24x7", "time_zone"]


class MaintenanceFilter(VisibleServiceFilter):
    status = django_filters.MultipleChoiceFilter(choices=MaintenanceStatus.choices)
    service = django_filters.CharFilter(method="filter_service", label="service (slug)")
    starts_after = UtcIsoDateTimeFilter(field_name="scheduled_start", lookup_expr="gte")
    starts_before = UtcIsoDateTimeFilter(field_name="scheduled_start", lookup_expr="lt")
    ends_after = UtcIsoDateTimeFilter(field_name="scheduled_end", lookup_expr="gte")

    class Meta:
        model = MaintenanceWindow
        fields = []

    def filter_service(self, queryset, name, value):
        links = MaintenanceWindow.services.through.objects.filter(
            service__in=self.visible_services(value)
        )
        return queryset.filter(pk__in=links.values("maintenancewindow_id"))

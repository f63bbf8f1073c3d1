"""Filters of the catalog lists (django-filter). Related rows are named as in the bodies: a
service or organisation by slug, a group, calendar or team by name."""

import django_filters

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
    ServiceStatus,
    SlaPolicy,
    Subscription,
)


class ServiceFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ServiceStatus.choices)
    criticality = django_filters.MultipleChoiceFilter(choices=Criticality.choices)
    group = django_filters.CharFilter(field_name="group__name", label="group (name)")
    owner_team = django_filters.CharFilter(field_name="owner_team__name", label="team (name)")
    depends_on = django_filters.CharFilter(
        field_name="dependency_links__depends_on__slug",
        label="depends directly on (slug)",
        distinct=True,
    )
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Service
        fields = ["is_public", "status_pinned"]


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


class MaintenanceFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=MaintenanceStatus.choices)
    service = django_filters.CharFilter(
        field_name="services__slug", label="service (slug)", distinct=True
    )
    starts_after = django_filters.IsoDateTimeFilter(field_name="scheduled_start", lookup_expr="gte")
    starts_before = django_filters.IsoDateTimeFilter(field_name="scheduled_start", lookup_expr="lt")
    ends_after = django_filters.IsoDateTimeFilter(field_name="scheduled_end", lookup_expr="gte")

    class Meta:
        model = MaintenanceWindow
        fields = []

"""Filters of the incident list (django-filter): what a client syncing or building a queue asks."""

import django_filters
from django.db.models import Q

from incidents.models import Incident, IncidentState
from itsm.api_filters import UtcIsoDateTimeFilter


class IncidentFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=IncidentState.choices)
    priority = django_filters.MultipleChoiceFilter(
        choices=Incident._meta.get_field("priority").choices
    )
    service = django_filters.CharFilter(
        field_name="services__slug", label="service (slug)", distinct=True
    )
    assignee = django_filters.CharFilter(
        field_name="assignee__username", label="assignee (username)"
    )
    breached = django_filters.BooleanFilter(method="filter_breached")
    confidential = django_filters.BooleanFilter(field_name="is_confidential")
    opened_after = UtcIsoDateTimeFilter(field_name="opened_at", lookup_expr="gte")
    opened_before = UtcIsoDateTimeFilter(field_name="opened_at", lookup_expr="lt")
    resolved_after = UtcIsoDateTimeFilter(field_name="resolved_at", lookup_expr="gte")
    resolved_before = UtcIsoDateTimeFilter(field_name="resolved_at", lookup_expr="lt")
    updated_since = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Incident
        fields = []

    def filter_breached(self, queryset, name, value):
        breached = Q(response_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False)
        return queryset.filter(breached if value else ~breached)

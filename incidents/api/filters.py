"""Filters of the incident list (django-filter): what a client syncing or building a queue asks."""

import django_filters
from django.db.models import Exists, OuterRef, Q

from incidents.models import Incident, IncidentService, IncidentState
from itsm.api_filters import UtcIsoDateTimeFilter
from services.models import Service


class IncidentFilter(django_filters.FilterSet):
    # distinct=False: columns of the incident itself (django-filter's default DISTINCT would
    # make PostgreSQL sort every match before it returns the first page).
    state = django_filters.MultipleChoiceFilter(choices=IncidentState.choices, distinct=False)
    priority = django_filters.MultipleChoiceFilter(
        choices=Incident._meta.get_field("priority").choices, distinct=False
    )
    service = django_filters.CharFilter(method="filter_service", label="service (slug)")
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

    def filter_service(self, queryset, name, value):
        """A semi-join (EXISTS), not a join: no DISTINCT over a million rows. The slug is read
        first (one small query) so that PostgreSQL plans with the service's own statistics:
        for a service with many incidents it walks the list's ordered index and probes each
        incident's services, stopping after a page; for one with few it reads those first."""
        service_id = Service.objects.filter(slug=value).values_list("pk", flat=True).first()
        if service_id is None:
            return queryset.none()
        affected = IncidentService.objects.filter(incident=OuterRef("pk"), service_id=service_id)
        return queryset.filter(Exists(affected))

    def filter_breached(self, queryset, name, value):
        breached = Q(response_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False)
        return queryset.filter(breached if value else ~breached)

"""Filters of the problem list (django-filter)."""

import django_filters

from itsm.api_filters import UtcIsoDateTimeFilter
from problems.models import Problem, ProblemState


class ProblemFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=ProblemState.choices)
    priority = django_filters.MultipleChoiceFilter(
        choices=Problem._meta.get_field("priority").choices
    )
    service = django_filters.CharFilter(method="filter_service", label="service (slug)")
    owner = django_filters.CharFilter(field_name="owner__username", label="owner (username)")
    updated_since = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Problem
        fields = []

    def filter_service(self, queryset, name, value):
        through = Problem.services.through
        return queryset.filter(
            pk__in=through.objects.filter(service__slug=value).values("problem_id")
        )

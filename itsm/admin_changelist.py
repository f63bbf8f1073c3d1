"""A changelist that refuses impossible lookups instead of failing on them.

Two kinds of query parameter reached the database or the calendar and answered 500: a NUL byte
in a filter value (``?status__exact=%00``: PostgreSQL refuses NUL in text), and a year at the
edge of the calendar in the date drill-down (Django bounds a year by ``replace(year=year + 1)``,
which raises for 9999, as a window typed with the wrong year once made every visitor's link do).
Here both are a bad lookup like any other: the admin's own "?e=1" page, nothing queried.
"""

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList


class SafeLookupChangeList(ChangeList):
    def get_filters(self, request):
        if any("\x00" in value for values in request.GET.lists() for value in values[1]):
            raise IncorrectLookupParameters("a NUL byte in the query")
        try:
            return super().get_filters(request)
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class SafeLookupMixin:
    """For every ModelAdmin with list filters or a date hierarchy."""

    def get_changelist(self, request, **kwargs):
        return SafeLookupChangeList

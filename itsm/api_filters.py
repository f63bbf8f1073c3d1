"""Filters every app's API can use (django-filter), for values a database cannot take as sent."""

import datetime as dt

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField
from rest_framework import filters
from rest_framework.exceptions import ValidationError


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, turned into UTC before it reaches the query: Python takes offsets
    up to ±23:59, PostgreSQL only ±15:59 (``?updated_since=2026-01-01T00:00+19:31`` was a 500),
    and a time near year 1 or 9999 may leave the calendar once converted."""

    default_error_messages = {
        "out_of_range": _("Give a date-time between years 1 and 9999, in UTC."),
    }

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError(
                self.error_messages["out_of_range"], code="out_of_range"
            ) from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class SearchFilter(filters.SearchFilter):
    """DRF's search, with a refused term (a NUL character) reported under ``search`` in the
    API's error shape: DRF raises it as a bare list, which schemathesis found outside the
    documented ``Error`` object."""

    def get_search_terms(self, request):
        try:
            return super().get_search_terms(request)
        except ValidationError as exc:
            raise ValidationError({self.search_param: exc.detail}) from exc

"""Admin input that is not an id, refused where the admin would have queried with it.

The hostile admin walk (tests/itsm/test_hostile_admin.py) found the places where Django's admin
hands a value from the request straight to a ``pk__in`` lookup, so that a NUL byte, ``²`` or
``abc`` raised ValueError (a 500) instead of being a bad choice:

- an autocomplete widget rendering its value: the add form pre-filled from the query string
  (``?contact=%00``), and every form shown again with its errors after a POST of such a value;
- the bulk actions' selection (``_selected_action=²``), filtered with ``pk__in``;
- the autocomplete and search term, where PostgreSQL refuses a NUL byte in text.

Each is treated the way the admin already treats a row that does not exist: the widget shows
no selection (the form's own "Select a valid choice" error says why), a selection that is not
an id selects nothing (the admin's "Items must be selected" message), a search for NUL finds
nothing.
"""

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.widgets import AutocompleteSelect, AutocompleteSelectMultiple
from django.core.exceptions import ValidationError

from itsm.admin_changelist import SafeLookupMixin


def is_value_of(field, value):
    """Whether ``value`` (a string from the request) is one ``field`` could hold."""
    if "\x00" in value:
        return False
    try:
        field.to_python(value)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False
    return True


class SafeAutocompleteMixin:
    def optgroups(self, name, value, attr=None):
        remote = self.field.remote_field
        opts = remote.model._meta
        to_field = getattr(remote, "field_name", None)  # a foreign key's; many-to-many: the pk
        target = opts.get_field(to_field) if to_field else opts.pk
        value = [v for v in value if is_value_of(target, str(v))]
        return super().optgroups(name, value, attr)


class SafeAutocompleteSelect(SafeAutocompleteMixin, AutocompleteSelect):
    pass


class SafeAutocompleteSelectMultiple(SafeAutocompleteMixin, AutocompleteSelectMultiple):
    pass


class SafeWidgetsMixin:
    """For ModelAdmins and their inlines: autocomplete widgets that ignore what is not an id."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = SafeAutocompleteSelect(
                db_field, self.admin_site, using=kwargs.get("using")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = SafeAutocompleteSelectMultiple(
                db_field, self.admin_site, using=kwargs.get("using")
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)


_SAFE_INLINES = {}


def _safe_inline_class(cls):
    if cls not in _SAFE_INLINES:
        _SAFE_INLINES[cls] = type(
            cls.__name__, (SafeWidgetsMixin, cls), {"__module__": cls.__module__}
        )
    return _SAFE_INLINES[cls]


class SafeInputMixin(SafeWidgetsMixin, SafeLookupMixin):
    """For every ModelAdmin (itsm/admin.py gives it to each registered one)."""

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        for inline in inlines:
            if not isinstance(inline, SafeWidgetsMixin):
                inline.__class__ = _safe_inline_class(type(inline))
        return inlines

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and ACTION_CHECKBOX_NAME in request.POST:
            post = request.POST.copy()
            post.setlist(
                ACTION_CHECKBOX_NAME,
                [v for v in post.getlist(ACTION_CHECKBOX_NAME) if is_value_of(self.opts.pk, v)],
            )
            request.POST = post
        return super().changelist_view(request, extra_context)

    def get_search_results(self, request, queryset, search_term):
        if "\x00" in search_term:
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

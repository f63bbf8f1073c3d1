"""The admin's "view on site" redirect (``/admin/r/<content type>/<id>/``) behind the same read
rule as the admin's own pages.

Django's view looks the object up through the model's base manager, whatever the person may
see, and answers differently for an object that exists (a redirect, or "has no absolute URL")
and one that does not: a way to learn that a hidden row exists. Here a model registered in the
admin is looked up through its ``ModelAdmin.get_queryset(request)`` first, so a row hidden from
the person is answered exactly like a row that does not exist.
"""

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.views import shortcut
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404
from django.utils.translation import gettext as _


def view_on_site(request, content_type_id, object_id):
    try:
        model = ContentType.objects.get_for_id(content_type_id).model_class()
    except ObjectDoesNotExist:
        model = None
    model_admin = admin.site._registry.get(model) if model is not None else None
    if model_admin is not None:
        try:
            exists = model_admin.get_queryset(request).filter(pk=object_id).exists()
        except (ValidationError, ValueError):
            exists = False
        if not exists:
            # Django's own words for a missing object, so both cases read the same.
            raise Http404(
                _("Content type %(ct_id)s object %(obj_id)s doesn’t exist")
                % {"ct_id": content_type_id, "obj_id": object_id}
            )
    return shortcut(request, content_type_id, object_id)

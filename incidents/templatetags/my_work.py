"""The admin home's "my work" panel (``admin/index.html``)."""

from django import template
from django.utils import timezone

from incidents import selectors

register = template.Library()


@register.inclusion_tag("admin/incidents/my_work.html", takes_context=True)
def my_work(context):
    request = context["request"]
    user = request.user
    if not user.has_perm("incidents.view_incident"):
        return {"show": False}
    return {"show": True, "now": timezone.now(), **selectors.my_work(user, timezone.now())}

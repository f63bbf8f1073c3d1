"""The one-click acknowledge link of a page. GET only shows what the link would do and a
button: mail scanners and link previews fetch links, and a GET must never acknowledge. The
button POSTs (with CSRF) and acknowledges once: the link is signed, expires and is single-use."""

from django.conf import settings
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from incidents import workflow
from incidents.models import Incident
from oncall import workflow as oncall


def _max_age():
    return getattr(settings, "ONCALL_ACK_LINK_MAX_AGE", 24 * 3600)


@require_http_methods(["GET", "POST"])
def acknowledge(request, token):
    try:
        page, user = oncall.read_ack_token(token, max_age=_max_age())
        incident = Incident.objects.get(pk=page.escalation.subject_id)
    except oncall.LinkRefused as exc:
        return render(request, "incidents/acknowledge.html", {"refused": str(exc)}, status=410)
    except Incident.DoesNotExist:
        return render(
            request,
            "incidents/acknowledge.html",
            {"refused": _("This incident no longer exists.")},
            status=410,
        )
    context = {"incident": incident, "user": user, "page": page}
    if request.method == "GET":
        return render(request, "incidents/acknowledge.html", context)
    try:
        workflow.acknowledge_page(incident, actor=user, page=page)
    except oncall.LinkRefused as exc:
        return render(request, "incidents/acknowledge.html", {"refused": str(exc)}, status=410)
    except workflow.WorkflowError as exc:
        return render(request, "incidents/acknowledge.html", {"refused": str(exc)}, status=409)
    context["done"] = True
    return render(request, "incidents/acknowledge.html", context)

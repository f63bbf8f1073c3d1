"""The incident admin's own pages: workflow buttons, posting an update, the email preview, and
the bulk actions with their confirmation forms.

Each view parses the request, calls ``incidents.workflow`` and turns its ``WorkflowError`` into a
message; none decides what is allowed. The buttons send the version the page was loaded with,
so a click on a stale page is refused rather than applied to a state the person never saw.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from incidents import workflow
from incidents.forms import HoldForm, LinkProblemForm, ReopenForm, ResolveForm, UpdateForm
from incidents.models import Incident, PublicStatus
from incidents.notify import events_being_expanded, notifications_for_incident, render_preview

NOTIFIED_SHOWN = 50
REFUSALS_SHOWN = 20


@dataclass(frozen=True)
class Transition:
    """A workflow button: the legal action it needs, what it calls, what it says when done."""

    label: Any
    needs: str
    done: Any
    call: Any
    form: Any = None


TRANSITIONS = {
    "acknowledge": Transition(
        label=gettext_lazy("Acknowledge"),
        needs="acknowledge",
        done=gettext_lazy("%(reference)s acknowledged."),
        call=lambda incident, user, version, post: workflow.acknowledge(
            incident, actor=user, expected_version=version
        ),
    ),
    "assign_to_me": Transition(
        label=gettext_lazy("Assign to me"),
        needs="assign",
        done=gettext_lazy("%(reference)s is assigned to you."),
        call=lambda incident, user, version, post: workflow.assign(
            incident, actor=user, assignee=user, expected_version=version
        ),
    ),
    "hold": Transition(
        label=gettext_lazy("Put on hold"),
        needs="hold",
        done=gettext_lazy("%(reference)s is on hold; its SLA clock is paused."),
        call=lambda incident, user, version, post: workflow.hold(
            incident, actor=user, reason=post.get("reason", ""), expected_version=version
        ),
        form=HoldForm,
    ),
    "resume": Transition(
        label=gettext_lazy("Resume"),
        needs="resume",
        done=gettext_lazy("%(reference)s resumed; its SLA clock runs again."),
        call=lambda incident, user, version, post: workflow.resume(
            incident, actor=user, expected_version=version
        ),
    ),
    "resolve": Transition(
        label=gettext_lazy("Resolve"),
        needs="resolve",
        done=gettext_lazy("%(reference)s resolved."),
        call=lambda incident, user, version, post: workflow.resolve(
            incident,
            actor=user,
            code=post.get("code", ""),
            notes=post.get("notes", ""),
            public_message=post.get("public_message", ""),
            expected_version=version,
        ),
        form=ResolveForm,
    ),
    "close": Transition(
        label=gettext_lazy("Close"),
        needs="close",
        done=gettext_lazy("%(reference)s closed."),
        call=lambda incident, user, version, post: workflow.close(
            incident, actor=user, expected_version=version
        ),
    ),
    "reopen": Transition(
        label=gettext_lazy("Reopen"),
        needs="reopen",
        done=gettext_lazy("%(reference)s reopened."),
        call=lambda incident, user, version, post: workflow.reopen(
            incident, actor=user, reason=post.get("reason", ""), expected_version=version
        ),
        form=ReopenForm,
    ),
}


def buttons_for(incident, user):
    """The transitions legal for the incident now, in the order a person works them."""
    legal = workflow.legal_actions(incident)
    shown = []
    for name, transition in TRANSITIONS.items():
        if transition.needs not in legal:
            continue
        if name == "assign_to_me" and incident.assignee_id == user.pk:
            continue
        shown.append(
            {
                "name": name,
                "label": transition.label,
                "url": reverse("admin:incidents_incident_act", args=[incident.pk, name]),
                "form": transition.form(auto_id=f"id_{name}_%s") if transition.form else None,
            }
        )
    return shown


def change_page_context(model_admin, request, object_id):
    """What the change page shows around the form: buttons, the update form, who was told."""
    incident = Incident.objects.filter(pk=object_id).first() if object_id.isdigit() else None
    if incident is None:
        return {}
    can_work = model_admin.has_work_permission(request, incident)
    return {
        "incident": incident,
        "can_work": can_work,
        "workflow_buttons": buttons_for(incident, request.user) if can_work else [],
        "can_post_update": can_work and "post_update" in workflow.legal_actions(incident),
        "update_form": UpdateForm(initial={"language": request.LANGUAGE_CODE[:2]}),
        "post_update_url": reverse("admin:incidents_incident_post_update", args=[incident.pk]),
        "preview_url": reverse("admin:incidents_incident_preview", args=[incident.pk]),
        "notified": list(notifications_for_incident(incident)[:NOTIFIED_SHOWN]),
        "being_expanded": list(events_being_expanded(incident)),
        "notified_limit": NOTIFIED_SHOWN,
    }


def _change_page(incident_pk, anchor=""):
    return HttpResponseRedirect(
        reverse("admin:incidents_incident_change", args=[incident_pk]) + anchor
    )


def _posted_version(request):
    try:
        return int(request.POST["version"])
    except (KeyError, ValueError):
        return None


def _incident_for_work(model_admin, request, object_id):
    if request.method != "POST":
        return None, HttpResponseNotAllowed(["POST"])
    if not model_admin.has_work_permission(request):
        raise PermissionDenied
    if not object_id.isdigit():
        raise Http404
    incident = get_object_or_404(Incident, pk=object_id)
    if not model_admin.has_work_permission(request, incident):
        raise PermissionDenied
    version = _posted_version(request)
    if version is None:
        messages.error(request, _("The page was missing the incident's version; reload it."))
        return None, _change_page(incident.pk)
    return (incident, version), None


def transition_view(model_admin):
    def view(request, object_id, action):
        transition = TRANSITIONS.get(action)
        if transition is None:
            raise PermissionDenied
        found, response = _incident_for_work(model_admin, request, object_id)
        if response is not None:
            return response
        incident, version = found
        try:
            transition.call(incident, request.user, version, request.POST)
        except workflow.WorkflowError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, transition.done % {"reference": incident.reference})
        return _change_page(incident.pk)

    return view


def post_update_view(model_admin):
    def view(request, object_id):
        found, response = _incident_for_work(model_admin, request, object_id)
        if response is not None:
            return response
        incident, version = found
        is_public = request.POST.get("is_public") in ("on", "true", "1")
        try:
            workflow.post_update(
                incident,
                actor=request.user,
                body=request.POST.get("body", ""),
                is_public=is_public,
                public_status=request.POST.get("public_status", ""),
                expected_version=version,
            )
        except workflow.WorkflowError as exc:
            messages.error(request, str(exc))
        else:
            done = (
                _("Public update posted to %(reference)s; subscribers will be notified.")
                if is_public
                else _("Work note added to %(reference)s.")
            )
            messages.success(request, done % {"reference": incident.reference})
        return _change_page(incident.pk, "#updates")

    return view


def preview_view(model_admin):
    """The email a public update with this text would send; renders, writes nothing."""

    def view(request, object_id):
        if not object_id.isdigit():
            raise Http404
        incident = get_object_or_404(Incident, pk=object_id)
        if not model_admin.has_view_permission(request, incident):
            raise PermissionDenied
        form = UpdateForm(request.POST or request.GET or None)
        preview = None
        if form.is_valid():
            data = form.cleaned_data
            status = data["public_status"] or incident.public_status or PublicStatus.INVESTIGATING
            preview = render_preview(
                incident, data["body"], status, data["language"] or request.LANGUAGE_CODE[:2]
            )
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "original": incident,
            "title": _("Email preview for %(reference)s") % {"reference": incident.reference},
            "form": form,
            "preview": preview,
        }
        return TemplateResponse(request, "admin/incidents/incident/preview.html", context)

    return view


# --- bulk actions --------------------------------------------------------------------------------


def run_bulk(model_admin, request, queryset, call, *, done):
    """Call the workflow once per selected incident; report who succeeded by reference and
    each refusal with the workflow's own words."""
    succeeded, refused = [], []
    pks = queryset.order_by().values_list("pk", flat=True)
    for incident in Incident.objects.filter(pk__in=pks).order_by("pk").iterator(chunk_size=200):
        try:
            call(incident)
        except workflow.WorkflowError as exc:
            refused.append(str(exc))
        else:
            succeeded.append(incident.reference)
    if succeeded:
        model_admin.message_user(
            request,
            done(len(succeeded)) % {"count": len(succeeded), "references": ", ".join(succeeded)},
            messages.SUCCESS,
        )
    for reason in refused[:REFUSALS_SHOWN]:
        model_admin.message_user(request, reason, messages.WARNING)
    if len(refused) > REFUSALS_SHOWN:
        model_admin.message_user(
            request,
            _("… and %(count)d more refused.") % {"count": len(refused) - REFUSALS_SHOWN},
            messages.WARNING,
        )
    return succeeded, refused


def _bulk_form_page(model_admin, request, queryset, *, form_class, action, title, run, done):
    """An action that needs input: the first POST (from the changelist) shows the form for the
    selected incidents; the second (``apply``) validates it and runs the workflow."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        run_bulk(model_admin, request, queryset, lambda inc: run(inc, form.cleaned_data), done=done)
        return None  # back to the changelist, with the messages
    selected = list(queryset.order_by("pk").values_list("pk", "title")[:100])
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "form": form,
        "action": action,
        "selected_incidents": [(Incident(pk=pk).reference, t) for pk, t in selected],
        "selected_count": queryset.count() if len(selected) == 100 else len(selected),
        "selected_pks": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/incidents/incident/bulk_form.html", context)


def bulk_resolve(model_admin, request, queryset):
    return _bulk_form_page(
        model_admin,
        request,
        queryset,
        form_class=ResolveForm,
        action="resolve_selected",
        title=_("Resolve the selected incidents"),
        run=lambda incident, data: workflow.resolve(
            incident,
            actor=request.user,
            code=data["code"],
            notes=data["notes"],
            public_message=data["public_message"],
        ),
        done=lambda n: ngettext(
            "Resolved %(count)d incident: %(references)s.",
            "Resolved %(count)d incidents: %(references)s.",
            n,
        ),
    )


def bulk_link_problem(model_admin, request, queryset):
    def run(incident, data):
        return workflow.link_problem(incident, actor=request.user, problem=data["problem"])

    return _bulk_form_page(
        model_admin,
        request,
        queryset,
        form_class=LinkProblemForm,
        action="link_to_problem",
        title=_("Link the selected incidents to a problem"),
        run=run,
        done=lambda n: ngettext(
            "Linked %(count)d incident to the problem: %(references)s.",
            "Linked %(count)d incidents to the problem: %(references)s.",
            n,
        ),
    )

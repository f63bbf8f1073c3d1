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
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from incidents import problem_links, selectors, workflow
from incidents.deadlines import explain_lines, left_on_hold
from incidents.forms import (
    HoldForm,
    LinkProblemForm,
    ProblemFromIncidentsForm,
    ReopenForm,
    ResolveForm,
    ResolveLinkedForm,
    UpdateForm,
)
from incidents.models import Incident, PublicStatus, parse_id
from incidents.notify import events_being_expanded, notifications_for_incident, render_preview
from incidents.sla_text import target_lines
from problems.models import Problem, ProblemState

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
        call=lambda incident, user, version, data: workflow.acknowledge(
            incident, actor=user, expected_version=version
        ),
    ),
    "assign_to_me": Transition(
        label=gettext_lazy("Assign to me"),
        needs="assign",
        done=gettext_lazy("%(reference)s is assigned to you."),
        call=lambda incident, user, version, data: workflow.assign(
            incident, actor=user, assignee=user, expected_version=version
        ),
    ),
    "hold": Transition(
        label=gettext_lazy("Put on hold"),
        needs="hold",
        done=gettext_lazy("%(reference)s is on hold; its SLA clock is paused."),
        call=lambda incident, user, version, data: workflow.hold(
            incident, actor=user, reason=data["reason"], expected_version=version
        ),
        form=HoldForm,
    ),
    "resume": Transition(
        label=gettext_lazy("Resume"),
        needs="resume",
        done=gettext_lazy("%(reference)s resumed; its SLA clock runs again."),
        call=lambda incident, user, version, data: workflow.resume(
            incident, actor=user, expected_version=version
        ),
    ),
    "resolve": Transition(
        label=gettext_lazy("Resolve"),
        needs="resolve",
        done=gettext_lazy("%(reference)s resolved."),
        call=lambda incident, user, version, data: workflow.resolve(
            incident,
            actor=user,
            code=data["code"],
            notes=data["notes"],
            public_message=data["public_message"],
            expected_version=version,
        ),
        form=ResolveForm,
    ),
    "close": Transition(
        label=gettext_lazy("Close"),
        needs="close",
        done=gettext_lazy("%(reference)s closed."),
        call=lambda incident, user, version, data: workflow.close(
            incident, actor=user, expected_version=version
        ),
    ),
    "reopen": Transition(
        label=gettext_lazy("Reopen"),
        needs="reopen",
        done=gettext_lazy("%(reference)s reopened."),
        call=lambda incident, user, version, data: workflow.reopen(
            incident, actor=user, reason=data["reason"], expected_version=version
        ),
        form=ReopenForm,
    ),
}


def buttons_for(incident, user, refused=None):
    """The transitions legal for the incident now, in the order a person works them. A refused
    one (``refused``: its name and bound form) comes back open, with what was typed."""
    legal = workflow.legal_actions(incident)
    refused = refused or {}
    shown = []
    for name, transition in TRANSITIONS.items():
        if transition.needs not in legal and refused.get("button") != name:
            continue
        if name == "assign_to_me" and incident.assignee_id == user.pk:
            continue
        form = None
        if refused.get("button") == name:
            form = refused["form"]
        elif transition.form:
            form = transition.form(auto_id=f"id_{name}_%s")
        shown.append(
            {
                "name": name,
                "label": transition.label,
                "url": reverse("admin:incidents_incident_act", args=[incident.pk, name]),
                "form": form,
                "open": refused.get("button") == name,
            }
        )
    return shown


def change_page_context(model_admin, request, object_id, refused=None):
    """What the change page shows around the form: buttons, the update form, who was told.
    ``refused``: a button's or the update form's input the workflow refused, shown again."""
    pk = parse_id(object_id)
    found = model_admin.get_queryset(request).select_related("assignee", "assignment_group")
    incident = found.filter(pk=pk).first() if pk is not None else None
    if incident is None:
        return {}
    request.itsm_incident = incident  # the form shows this row too (IncidentAdmin.get_object)
    now = timezone.now()
    can_work = model_admin.has_work_permission(request, incident)
    refused = refused or {}
    update_form = refused.get("update_form") or UpdateForm(
        initial={"language": request.LANGUAGE_CODE[:2]}
    )
    return {
        "incident": incident,
        "sla_lines": target_lines(incident, now, left_on_hold(incident, now)),
        "sla_policy_lines": explain_lines(incident),
        "related": selectors.related_open_incidents(incident, request.user),
        "can_work": can_work,
        "workflow_buttons": buttons_for(incident, request.user, refused) if can_work else [],
        "can_post_update": can_work and "post_update" in workflow.legal_actions(incident),
        "update_form": update_form,
        "update_refused": "update_form" in refused,
        "post_update_url": reverse("admin:incidents_incident_post_update", args=[incident.pk]),
        "preview_url": reverse("admin:incidents_incident_preview", args=[incident.pk]),
        "notified": list(notifications_for_incident(incident)[:NOTIFIED_SHOWN]),
        "being_expanded": list(events_being_expanded(incident)),
        "notified_limit": NOTIFIED_SHOWN,
        **known_errors_context(incident, request, can_work),
    }


def known_errors_context(incident, request, can_work):
    """The known errors the change page offers: those on the incident's affected services,
    and those matching the agent's search (``?known_error=``), each linked in one click."""
    query = request.GET.get("known_error", "").strip()[:200]
    linkable = can_work and "link_problem" in workflow.legal_actions(incident)
    return {
        "known_errors": problem_links.known_error_suggestions(incident, request.user),
        "known_error_query": query,
        "known_error_results": problem_links.search_known_errors(query, request.user),
        "can_link_known_error": linkable,
        "linked_problem": incident.problem if incident.problem_id else None,
        "link_known_error_url": reverse(
            "admin:incidents_incident_link_known_error", args=[incident.pk]
        ),
        "unlink_problem_url": reverse(
            "admin:incidents_incident_unlink_problem", args=[incident.pk]
        ),
    }


def _change_page(incident_pk, anchor=""):
    return HttpResponseRedirect(
        reverse("admin:incidents_incident_change", args=[incident_pk]) + anchor
    )


def _posted_version(request):
    return parse_id(request.POST.get("version", ""))


def _incident_for_work(model_admin, request, object_id):
    if request.method != "POST":
        return None, HttpResponseNotAllowed(["POST"])
    if not model_admin.has_work_permission(request):
        raise PermissionDenied
    pk = parse_id(object_id)
    if pk is None:
        raise Http404
    incident = get_object_or_404(model_admin.get_queryset(request), pk=pk)
    if not model_admin.has_work_permission(request, incident):
        raise PermissionDenied
    version = _posted_version(request)
    if version is None:
        messages.error(request, _("The page was missing the incident's version; reload it."))
        return None, _change_page(incident.pk)
    return (incident, version), None


def _refuse(form, exc):
    """Put the workflow's refusal next to the field it is about (or above the form)."""
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else None, str(exc))


def _show_again(model_admin, request, incident, form, *, button=None, reason=None):
    """The change page as it is now, with the refused input in its form (a button's, or the
    update form when ``button`` is None) and the error beside the field: nothing the agent typed
    is lost. Rendered in this response, not a redirect, so the typed text is kept nowhere."""
    for name in form.errors:
        if name in form.fields:
            # The browser scrolls to the field in error, wherever it is on the page.
            form.fields[name].widget.attrs["autofocus"] = True
            break
    messages.error(request, reason or _("Nothing was saved: correct what is marked by the form."))
    refused = {"button": button, "form": form} if button else {"update_form": form}
    request.method = "GET"  # render the change page; its own form was not submitted
    return model_admin.change_view(request, str(incident.pk), extra_context={"refused": refused})


def transition_view(model_admin):
    def view(request, object_id, action):
        transition = TRANSITIONS.get(action)
        if transition is None:
            raise PermissionDenied
        found, response = _incident_for_work(model_admin, request, object_id)
        if response is not None:
            return response
        incident, version = found
        form = None
        if transition.form:
            form = transition.form(request.POST, auto_id=f"id_{action}_%s")
            if not form.is_valid():
                return _show_again(model_admin, request, incident, form, button=action)
        try:
            transition.call(incident, request.user, version, form.cleaned_data if form else {})
        except workflow.WorkflowError as exc:
            if form is None:
                messages.error(request, str(exc))
                return _change_page(incident.pk)
            _refuse(form, exc)
            return _show_again(model_admin, request, incident, form, button=action, reason=str(exc))
        messages.success(request, transition.done % {"reference": incident.reference})
        return _change_page(incident.pk)

    return view


def post_update_view(model_admin):
    def view(request, object_id):
        found, response = _incident_for_work(model_admin, request, object_id)
        if response is not None:
            return response
        incident, version = found
        form = UpdateForm(request.POST)
        if not form.is_valid():
            return _show_again(model_admin, request, incident, form)
        is_public = form.cleaned_data["is_public"]
        try:
            workflow.post_update(
                incident,
                actor=request.user,
                body=form.cleaned_data["body"],
                body_ro=form.cleaned_data["body_ro"],
                is_public=is_public,
                public_status=form.cleaned_data["public_status"],
                expected_version=version,
            )
        except workflow.WorkflowError as exc:
            _refuse(form, exc)
            return _show_again(model_admin, request, incident, form, reason=str(exc))
        else:
            done = (
                _("Public update posted to %(reference)s; subscribers will be notified.")
                if is_public
                else _("Work note added to %(reference)s.")
            )
            messages.success(request, done % {"reference": incident.reference})
        return _change_page(incident.pk)

    return view


def preview_view(model_admin):
    """The email a public update with this text would send; renders, writes nothing."""

    def view(request, object_id):
        pk = parse_id(object_id)
        if pk is None:
            raise Http404
        incident = get_object_or_404(model_admin.get_queryset(request), pk=pk)
        if not model_admin.has_view_permission(request, incident):
            raise PermissionDenied
        form = UpdateForm(request.POST or request.GET or None)
        preview = None
        if form.is_valid():
            data = form.cleaned_data
            status = data["public_status"] or incident.public_status or PublicStatus.INVESTIGATING
            preview = render_preview(
                incident,
                data["body"],
                status,
                data["language"] or request.LANGUAGE_CODE[:2],
                body_ro=data["body_ro"],
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


# --- problems and known errors -------------------------------------------------------------------


def link_known_error_view(model_admin):
    """One click on a suggested (or found) known error: the incident is linked to it and its
    workaround is quoted on the incident's timeline."""

    def view(request, object_id):
        found, response = _incident_for_work(model_admin, request, object_id)
        if response is not None:
            return response
        incident, version = found
        pk = parse_id(request.POST.get("problem", ""))
        problem = None
        if pk is not None:
            problem = Problem.objects.visible_to(request.user).known_errors().filter(pk=pk).first()
        if problem is None:
            messages.error(request, _("Choose a known error to link."))
            return _change_page(incident.pk, "#known-errors")
        try:
            workflow.link_problem(
                incident,
                actor=request.user,
                problem=problem,
                quote_workaround=True,
                expected_version=version,
            )
        except workflow.WorkflowError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _(
                    "%(reference)s is linked to the known error %(problem)s; its workaround is "
                    "on the timeline."
                )
                % {"reference": incident.reference, "problem": problem.reference},
            )
        return _change_page(incident.pk, "#known-errors")

    return view


def unlink_problem_view(model_admin):
    def view(request, object_id):
        found, response = _incident_for_work(model_admin, request, object_id)
        if response is not None:
            return response
        incident, version = found
        try:
            workflow.link_problem(
                incident, actor=request.user, problem=None, expected_version=version
            )
        except workflow.WorkflowError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("%(reference)s is no longer linked to a problem.")
                % {"reference": incident.reference},
            )
        return _change_page(incident.pk, "#known-errors")

    return view


def bulk_create_problem(model_admin, request, queryset):
    """The incident list's action: a new problem for the selected incidents, all linked to it.
    The first POST shows the form; the second (``apply``) creates it and opens its page."""
    incidents = list(queryset.order_by("pk")[:100])
    initial = {"title": incidents[0].title} if incidents else {}
    form = ProblemFromIncidentsForm(
        request.POST if "apply" in request.POST else None, initial=initial
    )
    if form.is_valid():
        try:
            problem = problem_links.create_problem_from_incidents(
                queryset.order_by("pk"),
                actor=request.user,
                title=form.cleaned_data["title"],
                description=form.cleaned_data["description"],
            )
        except workflow.WorkflowError as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
            return None
        model_admin.message_user(
            request,
            ngettext(
                "%(problem)s opened with %(count)d incident linked.",
                "%(problem)s opened with %(count)d incidents linked.",
                problem.incidents.count(),
            )
            % {"problem": problem.reference, "count": problem.incidents.count()},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:problems_problem_change", args=[problem.pk]))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": _("Open a problem for the selected incidents"),
        "form": form,
        "action": "create_problem",
        "selected_incidents": [(i.reference, i.title) for i in incidents],
        "selected_count": queryset.count() if len(incidents) == 100 else len(incidents),
        "selected_pks": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/incidents/incident/bulk_form.html", context)


def resolve_for_problem_view(model_admin):
    """After a problem is resolved: its linked open incidents, offered for resolution together
    (a confirmation page listing them; each resolved through ``incidents.workflow.resolve``)."""

    def view(request, problem_id):
        if not model_admin.has_work_permission(request):
            raise PermissionDenied
        problem = get_object_or_404(Problem.objects.visible_to(request.user), pk=problem_id)
        back = HttpResponseRedirect(reverse("admin:problems_problem_change", args=[problem.pk]))
        open_incidents = list(problem_links.open_linked_incidents(problem, request.user)[:200])
        if not open_incidents:
            return back  # nothing to offer: the problem's page, with its own message
        data = request.POST if request.method == "POST" else None
        initial = {"notes": problem.permanent_fix} if problem.state == ProblemState.RESOLVED else {}
        form = ResolveLinkedForm(data, incidents=open_incidents, initial=initial)
        if form.is_valid():
            resolved, refused = problem_links.resolve_linked_incidents(
                problem,
                actor=request.user,
                incident_ids=form.cleaned_data["incidents"],
                code=form.cleaned_data["code"],
                notes=form.cleaned_data["notes"],
            )
            if resolved:
                messages.success(
                    request,
                    ngettext(
                        "Resolved %(count)d incident: %(references)s.",
                        "Resolved %(count)d incidents: %(references)s.",
                        len(resolved),
                    )
                    % {"count": len(resolved), "references": ", ".join(resolved)},
                )
            for reason in refused[:REFUSALS_SHOWN]:
                messages.warning(request, reason)
            return back
        context = {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "title": _("Resolve the open incidents of %(problem)s")
            % {"problem": problem.reference},
            "problem": problem,
            "form": form,
        }
        return TemplateResponse(
            request, "admin/incidents/incident/resolve_for_problem.html", context
        )

    return view

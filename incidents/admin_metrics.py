"""The metrics dashboard in the admin (linked from the index as Incidents › Metrics): a range,
charts (MTTR and SLA compliance by month, incidents and cost by service) with their figures in
tables, and the same figures as CSV (``?format=csv``). Reads only: ``incidents.metrics``."""

import csv

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from incidents import charts, metrics
from incidents.cost import format_cost
from incidents.models import IncidentMetrics


class RangeForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("from"), required=False)
    end = forms.DateField(label=gettext_lazy("to (inclusive)"), required=False)

    def clean(self):
        data = super().clean()
        first, last = metrics.default_days()
        data["start"] = data.get("start") or first
        data["end"] = data.get("end") or last
        for name, message in metrics.range_problems(data["start"], data["end"]).items():
            self.add_error(name, message)
        return data


def duration(seconds):
    if seconds is None:
        return "—"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


def percent(share):
    return "—" if share is None else f"{share * 100:.1f} %"


def _charts(found):
    return [
        charts.bar_chart(
            chart_id="mttr-by-month",
            title=_("Mean time to resolve by month"),
            bars=[(f.label, f.mttr_seconds, duration(f.mttr_seconds)) for f in found.by_month],
        ),
        charts.bar_chart(
            chart_id="compliance-by-month",
            title=_("SLA compliance by month"),
            bars=[(f.label, f.compliance, percent(f.compliance)) for f in found.by_month],
            colour="#15803d",
        ),
        charts.bar_chart(
            chart_id="incidents-by-service",
            title=_("Incidents by service"),
            bars=[(f.label, f.incidents, str(f.incidents)) for f in found.by_service[:15]],
            colour="#ca8a04",
        ),
        charts.bar_chart(
            chart_id="cost-by-service",
            title=_("Cost of downtime by service"),
            bars=[
                (f.label, float(f.cost), format_cost(f.cost))
                for f in sorted(found.by_service, key=lambda f: -f.cost)[:15]
            ],
            colour="#b91c1c",
        ),
    ]


def _csv(found, first, last):
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="itsm-metrics-{first}-{last}.csv"'
    writer = csv.writer(response)
    writer.writerow(metrics.ROWS_HEADER)
    writer.writerows(metrics.rows(found))
    return response


@admin.register(IncidentMetrics)
class IncidentMetricsAdmin(admin.ModelAdmin):
    """No list, no form: its changelist is the dashboard."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("incidents.view_incident")

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = RangeForm(request.GET or None)
        found = None
        if form.is_bound and not form.is_valid():
            first = last = None
        else:
            if not form.is_bound:
                form = RangeForm({})
                form.is_valid()
            first, last = form.cleaned_data["start"], form.cleaned_data["end"]
            start, end = metrics.day_range(first, last)
            queryset = IncidentMetrics.objects.visible_to(request.user)
            found = metrics.report(queryset, start=start, end=end)
            if request.GET.get("format") == "csv":
                return _csv(found, first, last)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Incident metrics"),
            "form": form,
            "found": found,
            "first": first,
            "last": last,
            "charts": _charts(found) if found else [],
            "currency": found.currency if found else "",
            "tables": [
                (_("By month"), found.by_month),
                (_("By priority"), found.by_priority),
                (_("By assignment group"), found.by_group),
                (_("By service"), found.by_service),
            ]
            if found
            else [],
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/incidents/incidentmetrics/dashboard.html", context)

"""The running cost of downtime in the incident admin: a queue column and a change-page field.

A mixin, so ``incidents/admin.py`` only names the column and the field. The changelist reads
the costs of the page's incidents at once (``incidents.cost.running_costs``: two round trips
whatever the page size) after pagination, not per row.
"""

from django.contrib.admin.views.main import ChangeList
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from incidents.cost import format_cost, running_costs
from services.models import Service, ServiceStatus


class CostChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        page = list(self.result_list)
        costs = running_costs(page, now=timezone.now())
        for incident in page:
            incident.running_cost = costs.get(incident.pk)
        self.result_list = page


def duration_text(seconds):
    hours, rest = divmod(int(seconds), 3600)
    minutes = rest // 60
    if hours:
        return _("%(h)d h %(m)02d min") % {"h": hours, "m": minutes}
    return _("%(m)d min") % {"m": minutes}


class CostColumnsMixin:
    def get_changelist(self, request, **kwargs):
        return CostChangeList

    def _running_cost(self, obj):
        found = getattr(obj, "running_cost", None)
        if found is None:  # the change page: one incident
            found = running_costs([obj], now=timezone.now())[obj.pk]
            obj.running_cost = found
        return found

    def cost_column(self, obj):
        cost = self._running_cost(obj)
        if not cost.total and not cost.per_hour_now:
            return "—"
        if cost.per_hour_now:
            return format_html(
                '<span class="itsm-cost itsm-cost-running" title="{}">{}</span>',
                _("still rising by %(rate)s an hour") % {"rate": format_cost(cost.per_hour_now)},
                format_cost(cost.total),
            )
        return format_html('<span class="itsm-cost">{}</span>', format_cost(cost.total))

    cost_column.short_description = gettext_lazy("cost of downtime")

    def cost_summary(self, obj):
        """The total, how fast it grows now, and one line per service hurt."""
        cost = self._running_cost(obj)
        if not cost.services:
            return _("No downtime recorded.")
        names = cost.names or dict(
            Service.objects.filter(pk__in=[s.service_id for s in cost.services]).values_list(
                "pk", "name"
            )
        )
        labels = dict(ServiceStatus.choices)
        head = format_cost(cost.total)
        if cost.per_hour_now:
            head = _("%(total)s so far, rising by %(rate)s an hour") % {
                "total": head,
                "rate": format_cost(cost.per_hour_now),
            }
        lines = []
        for line in cost.services:
            parts = ", ".join(
                f"{labels[status]} {duration_text(seconds)}"
                for status, seconds in sorted(line.seconds.items())
            )
            via = _(" (through a dependency)") if line.derived else ""
            lines.append(
                (names.get(line.service_id, line.service_id), via, parts, format_cost(line.cost))
            )
        return format_html(
            "<strong>{}</strong><br>{}",
            head,
            format_html_join(mark_safe("<br>"), "{}{}: {} — {}", lines),
        )

    cost_summary.short_description = gettext_lazy("cost of downtime")

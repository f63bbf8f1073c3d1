"""The cost of downtime: what an incident's impact on services costs, from its impact intervals.

The rule, to the second:

- Each impact interval of the incident (``services.ServiceImpact``, cause ``incident``) puts a
  service in a status from ``valid_from`` to ``valid_to`` (still open: until now). An hour in
  major outage, partial outage or degraded performance costs the service's rate for it
  (``Service.cost_*_per_hour``), or the reporting organisation's own rate where its contract
  for that service sets one (``Contract.cost_*_per_hour``, field by field).
- A service that depends on a hurt service (transitively, ``services.graph``) is hurt too, as
  the status page says it is: degraded performance, for the same time, unless the incident
  itself hurts it worse at that moment. Each instant of a service counts once, at the worst
  status the incident causes there.
- Maintenance is excluded: while a maintenance window holds a service (its own impact
  interval), the incident costs nothing on that service. Planned work is downtime the customer
  agreed to; "under maintenance" caused by the incident itself has no rate either.
- A hold does not stop the cost (the service is still down); a resolution does (the impacts
  end), and a reopen starts new intervals, so the time spent resolved costs nothing.

Pure functions do the arithmetic; ``running_costs`` reads everything a page of incidents needs
in a constant number of round trips.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import number_format

from itsm.rows import read_together
from services.models import (
    STATUS_SEVERITY,
    CauseKind,
    Contract,
    Service,
    ServiceDependency,
    ServiceImpact,
    ServiceStatus,
)

ZERO = Decimal(0)
CENT = Decimal("0.01")

# The statuses that cost money, and the rate field that prices each.
RATE_FIELDS = {
    ServiceStatus.MAJOR_OUTAGE: "cost_major_per_hour",
    ServiceStatus.PARTIAL_OUTAGE: "cost_partial_per_hour",
    ServiceStatus.DEGRADED_PERFORMANCE: "cost_degraded_per_hour",
}
COSTED_STATUSES = tuple(RATE_FIELDS)
# What a service hurt through a dependency is (as on the status page).
DERIVED_STATUS = ServiceStatus.DEGRADED_PERFORMANCE


@dataclass(frozen=True)
class Rates:
    """What an hour in each costed status costs one service."""

    major: Decimal = ZERO
    partial: Decimal = ZERO
    degraded: Decimal = ZERO

    def per_hour(self, status):
        return {
            ServiceStatus.MAJOR_OUTAGE: self.major,
            ServiceStatus.PARTIAL_OUTAGE: self.partial,
            ServiceStatus.DEGRADED_PERFORMANCE: self.degraded,
        }.get(status, ZERO)

    def overridden(self, major=None, partial=None, degraded=None):
        """These rates with a contract's own where it sets them (None: keep the service's)."""
        return Rates(
            self.major if major is None else major,
            self.partial if partial is None else partial,
            self.degraded if degraded is None else degraded,
        )


@dataclass(frozen=True)
class Span:
    """A service in a status over [start, end); ``end`` None: still open."""

    service_id: int
    status: str
    start: dt.datetime
    end: dt.datetime | None


@dataclass
class ServiceCost:
    service_id: int
    seconds: dict = field(default_factory=dict)  # status: seconds charged
    cost: Decimal = ZERO
    derived: bool = False  # hurt only through a dependency

    @property
    def downtime_seconds(self):
        return sum(self.seconds.values())


@dataclass
class IncidentCost:
    total: Decimal = ZERO
    per_hour_now: Decimal = ZERO  # how fast it grows at ``now`` (open impacts)
    services: list = field(default_factory=list)  # ServiceCost, the costliest first
    # {service id: name} of the services involved, read with their rates (for the change page)
    names: dict = field(default_factory=dict)

    @property
    def downtime_seconds(self):
        return sum(s.downtime_seconds for s in self.services)


def dependents_closure(edges):
    """{service id: ids of the services that depend on it, directly or transitively} from the
    dependency edges (service, depends_on). Cycles (bad data) end the walk."""
    direct = defaultdict(set)
    for service_id, depends_on_id in edges:
        direct[depends_on_id].add(service_id)
    closure = {}
    for root in list(direct):
        seen, stack = set(), list(direct[root])
        while stack:
            pk = stack.pop()
            if pk in seen or pk == root:
                continue
            seen.add(pk)
            stack.extend(direct.get(pk, ()))
        closure[root] = seen
    return closure


def with_dependents(impacts, dependents):
    """The incident's impacts and, for each, the same time on every service depending on the
    hurt one, in ``DERIVED_STATUS``. Maintenance is not passed on: it is planned, not a fault."""
    spans = list(impacts)
    for impact in impacts:
        if impact.status not in COSTED_STATUSES:
            continue
        for pk in dependents.get(impact.service_id, ()):
            if pk != impact.service_id:
                spans.append(Span(pk, DERIVED_STATUS, impact.start, impact.end))
    return spans


def _clip(start, end, now):
    end = now if end is None or end > now else end
    return start, end


def worst_segments(spans, now):
    """For one service: [(status, start, end)] with, at each instant covered by a span, the worst
    status among the spans there (each instant once). Open spans end at ``now``."""
    clipped = [(s.status, *_clip(s.start, s.end, now)) for s in spans]
    clipped = [c for c in clipped if c[2] > c[1]]
    edges = sorted({c[1] for c in clipped} | {c[2] for c in clipped})
    segments = []
    for start, end in zip(edges, edges[1:], strict=False):
        active = [c[0] for c in clipped if c[1] <= start and c[2] >= end]
        if not active:
            continue
        status = max(active, key=lambda s: STATUS_SEVERITY[s])
        if segments and segments[-1][0] == status and segments[-1][2] == start:
            segments[-1] = (status, segments[-1][1], end)
        else:
            segments.append((status, start, end))
    return segments


def without(segments, holes, now):
    """``segments`` [(status, start, end)] minus the time covered by ``holes`` (Spans)."""
    holes = sorted(_clip(h.start, h.end, now) for h in holes)
    result = []
    for status, start, end in segments:
        pieces = [(start, end)]
        for h_start, h_end in holes:
            next_pieces = []
            for p_start, p_end in pieces:
                if h_end <= p_start or h_start >= p_end:
                    next_pieces.append((p_start, p_end))
                    continue
                if h_start > p_start:
                    next_pieces.append((p_start, h_start))
                if h_end < p_end:
                    next_pieces.append((h_end, p_end))
            pieces = next_pieces
        result.extend((status, a, b) for a, b in pieces if b > a)
    return result


def incident_cost(impacts, *, rates, dependents=None, maintenance=(), now):
    """The cost of one incident up to ``now``.

    ``impacts``: its Spans; ``rates``: {service id: Rates} (a service missing costs nothing);
    ``dependents``: ``dependents_closure`` of the catalog; ``maintenance``: maintenance Spans
    of the services concerned."""
    spans = with_dependents(impacts, dependents or {})
    direct = {s.service_id for s in impacts}
    by_service = defaultdict(list)
    for span in spans:
        by_service[span.service_id].append(span)
    holes = defaultdict(list)
    for hole in maintenance:
        holes[hole.service_id].append(hole)
    result = IncidentCost()
    for service_id, service_spans in by_service.items():
        segments = without(worst_segments(service_spans, now), holes[service_id], now)
        line = ServiceCost(service_id, derived=service_id not in direct)
        service_rates = rates.get(service_id, Rates())
        exact = ZERO
        for status, start, end in segments:
            if status not in COSTED_STATUSES:
                continue
            seconds = int((end - start).total_seconds())
            line.seconds[status] = line.seconds.get(status, 0) + seconds
            exact += service_rates.per_hour(status) * seconds / 3600
            if end == now and _open_at(service_spans, now):
                result.per_hour_now += service_rates.per_hour(status)
        line.cost = exact.quantize(CENT, ROUND_HALF_UP)
        result.total += exact
        if line.seconds:
            result.services.append(line)
    result.total = result.total.quantize(CENT, ROUND_HALF_UP)
    result.services.sort(key=lambda line: (-line.cost, line.service_id))
    return result


def _open_at(spans, now):
    return any(s.end is None or s.end > now for s in spans)


# --- reading what a page of incidents needs ----------------------------------------------------


def _rows(querysets):
    """The rows of each ``values_list`` queryset: in one round trip on PostgreSQL (raw rows,
    which its driver already converts), one query each elsewhere (where the ORM's converters are
    needed, e.g. SQLite's text timestamps)."""
    if connection.vendor == "postgresql":
        return read_together([qs.query.sql_with_params() for qs in querysets])
    return [list(qs) for qs in querysets]


def running_costs(incidents, *, now=None):
    """{incident id: IncidentCost} for ``incidents`` (objects with ``pk`` and
    ``organization_id``), up to ``now``: two round trips whatever their number."""
    now = now or timezone.now()
    incidents = list(incidents)
    if not incidents:
        return {}
    ids = [i.pk for i in incidents]
    impacts_rows, edges = _rows(
        [
            ServiceImpact.objects.filter(cause_kind=CauseKind.INCIDENT, cause_id__in=ids)
            .order_by()
            .values_list("cause_id", "service_id", "status", "valid_from", "valid_to"),
            ServiceDependency.objects.order_by().values_list("service_id", "depends_on_id"),
        ]
    )
    dependents = dependents_closure(edges)
    impacts = defaultdict(list)
    for cause_id, service_id, status, start, end in impacts_rows:
        impacts[cause_id].append(Span(service_id, status, start, end))
    involved = set()
    for spans in impacts.values():
        for span in spans:
            involved.add(span.service_id)
            involved |= dependents.get(span.service_id, set())
    if not involved:
        return {pk: IncidentCost() for pk in ids}
    organizations = {i.organization_id for i in incidents if i.organization_id}
    earliest = min(s.start for spans in impacts.values() for s in spans)
    rate_fields = list(RATE_FIELDS.values())
    statements = [
        Service.objects.filter(pk__in=involved).order_by().values_list("pk", "name", *rate_fields),
        ServiceImpact.objects.filter(cause_kind=CauseKind.MAINTENANCE, service_id__in=involved)
        .overlapping(earliest, now)
        .order_by()
        .values_list("service_id", "status", "valid_from", "valid_to"),
    ]
    if organizations:
        statements.append(
            Contract.objects.filter(organization_id__in=organizations, service_id__in=involved)
            .filter(
                Q(cost_major_per_hour__isnull=False)
                | Q(cost_partial_per_hour__isnull=False)
                | Q(cost_degraded_per_hour__isnull=False)
            )
            .order_by()
            .values_list("organization_id", "service_id", *rate_fields)
        )
    found = _rows(statements)
    base = {pk: Rates(*map(_decimal, values)) for pk, _name, *values in found[0]}
    names = {pk: name for pk, name, *_values in found[0]}
    maintenance = [Span(*row) for row in found[1]]
    contracts = defaultdict(dict)
    for organization_id, service_id, *values in found[2] if organizations else ():
        contracts[organization_id][service_id] = [
            None if v is None else _decimal(v) for v in values
        ]
    result = {}
    for incident in incidents:
        rates = base
        own = contracts.get(incident.organization_id)
        if own:
            rates = {pk: r.overridden(*own[pk]) if pk in own else r for pk, r in base.items()}
        result[incident.pk] = incident_cost(
            impacts.get(incident.pk, []),
            rates=rates,
            dependents=dependents,
            maintenance=maintenance,
            now=now,
        )
        result[incident.pk].names = names
    return result


def _decimal(value):
    # Raw rows come back as Decimal on PostgreSQL, as text or float on SQLite.
    return value if isinstance(value, Decimal) else Decimal(str(value))


def format_cost(amount):
    """``EUR 1,234.50``: the amount with the currency of the settings, in the active locale."""
    return f"{settings.DOWNTIME_COST_CURRENCY} {number_format(amount, 2, force_grouping=True)}"

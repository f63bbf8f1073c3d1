"""M1, the metrics dashboard's figures for a year over a million incidents (quick: 20,000):
``incidents.metrics.report`` as the admin dashboard and the API call it (every incident seen,
as a superuser does), with one affected service and one impact interval per incident. Target:
≤ 500 ms (median of 5), with its query count (three, whatever the size)."""

from bench.common import Row, analyze, median_time, say, table_of
from bench.data import HISTORY_MIX, copy_incidents, make_catalog

TARGET_MS = 500


def _link_services(catalog):
    """One affected service per incident and, for each resolved or closed one, its impact
    interval from opening to resolution: by SQL, the way a bulk import would."""
    from django.db import connection

    from incidents.models import Incident, IncidentService
    from services.models import ServiceImpact

    ids = [s.pk for s in catalog.services]
    statuses = ["partial_outage", "major_outage", "degraded_performance"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table_of(IncidentService)} (incident_id, service_id, status) "  # noqa: S608
            f"SELECT i.id, (%s::bigint[])[1 + i.id %% %s], (%s::text[])[1 + i.id %% 3] "
            f"FROM {table_of(Incident)} i",
            [ids, len(ids), statuses],
        )
        cursor.execute(
            f"INSERT INTO {table_of(ServiceImpact)} "  # noqa: S608
            "(service_id, cause_kind, cause_id, status, valid_from, valid_to) "
            "SELECT l.service_id, 'incident', i.id, l.status, i.opened_at, i.resolved_at "
            f"FROM {table_of(Incident)} i JOIN {table_of(IncidentService)} l "
            "ON l.incident_id = i.id WHERE i.resolved_at IS NOT NULL",
        )
        cursor.execute(
            f"UPDATE {table_of(catalog.services[0].__class__)} SET cost_major_per_hour = 1000, "  # noqa: S608
            "cost_partial_per_hour = 300, cost_degraded_per_hour = 50"
        )
    analyze(table_of(IncidentService), table_of(ServiceImpact))


def run(quick: bool) -> list[Row]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from bench.common import fresh_database
    from incidents import metrics
    from incidents.models import Incident

    size = 20_000 if quick else 1_000_000
    with fresh_database():
        catalog = make_catalog()
        now = timezone.now()
        copy_incidents(size, catalog=catalog, now=now, mix=HISTORY_MIX, desc=f"{size:,} incidents")
        _link_services(catalog)
        first, last = metrics.default_days(now.date())
        start, end = metrics.day_range(first, last)
        in_range = Incident.objects.filter(opened_at__gte=start, opened_at__lt=end).count()
        say(f"{in_range:,} of {size:,} incidents opened in {first} – {last}")

        def dashboard():
            return metrics.report(Incident.objects.all(), start=start, end=end, now=now)

        with CaptureQueriesContext(connection) as ctx:
            found = dashboard()
        queries = len(ctx.captured_queries)
        assert found.total.incidents == in_range
        seconds, _times = median_time(dashboard, repeat=3 if quick else 5)
    ms = seconds * 1000
    return [
        Row("incidents in the table", size),
        Row("incidents opened in the year", in_range),
        Row(
            "dashboard figures for a year",
            round(ms, 1),
            "ms",
            target=f"≤ {TARGET_MS} ms",
            met=ms <= TARGET_MS,
        ),
        Row("queries", queries, target="3", met=queries == 3),
    ]

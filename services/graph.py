"""The service dependency graph, walked in the database with one recursive query.

An edge ``ServiceDependency(service=checkout, depends_on=payments)`` means that when
``payments`` is hurt, ``checkout`` is hurt too. Both SQLite and PostgreSQL run ``WITH RECURSIVE``;
``UNION`` (not ``UNION ALL``) drops rows already seen, so the walk ends even on bad data.
"""

from django.db import connection

from services.models import Service, ServiceDependency

_DEPENDENTS_SQL = """
WITH RECURSIVE hurt(id) AS (
    SELECT id FROM {service} WHERE id IN ({placeholders})
    UNION
    SELECT d.service_id FROM {dependency} d JOIN hurt ON d.depends_on_id = hurt.id
)
SELECT id FROM hurt
"""

_DEPENDENCIES_SQL = """
WITH RECURSIVE needed(id) AS (
    SELECT id FROM {service} WHERE id IN ({placeholders})
    UNION
    SELECT d.depends_on_id FROM {dependency} d JOIN needed ON d.service_id = needed.id
)
SELECT id FROM needed
"""


def _walk(sql, service_ids):
    service_ids = [int(pk) for pk in service_ids]
    if not service_ids:
        return set()
    query = sql.format(
        service=Service._meta.db_table,
        dependency=ServiceDependency._meta.db_table,
        placeholders=", ".join(["%s"] * len(service_ids)),
    )
    with connection.cursor() as cursor:
        cursor.execute(query, service_ids)
        return {row[0] for row in cursor.fetchall()}


def hurt_service_ids(service_ids):
    """Ids of the given services and of every service that depends on one of them, directly or
    transitively: everything hurt when these are hurt. One query."""
    return _walk(_DEPENDENTS_SQL, service_ids)


def hurt_ids_statement(seed_sql, seed_params):
    """(sql, params) of ``hurt_service_ids`` for the services a query selects (``seed_sql``, one
    column of ids) instead of a list, for a caller that sends it with other reads in one round
    trip (``itsm.rows.read_together``)."""
    sql = _DEPENDENTS_SQL.format(
        service=Service._meta.db_table,
        dependency=ServiceDependency._meta.db_table,
        placeholders=seed_sql,
    )
    return sql, list(seed_params)


def hurt_services(*services):
    """The services hurt when ``services`` are hurt (themselves included), as a queryset."""
    return Service.objects.filter(pk__in=hurt_service_ids(s.pk for s in services))


def dependency_ids(service_ids):
    """Ids of the given services and of everything they need, transitively. One query."""
    return _walk(_DEPENDENCIES_SQL, service_ids)


def would_create_cycle(service_id, depends_on_id):
    """Would ``service`` depending on ``depends_on`` close a cycle? It would when
    ``depends_on`` already needs ``service`` (or is it)."""
    return service_id in dependency_ids([depends_on_id])

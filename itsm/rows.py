"""Row writes for the hottest statements of the write path, built once per model.

``Model.save()`` and ``QuerySet.create()`` compile their SQL anew on every call; on a
transition that is a third of the time spent in Python (C4 in ``bench/``). These helpers build
the statement text once per model and only convert the values per call, with the same field
conversions the ORM uses (``pre_save`` for ``auto_now`` and defaults, ``get_db_prep_save``), so
the row written is the row ``save()`` would write. Models with ``pre_save``/``post_save``
receivers must not be written this way (the incident and its timeline have none).

``execute_with_inserts`` sends the writes of other rows (INSERTs, or an UPDATE of another
table) with the UPDATE of the main row: on PostgreSQL one statement (data-modifying CTEs),
elsewhere one statement each.
"""

import functools

from django.db import connection


def _quote(name):
    return connection.ops.quote_name(name)


@functools.cache
def _update_statement(model):
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    sets = ", ".join(f"{_quote(f.column)} = %s" for f in fields)
    table, pk = _quote(model._meta.db_table), _quote(model._meta.pk.column)
    return f"UPDATE {table} SET {sets} WHERE {pk} = %s", fields  # noqa: S608 (names from models)


@functools.cache
def _insert_head(model):
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(_quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return f"INSERT INTO {_quote(model._meta.db_table)} ({columns}) VALUES ", row, fields  # noqa: S608


def update_statement(instance):
    """(sql, params) that saves every concrete field of ``instance`` (like ``save()`` of an
    existing row: ``auto_now`` fields are stamped on the instance)."""
    sql, fields = _update_statement(type(instance))
    params = [f.get_db_prep_save(f.pre_save(instance, False), connection) for f in fields]
    return sql, [*params, instance.pk]


def insert_statement(instances):
    """(sql, params) that inserts ``instances`` (all of one model, not saved yet) in one
    statement; their ids are not read back."""
    head, row, fields = _insert_head(type(instances[0]))
    params = [
        f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in instances for f in fields
    ]
    return head + ", ".join([row] * len(instances)), params


def execute_with_inserts(inserts, update, *, new_row=None):
    """Run the statements ``inserts`` [(sql, params)] (INSERTs, or UPDATEs of other rows) and
    then the UPDATE ``update`` (sql, params), inside the caller's transaction: one round trip
    on PostgreSQL (as data-modifying CTEs of the UPDATE: they all see the same snapshot and
    touch other rows than each other, so their order does not matter), one per statement
    elsewhere. ``new_row``: an instance not saved yet, inserted first, whose new id is set on
    it (read back through the UPDATE's RETURNING). Returns the UPDATE's row count."""
    if new_row is not None:
        sql, params = insert_statement([new_row])
        inserts = [(f"{sql} RETURNING {_quote(new_row._meta.pk.column)}", params), *inserts]
    with connection.cursor() as cursor:
        if inserts and connection.vendor == "postgresql":
            ctes = ", ".join(f"i{n} AS ({sql})" for n, (sql, _params) in enumerate(inserts))
            params = [p for _sql, ps in inserts for p in ps]
            returning = " RETURNING (SELECT * FROM i0)" if new_row is not None else ""
            cursor.execute(f"WITH {ctes} {update[0]}{returning}", [*params, *update[1]])
            if new_row is not None:
                _saved(new_row, cursor.fetchone()[0])
            return cursor.rowcount
        for n, (sql, params) in enumerate(inserts):
            cursor.execute(sql, params)
            if n == 0 and new_row is not None:
                _saved(new_row, cursor.fetchone()[0])
        cursor.execute(*update)
        return cursor.rowcount


def _saved(instance, pk):
    instance.pk = pk
    instance._state.adding, instance._state.db = False, connection.alias


@functools.cache
def _select_head(model):
    """The column list of ``model``'s concrete fields and the converters the ORM would apply
    to them when reading (JSON, SQLite's datetimes...)."""
    meta = model._meta
    table = _quote(meta.db_table)
    columns = ", ".join(f"{table}.{_quote(f.column)}" for f in meta.concrete_fields)
    converters = []
    for n, field in enumerate(meta.concrete_fields):
        col = field.get_col(meta.db_table)
        convs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if convs:
            converters.append((n, convs, col))
    names = [f.attname for f in meta.concrete_fields]
    return (
        f"SELECT {columns}",
        f" FROM {table} WHERE {table}.{_quote(meta.pk.column)} = %s",
        (
            converters,
            names,
        ),
    )


def lock_statement(model, pk, *, extra=(), extra_params=()):
    """(sql, params) that reads and locks (``FOR UPDATE`` where the backend has it) the
    ``model`` row ``pk`` as ``select_for_update().get(pk=pk)`` would, with the scalar SQL
    expressions ``extra`` (their ``%s`` filled from ``extra_params``) in the same statement."""
    select, where, _conversion = _select_head(model)
    sql = select + "".join(f", {e}" for e in extra) + where
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql, [*extra_params, pk]


def locked_instance(model, row):
    """(instance, [extra values]) from a row of ``lock_statement``; raises
    ``model.DoesNotExist`` for no row (None)."""
    if row is None:
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
    _select, _where, (converters, names) = _select_head(model)
    values = list(row[: len(names)])
    for n, convs, col in converters:
        for convert in convs:
            values[n] = convert(values[n], col, connection)
    return model.from_db(connection.alias, names, values), list(row[len(names) :])


def lock_row(model, pk, *, extra=(), extra_params=()):
    """Read and lock the ``model`` row ``pk`` (``lock_statement``). Returns (instance, [extra
    values]); raises ``model.DoesNotExist``."""
    (found,) = read_together([lock_statement(model, pk, extra=extra, extra_params=extra_params)])
    return locked_instance(model, found[0] if found else None)


def read_together(statements):
    """The rows of each statement of ``statements`` [(sql, params)], run in order inside the
    caller's transaction: on PostgreSQL in one round trip (several statements in one query,
    which Django's client-side binding cursor allows), elsewhere one each.

    Each statement still takes its own snapshot when it starts (READ COMMITTED), after the one
    before it has finished: a read sent behind a ``FOR UPDATE`` sees everything the writer the
    lock waited for committed, as it would in a round trip of its own."""
    with connection.cursor() as cursor:
        if len(statements) > 1 and connection.vendor == "postgresql":
            cursor.execute(
                "; ".join(sql for sql, _params in statements),
                [p for _sql, params in statements for p in params],
            )
            found = [cursor.fetchall()]
            while cursor.nextset():
                found.append(cursor.fetchall())
            return found
        found = []
        for sql, params in statements:
            cursor.execute(sql, params)
            found.append(cursor.fetchall())
        return found

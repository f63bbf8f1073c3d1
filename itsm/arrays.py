"""Many rows in one PostgreSQL INSERT, sent as one JSON array per column.

``bulk_create`` builds a model instance per row and one placeholder per value: for the SLA
sweep's thousands of signals, timeline events and outbox rows a sweep spent more time in
``Model.__init__`` and parameter adaptation than in PostgreSQL. Here the caller gives plain
column lists; each travels as one JSON array (``json.dumps`` runs in C: psycopg's own list
adapter quotes element by element in Python, 170 ms for a batch's 6,000 signals and events)
and the statement reads them side by side with ``ROWS FROM (json_array_elements…)``. Every
column the caller does not give gets its field's default, once per statement.
PostgreSQL only: callers keep ``bulk_create`` for the other backends.
"""

import datetime as dt
import json

from django.db import connection
from django.db.models import JSONField


def insert_sql(model, columns, *, values=None, on_conflict_do_nothing=False, returning=()):
    """(sql, params) of ``INSERT INTO <model's table> … SELECT … FROM ROWS FROM (…)``, rows in
    the order given (so their ids follow that order).

    ``columns``: {field name: list of values, one per row} (all the same length; plain values:
    str, int, bool, None, aware datetimes; JSON fields take what ``json.dumps`` takes).
    ``values``: {field name: one value for every row}. Other concrete fields except an auto
    primary key get their default. ``returning``: column names for a ``RETURNING`` clause."""
    values = values or {}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    fields = {f.name: f for f in model._meta.concrete_fields}
    unknown = (set(columns) | set(values)) - set(fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    names, selects, functions, params, constants = [], [], [], [], []
    for n, (name, rows) in enumerate(columns.items()):
        field = fields[name]
        names.append(field.column)
        params.append(json_array(rows))
        if isinstance(field, JSONField):
            functions.append("json_array_elements(%s::json)")
            # A JSON null element is SQL NULL here, as the ORM stores None in a JSONField.
            selects.append(
                f"CASE WHEN json_typeof(u.c{n}) = 'null' THEN NULL ELSE u.c{n}::jsonb END"
            )
        else:
            functions.append("json_array_elements_text(%s::json)")
            selects.append(f"u.c{n}::{_cast_type(field)}")
    for field in model._meta.concrete_fields:
        if field.name in columns or (field.primary_key and field.db_returning):
            continue
        value = values[field.name] if field.name in values else field.get_default()
        names.append(field.column)
        selects.append(f"%s::{_cast_type(field)}")
        constants.append(field.get_db_prep_save(value, connection))
    aliases = ", ".join(f"c{n}" for n in range(len(columns)))
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in names)}) "
        f"SELECT {', '.join(selects)} "
        f"FROM ROWS FROM ({', '.join(functions)}) WITH ORDINALITY AS u({aliases}, row_number) "
        "ORDER BY u.row_number"
    )
    if on_conflict_do_nothing:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(quote(c) for c in returning)}"
    # The constants' placeholders are in the SELECT list, before the arrays' in FROM.
    return sql, constants + params


def json_array(values):
    """One column's values as the text of a JSON array (datetimes in ISO 8601, microseconds
    kept: DjangoJSONEncoder would cut them to milliseconds)."""
    return json.dumps(list(values), default=_plain, ensure_ascii=False, separators=(",", ":"))


def _plain(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} in a column array")


def _cast_type(field):
    db_type = field.cast_db_type(connection)
    # Text without a length: an explicit cast to varchar(n) would cut a long value silently,
    # where the INSERT's own assignment to the column refuses it.
    return "text" if db_type.startswith("varchar(") else db_type


def insert(model, columns, **options):
    """Run ``insert_sql``; the rows of its ``RETURNING`` clause, if any."""
    sql, params = insert_sql(model, columns, **options)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if options.get("returning") else None

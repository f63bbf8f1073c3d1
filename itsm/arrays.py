"""Many rows in one PostgreSQL INSERT, sent as one array per column.

``bulk_create`` builds a model instance per row and one placeholder per value: for the SLA
sweep's thousands of signals, timeline events and outbox rows a sweep spent more time in
``Model.__init__`` and parameter adaptation than in PostgreSQL. Here the caller gives plain
column lists; the statement reads them with ``unnest`` (a handful of parameters however many
rows), and every column it does not give gets its field's default, once per statement.
PostgreSQL only: callers keep ``bulk_create`` for the other backends.
"""

import json

from django.db import connection
from django.db.models import JSONField


def insert_sql(model, columns, *, values=None, on_conflict_do_nothing=False, returning=()):
    """(sql, params) of ``INSERT INTO <model's table> … SELECT … FROM unnest(…)``, rows in the
    order given (so their ids follow that order).

    ``columns``: {field name: list of values, one per row} (all the same length; JSON fields
    take what ``json.dumps`` takes). ``values``: {field name: one value for every row}. Other
    concrete fields except an auto primary key get their default. ``returning``: column names
    for a ``RETURNING`` clause."""
    values = values or {}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    fields = {f.name: f for f in model._meta.concrete_fields}
    unknown = (set(columns) | set(values)) - set(fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no field {sorted(unknown)}")
    names, selects, arrays, params, constants = [], [], [], [], []
    for n, (name, rows) in enumerate(columns.items()):
        field = fields[name]
        db_type = field.db_type(connection)
        names.append(field.column)
        if isinstance(field, JSONField):
            # JSON travels as text and is parsed once by PostgreSQL, each row as it is read.
            arrays.append("%s::text[]")
            params.append([None if v is None else json.dumps(v, cls=field.encoder) for v in rows])
            selects.append(f"u.c{n}::jsonb")
        else:
            arrays.append(f"%s::{db_type}[]")
            params.append(list(rows))
            selects.append(f"u.c{n}")
    for field in model._meta.concrete_fields:
        if field.name in columns or (field.primary_key and field.db_returning):
            continue
        value = values[field.name] if field.name in values else field.get_default()
        names.append(field.column)
        selects.append(f"%s::{field.db_type(connection)}")
        constants.append(field.get_db_prep_save(value, connection))
    aliases = ", ".join(f"c{n}" for n in range(len(columns)))
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in names)}) "
        f"SELECT {', '.join(selects)} "
        f"FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({aliases}, row_number) "
        "ORDER BY u.row_number"
    )
    if on_conflict_do_nothing:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(quote(c) for c in returning)}"
    # The constants' placeholders are in the SELECT list, before the arrays' in FROM.
    return sql, constants + params


def insert(model, columns, **options):
    """Run ``insert_sql``; the rows of its ``RETURNING`` clause, if any."""
    sql, params = insert_sql(model, columns, **options)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if options.get("returning") else None

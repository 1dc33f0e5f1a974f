"""Multi-row INSERT and UPDATE for the ingestion hot path, on SQLite and PostgreSQL alike.

Django's `bulk_update` builds one `CASE WHEN pk = … THEN …` expression per row and field and
resolves each through the ORM; on a 1,000-record batch that costs more than the database work
itself (measured: ~60 % of ingest time). These helpers emit plain parameterised SQL instead:

- `rows_insert`: `INSERT … ON CONFLICT DO NOTHING [RETURNING …]`;
- `rows_update`: `UPDATE t SET c = v.c FROM (…) AS v WHERE t.pk = v.c0`
  (SQLite ≥ 3.33 and PostgreSQL both have UPDATE … FROM).

The rows come from `VALUES (…), (…)` on SQLite and from `jsonb_to_recordset` of one JSON
parameter on PostgreSQL (a short constant statement: psycopg re-parses long statements on every
call, and escapes every element of array parameters with a regex).

Values go through each field's `get_db_prep_save`, so JSON and datetimes are adapted exactly as
the ORM would. Rows must belong to the current sandbox: callers pass `sandbox_id` themselves.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models


def _connection():
    """This thread's real connection object, not the `django.db.connection` proxy (whose
    attribute look-ups show up in profiles of the hot path)."""
    return connections[DEFAULT_DB_ALIAS]


def _batch_rows(connection, columns: int) -> int:
    limit = connection.features.max_query_params or 30000
    return max(1, min(1000, limit // max(columns, 1)))


def _converter(connection, field) -> Callable[[Any], Any]:
    """How one field's Python value becomes a query parameter (resolved once per column; the
    per-value `get_db_prep_save` path costs more than the INSERT on big batches)."""
    if isinstance(field, models.JSONField):
        return lambda value: connection.ops.adapt_json_value(value, field.encoder)
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, (models.IntegerField, models.CharField, models.BooleanField)) or (
            field.is_relation and isinstance(field.target_field, (models.AutoField,
                                                                  models.CharField))):
        return lambda value: value
    return lambda value: field.get_db_prep_save(value, connection)


def _prepared(connection, model, fields: Sequence[str], rows: Iterable[Sequence[Any]]
              ) -> list[list[Any]]:
    converters = [_converter(connection, model._meta.get_field(name)) for name in fields]
    return [[convert(value) for convert, value in zip(converters, row, strict=True)]
            for row in rows]


def _columns(connection, model, fields: Sequence[str]) -> list[str]:
    return [connection.ops.quote_name(model._meta.get_field(f).column) for f in fields]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Cannot send {type(value).__name__} as a JSON row value.")


def _recordset(connection, model, fields: Sequence[str], rows: list[Sequence[Any]]
               ) -> tuple[str, list[str]]:
    """PostgreSQL: the rows as ONE JSON parameter unpacked by `jsonb_to_recordset`. Python's C
    JSON encoder does the work that per-value parameter adaptation would (array parameters cost
    a regex escape per element with psycopg's client-side binding)."""
    names = [f"c{i}" for i in range(len(fields))]
    types = [model._meta.get_field(f).db_type(connection) for f in fields]
    types = [{"serial": "integer", "bigserial": "bigint"}.get(t, t) for t in types]
    payload = json.dumps([dict(zip(names, row, strict=True)) for row in rows],
                         default=_json_default, separators=(",", ":"))
    columns = ", ".join(f"{n} {t}" for n, t in zip(names, types, strict=True))
    return f"jsonb_to_recordset(%s::jsonb) AS v({columns})", [payload]


def rows_insert(model, fields: Sequence[str], rows: list[Sequence[Any]], *,
                returning: Sequence[str] = ()) -> list[tuple]:
    """Insert `rows` (tuples in `fields` order), skipping conflicts; returns the `returning`
    columns of the inserted rows."""
    if not rows:
        return []
    connection = _connection()
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(_columns(connection, model, fields))
    back = " RETURNING " + ", ".join(_columns(connection, model, returning)) if returning else ""
    postgres = connection.vendor == "postgresql"
    size = 5000 if postgres else _batch_rows(connection, len(fields))
    prepared = rows if postgres else _prepared(connection, model, fields, rows)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    out: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(prepared), size):
            chunk = prepared[start:start + size]
            if postgres:
                source, params = _recordset(connection, model, fields, chunk)
                sql = f"INSERT INTO {table} ({columns}) SELECT * FROM {source}"
            else:
                sql = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join(
                    [row_sql] * len(chunk))
                params = [value for row in chunk for value in row]
            cursor.execute(sql + " ON CONFLICT DO NOTHING" + back, params)
            if returning:
                out.extend(cursor.fetchall())
    return out


def rows_update(model, fields: Sequence[str], rows: list[Sequence[Any]]) -> None:
    """Set `fields` (after the primary key, which comes first in each row) on many rows."""
    if not rows:
        return
    connection = _connection()
    all_fields = [model._meta.pk.name, *fields]
    table = connection.ops.quote_name(model._meta.db_table)
    pk_column = connection.ops.quote_name(model._meta.pk.column)
    names = [f"c{i}" for i in range(len(all_fields))]
    assignments = ", ".join(f"{column} = v.{n}" for column, n in zip(
        _columns(connection, model, fields), names[1:], strict=True))
    postgres = connection.vendor == "postgresql"
    size = 5000 if postgres else _batch_rows(connection, len(all_fields))
    prepared = rows if postgres else _prepared(connection, model, all_fields, rows)
    row_sql = "(" + ", ".join(["%s"] * len(all_fields)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(prepared), size):
            chunk = prepared[start:start + size]
            if postgres:
                source, params = _recordset(connection, model, all_fields, chunk)
            else:
                # SQLite names VALUES columns column1, column2…: alias them in a sub-select.
                aliases = ", ".join(f"column{i + 1} AS {n}" for i, n in enumerate(names))
                values = ", ".join([row_sql] * len(chunk))
                source = f"(SELECT {aliases} FROM (VALUES {values})) AS v"
                params = [value for row in chunk for value in row]
            cursor.execute(f"UPDATE {table} SET {assignments} FROM {source} "
                           f"WHERE {table}.{pk_column} = v.c0", params)


def column_remap(model, field: str, mapping: dict[int, int]) -> None:
    """`field` old -> new on every row of `model` holding one of the old values (one UPDATE
    per chunk of the mapping, joined on the old value)."""
    if not mapping:
        return
    connection = _connection()
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field).column)
    items = sorted(mapping.items())
    postgres = connection.vendor == "postgresql"
    size = 5000 if postgres else _batch_rows(connection, 2)
    with connection.cursor() as cursor:
        for start in range(0, len(items), size):
            chunk = items[start:start + size]
            if postgres:
                source = "jsonb_to_recordset(%s::jsonb) AS v(c0 bigint, c1 bigint)"
                params: list[Any] = [json.dumps([{"c0": old, "c1": new} for old, new in chunk])]
            else:
                values = ", ".join(["(%s, %s)"] * len(chunk))
                source = f"(SELECT column1 AS c0, column2 AS c1 FROM (VALUES {values})) AS v"
                params = [value for pair in chunk for value in pair]
            cursor.execute(f"UPDATE {table} SET {column} = v.c1 FROM {source} "
                           f"WHERE {table}.{column} = v.c0", params)

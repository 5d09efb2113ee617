"""Statements the worker's hot path runs on the driver connection itself (asyncpg; sqlite3).

SQLAlchemy's execution layer costs more CPU per statement than the round trip it wraps (about
400 µs against 130 µs for asyncpg alone, on the benchmark machine), and a worker's checkpoints,
claims and finishes are nothing but such statements. So the repository builds them with
SQLAlchemy as everywhere else, compiles each **once** per dialect and schema into a
:class:`RawStatement` (SQL text with ``$n`` parameters and the bind processors of the column
types: JSON serialization, the UTC check), and runs it with asyncpg's own prepared statement
cache. Rows come back as asyncpg records: the connection was opened by SQLAlchemy, so its JSON
codecs decode JSONB exactly as SQLAlchemy would, and ``timestamptz`` arrives as aware UTC.

SQLite: the same statements run on a stdlib ``sqlite3`` connection in a thread of its own
(:class:`zart.database.SQLiteWriter`), a whole transaction per thread hop (aiosqlite makes
several hops per statement). Rows are tuples there, turned into mappings with the column
types' result processors (timestamps are text in SQLite, JSON is text). Lists of values are
passed as one JSON array parameter and read with ``json_each`` (:func:`in_json_list`), so a
statement compiles once whatever the length of the list.

Only the repositories use this module; the connections come from
:class:`zart.database.DriverConnections` and :class:`zart.database.SQLiteWriter`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, bindparam, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

#: Called with the SQL text of every statement run here (the benchmark counts statements; the
#: engine's ``before_cursor_execute`` event never sees them).
statement_observers: list[Callable[[str], None]] = []


class RawStatement:
    """A statement compiled for asyncpg: SQL text, parameter order, bind processing."""

    __slots__ = ("_columns", "_defaults", "_names", "_plan", "_processors", "sql")

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, schema_map: Mapping[Any, Any] | None
    ) -> None:
        compiled: Any = statement.compile(dialect=dialect, schema_translate_map=schema_map)
        sql: str = compiled.string
        if schema_map:
            sql = compiled.preparer._render_schema_translates(sql, schema_map)
        self.sql = sql
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Literal values the statement itself carries (e.g. a status it compares with).
        self._defaults: dict[str, Any] = dict(compiled.construct_params(_check=False))
        self._processors: dict[str, Callable[[Any], Any]] = {
            name: _array_processor(compiled.binds[name].type, dialect) or processor
            for name, processor in compiled._bind_processors.items()
        }
        # Per parameter, in order: its processor and what it makes of None, computed once
        # (a checkpoint's JSON parameters are mostly None: no error, no attempt result).
        self._plan: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...] = tuple(
            (name, self._processors.get(name), _none_of(self._processors.get(name)))
            for name in self._names
        )
        # For drivers that return plain tuples (sqlite3): each column's name and processor.
        self._columns: list[tuple[str, Callable[[Any], Any] | None]] = [
            (entry[0], entry[3]._cached_result_processor(dialect, None))
            for entry in getattr(compiled, "_result_columns", None) or ()
        ]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values: list[Any] = []
        defaults = self._defaults
        for name, processor, for_none in self._plan:
            value = params[name] if name in params else defaults[name]
            if processor is not None:
                value = for_none if value is None and for_none is not _CALL else processor(value)
            values.append(value)
        return values

    async def fetch(self, driver: Any, params: Mapping[str, Any]) -> list[Any]:
        for observe in statement_observers:
            observe(self.sql)
        rows: list[Any] = await driver.fetch(self.sql, *self.arguments(params))
        return rows

    def run(self, connection: Any, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run on a DB-API connection that returns tuples (sqlite3), in the caller's thread."""
        for observe in statement_observers:
            observe(self.sql)
        rows = connection.execute(self.sql, self.arguments(params)).fetchall()
        columns = self._columns
        return [
            {
                name: value if processor is None else processor(value)
                for (name, processor), value in zip(columns, row, strict=True)
            }
            for row in rows
        ]


#: What :func:`_none_of` returns for a processor whose output for None is not fixed.
_CALL = object()


def _none_of(processor: Callable[[Any], Any] | None) -> Any:
    """A bind processor's output for ``None`` (they are pure functions of their value), or
    :data:`_CALL` when there is no processor or it refuses ``None``."""
    if processor is None:
        return _CALL
    try:
        return processor(None)
    except Exception:  # refuses None: then it is simply called every time
        return _CALL


def _array_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """A faster bind processor for a one-dimensional ``ARRAY`` of a type that has one (the
    group statements' ``unnest`` columns: JSON, timestamps): the item processor applied to
    each element, as SQLAlchemy's own does, with its output for ``None`` (most of a group's
    JSON cells: no error, no attempt) computed once. ``None`` when the generic one stays."""
    if not isinstance(type_, ARRAY) or type_.dimensions not in (None, 1):
        return None
    item = type_.item_type.dialect_impl(dialect).bind_processor(dialect)
    if item is None:
        return None
    for_none = item(None)

    def process(values: Sequence[Any] | None) -> list[Any] | None:
        if values is None:
            return None
        return [for_none if value is None else item(value) for value in values]

    return process


def in_json_list(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column IN`` the values of the JSON array parameter ``name`` (SQLite, ``json_each``);
    pass the list through :func:`json_list`."""
    values = func.json_each(bindparam(name)).table_valued("value")
    return column.in_(select(values.c.value))


def json_list(values: Sequence[Any]) -> str:
    return json.dumps(list(values))


_compiled: dict[tuple[Hashable, int, Hashable], tuple[Dialect, RawStatement]] = {}


def compiled(
    key: Hashable,
    build: Callable[[], ClauseElement],
    dialect: Dialect,
    schema_map: Mapping[Any, Any] | None,
) -> RawStatement:
    """The statement ``build()`` makes, compiled once for ``dialect`` and ``schema_map``."""
    schema_key = None if not schema_map else tuple(sorted(schema_map.items(), key=repr))
    cache_key = (key, id(dialect), schema_key)
    found = _compiled.get(cache_key)
    if found is None or found[0] is not dialect:
        found = (dialect, RawStatement(build(), dialect, schema_map))
        _compiled[cache_key] = found
    return found[1]

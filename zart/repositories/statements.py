"""SQL statements: each named once, built with SQLAlchemy Core, compiled once.

A :class:`Statement` is a name and a function that builds the Core construct for a dialect
(``"postgresql"`` or ``"sqlite"``): most builders ignore it; a dialect difference (``ON
CONFLICT``'s insert class, how a list parameter is matched) is a branch inside the one builder.
The construct is built once per dialect. Repository operations yield statements with their
parameters (:mod:`zart.repositories.executors`); whatever runs them decides how:

- on a caller's SQLAlchemy connection, the construct goes through ``Connection.execute``
  (SQLAlchemy's compiled cache, the connection's own schema translation and events);
- on the worker's driver connections, it is compiled **once** per dialect and schema into a
  :class:`RawStatement` (SQL text, parameter order, the column types' bind processors: JSON
  serialization, the UTC check) and run by asyncpg (prepared statement cache; rows are asyncpg
  records decoded by the codecs SQLAlchemy set on the connection) or by stdlib ``sqlite3`` in
  the writer's thread (rows are tuples, turned into mappings with the column types' result
  processors: timestamps and JSON are text in SQLite).

SQLAlchemy's execution layer costs more CPU per statement than the round trip it wraps (about
400 µs against 130 µs for asyncpg alone, on the benchmark machine), and a worker's claims,
checkpoints and finishes are nothing but such statements: hence the compiled form.

A list of values is one parameter whatever its length (:func:`one_of`): an array on
PostgreSQL (``= ANY($1)``), a JSON array read with ``json_each`` on SQLite. The caller passes a
plain Python list either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, String, Table, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TypeDecorator, TypeEngine

#: Called with the SQL text of every statement run in its compiled form (the benchmark counts
#: statements; the engine's ``before_cursor_execute`` event never sees them).
statement_observers: list[Callable[[str], None]] = []


class Statement:
    """One SQL statement, named once near the top of its module. ``build(dialect)`` makes its
    Core construct for ``"postgresql"`` or ``"sqlite"``; it is called once per dialect."""

    __slots__ = ("_build", "_constructs", "cached", "name")

    def __init__(self, name: str, build: Callable[[str], Any], *, cached: bool = True) -> None:
        self.name = name
        self._build = build
        self._constructs: dict[str, ClauseElement] = {}
        #: Whether its compiled form is kept (see :meth:`adhoc`).
        self.cached = cached

    @classmethod
    def adhoc(cls, name: str, build: Callable[[str], Any]) -> Statement:
        """A statement made for one call (a listing with the filters it was given): run like
        the others, its compiled form is not kept."""
        return cls(name, build, cached=False)

    def construct(self, dialect: str) -> Any:
        """The Core construct for ``dialect`` (built on first use)."""
        found = self._constructs.get(dialect)
        if found is None:
            found = self._constructs[dialect] = self._build(dialect)
        return found

    def __repr__(self) -> str:
        return f"<Statement {self.name}>"


class JSONList(TypeDecorator[Sequence[Any]]):
    """A list parameter on SQLite: sent as one JSON array, read with ``json_each``."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(list(value))


def one_of(
    column: ColumnElement[Any], name: str, dialect: str, item: TypeEngine[Any] | None = None
) -> ColumnElement[bool]:
    """``column`` is one of the values of the list parameter ``name``: ``column = ANY(:name)``
    on PostgreSQL, ``column IN (SELECT value FROM json_each(:name))`` on SQLite. Either way
    the statement compiles once, whatever the length of the list."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(item if item is not None else String())))
    values = func.json_each(bindparam(name, type_=JSONList())).table_valued("value")
    return column.in_(select(values.c.value))


def upsert(table: Table, dialect: str) -> Any:
    """An INSERT into ``table`` that supports ``ON CONFLICT`` on ``dialect``. With ``DO
    NOTHING`` a duplicate inserts nothing and, unlike a unique violation, leaves the
    surrounding transaction usable."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class RawStatement:
    """A statement compiled for a driver connection: SQL text, parameter order, bind
    processing (and, for drivers returning tuples, each column's name and result processor)."""

    __slots__ = ("_columns", "_defaults", "_plan", "positional", "sql")

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, schema_map: Mapping[Any, Any] | None
    ) -> None:
        compiled: Any = statement.compile(dialect=dialect, schema_translate_map=schema_map)
        sql: str = compiled.string
        if schema_map:
            sql = compiled.preparer._render_schema_translates(sql, schema_map)
        self.sql = sql
        #: ``$1``/``?`` parameters (asyncpg, sqlite3) take a list; named ones (psycopg's
        #: ``%(name)s``, for a caller's synchronous connection) a mapping.
        self.positional: bool = bool(compiled.positional)
        names: tuple[str, ...] = (
            tuple(compiled.positiontup or ())
            if self.positional
            else tuple(dict.fromkeys(compiled.bind_names.values()))
        )
        # Literal values the statement itself carries (e.g. a status it compares with).
        self._defaults: dict[str, Any] = dict(compiled.construct_params(_check=False))
        processors: dict[str, Callable[[Any], Any]] = {
            name: _array_processor(compiled.binds[name].type, dialect) or processor
            for name, processor in compiled._bind_processors.items()
        }
        # Per parameter, in order: its processor and what it makes of None, computed once
        # (a checkpoint's JSON parameters are mostly None: no error, no attempt result).
        self._plan: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...] = tuple(
            (name, processors.get(name), _none_of(processors.get(name))) for name in names
        )
        # For drivers that return plain tuples (sqlite3): each column's name and processor.
        self._columns: list[tuple[str, Callable[[Any], Any] | None]] = [
            (entry[0], entry[3]._cached_result_processor(dialect, None))
            for entry in getattr(compiled, "_result_columns", None) or ()
        ]

    def parameters(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """:meth:`arguments` in the form the dialect's driver takes."""
        values = self.arguments(params)
        if self.positional:
            return tuple(values)
        return dict(zip((name for name, _, _ in self._plan), values, strict=True))

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
        """Run on an asyncpg connection; its records."""
        for observe in statement_observers:
            observe(self.sql)
        rows: list[Any] = await driver.fetch(self.sql, *self.arguments(params))
        return rows

    def run(self, connection: Any, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run on a DB-API connection that returns tuples (sqlite3), in the caller's thread."""
        for observe in statement_observers:
            observe(self.sql)
        return self.rows(connection.execute(self.sql, self.arguments(params)).fetchall())

    def rows(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Rows of plain values (tuples) as mappings by column name, each value through its
        column type's result processor."""
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

"""Declarative base, naming convention and the column types shared by every Zart table.

Every table is created with ``schema=None``; a configured schema is applied at run time through
SQLAlchemy's ``schema_translate_map`` (see :mod:`zart.database`), so one set of models serves
applications that keep Zart's tables in their own schema and those that do not.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, DateTime, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from zart.serialization.common import read_stored_json

#: Every constraint and index gets a deterministic name, so migrations can drop and alter them
#: by name on every backend and autogenerate never sees spurious differences.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JSONText(TypeDecorator[Any]):
    """JSON kept as TEXT. On SQLite a column declared ``JSON`` has NUMERIC affinity, which
    turns a stored bare number such as ``1180591620717411303424`` into a lossy REAL; TEXT
    affinity keeps the JSON text exactly as written."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str:
        # None is stored as JSON null, as SQLAlchemy's JSON type does on PostgreSQL.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else read_stored_json(value)


#: JSONB on PostgreSQL (compact, indexable), JSON text on SQLite. Either way a stored value reads
#: back as the same JSON; ``None`` reads back as ``None``.
JSONValue = JSON().with_variant(JSONB(), "postgresql").with_variant(JSONText(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``. SQLite has no timestamp type and SQLAlchemy's SQLite
    ``DATETIME`` writes the wall time without its offset, so values are normalised to UTC on the
    way in (which keeps the stored text sortable, hence comparable in SQL, on either backend
    without asking which one it is) and tagged as UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is UTC:  # what the clock gives: nothing to convert
            return value
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column; attach a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def copy(self, **kw: Any) -> UTCDateTime:
        return UTCDateTime()


class Base(DeclarativeBase):
    metadata = metadata


def table_of(model: type[Base]) -> Table:
    """The Core ``Table`` behind a model (typed, for the repositories' Core statements)."""
    return cast(Table, model.__table__)

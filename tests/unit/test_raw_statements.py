"""The driver path's compiled statements pass exactly what SQLAlchemy would bind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from zart.models import StepRow, table_of
from zart.repositories import statements as raw

steps = table_of(StepRow)


def _statement() -> Any:
    return select(steps.c.step_id).where(
        steps.c.result == bindparam("result", type_=steps.c.result.type),
        steps.c.error == bindparam("error", type_=steps.c.error.type),
        steps.c.created_at == bindparam("at", type_=steps.c.created_at.type),
        steps.c.name == bindparam("name"),
    )


@pytest.mark.parametrize("dialect", [postgresql.asyncpg.dialect(), sqlite.pysqlite.dialect()])
@pytest.mark.parametrize(
    "values",
    [
        {"result": None, "error": None, "at": None, "name": "a"},
        {"result": {"v": [1, 2]}, "error": None, "at": datetime(2030, 1, 1, tzinfo=UTC)},
        {"result": [None], "error": {"kind": "x"}, "at": None, "name": None},
    ],
)
def test_arguments_match_the_types_bind_processors(dialect: Any, values: dict[str, Any]) -> None:
    values = {"name": "n", **values}
    statement = raw.RawStatement(_statement(), dialect, None)
    compiled: Any = _statement().compile(dialect=dialect)
    processors = compiled._bind_processors
    expected = [
        values[name] if name not in processors else processors[name](values[name])
        for name in compiled.positiontup
    ]

    assert statement.arguments(values) == expected

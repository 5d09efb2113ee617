"""Published values and durable streams: what a handler makes readable from outside while it
runs (``zart.publish``, ``zart.write_stream``; ``docs/streams.md``).

Both belong to the execution (not to a run) and go with it when it is pruned (``ON DELETE
CASCADE``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from zart.models.base import Base, JSONValue, UTCDateTime

#: Length of a published value's or a stream's key (the step and event names' length).
KEY_LENGTH = 255


class PublishedRow(Base):
    """The last value a handler published under ``key`` (last value wins)."""

    __tablename__ = "zart_published"

    execution_id: Mapped[str] = mapped_column(
        ForeignKey("zart_executions.execution_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONValue)
    #: 1 for the first value, +1 per later publish of the key.
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StreamItemRow(Base):
    """One item of a durable stream, at its ``offset`` (0, 1, 2, ... per execution and key).
    The stream's last row may be its close marker (``closed``, value ``NULL``), which readers
    never see as an item (so its offset is never sent as an item's: a restart's first write
    may take it over)."""

    __tablename__ = "zart_stream_items"

    execution_id: Mapped[str] = mapped_column(
        ForeignKey("zart_executions.execution_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    offset: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[Any | None] = mapped_column(JSONValue)
    closed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    #: The run that wrote it: a close marker of an earlier run gives way to a restart's writes.
    run_id: Mapped[str] = mapped_column(String(36))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)

"""``DurableScheduler.send``: a message to an execution from outside any handler."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from zart.models.names import check_path_segment
from zart.repositories import messages as messages_repo
from zart.scheduler.base import SchedulerBase
from zart.serialization import check_size, to_json


class MessageOperations(SchedulerBase):
    async def send(
        self,
        execution_id: str,
        topic: str,
        message: Any = None,
        *,
        session: AsyncSession | AsyncConnection | None = None,
        sender: str | None = None,
    ) -> None:
        """Send ``message`` (JSON, a pydantic model or a dataclass) to an execution on
        ``topic``; its ``zart.recv(topic)`` calls take the topic's messages in the order they
        were sent. Stored and the execution woken in one transaction (the caller's, with
        ``session=``: a rollback sends nothing); a message sent before the ``recv`` is kept.

        Raises :class:`~zart.InvalidName` (a bad id or topic: 1 to 200 characters, no ``/``
        or NUL), :class:`~zart.SerializationError` (not JSON), :class:`~zart.ExecutionNotFound`
        or :class:`~zart.EventNotAccepted` (finished or cancelled), storing nothing."""
        check_path_segment(execution_id, "execution id")
        topic = messages_repo.check_topic(topic)
        if sender is not None:
            check_path_segment(sender, "message sender")
        data = to_json(message, name="message")
        check_size(data, self.runtime.max_payload_bytes, name="message")
        async with self.store.within(session) as db:
            delivery = await db.run(
                messages_repo.deliver_message,
                execution_id=execution_id,
                topic=topic,
                message=data,
                now=self.clock.now(),
                sender=sender,
                channel=self.runtime.channel,
            )
        if delivery.woke:
            self._wake_workers(session)

    def _wake_workers(self, session: AsyncSession | AsyncConnection | None) -> None:
        raise NotImplementedError  # DurableScheduler's

"""Reading what handlers publish and stream, from outside: ``get_published`` and
``read_stream`` (``docs/streams.md``).

A reader reads, and waits for a change only when it found nothing new. What wakes it:

- on PostgreSQL, a NOTIFY on the streams channel (payload: the execution id), sent at the
  commit of every publish and stream write; one listening connection per scheduler, opened
  while someone reads and closed 2 s after the last reader left;
- in every process, a write by a run of this scheduler's own workers
  (``Runtime.stream_written``) or the end of such a run, directly, as ``wait`` is woken;
- otherwise the reader reads again after a pause, as ``wait`` does for executions running
  elsewhere (5 ms doubling to 250 ms; SQLite's only way to see other processes' writes),
  and once a second while the listener is up (an execution that finishes elsewhere sends no
  notification: that is how its readers learn it ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from zart.errors import ExecutionNotFound, InvalidPayload, NothingPublished, PublishedValueTimeout
from zart.logs import log
from zart.models import ExecutionStatus
from zart.models.names import check_path_segment
from zart.outages import is_transient
from zart.repositories import streams as streams_repo
from zart.repositories.store import Store
from zart.runtime.streams import check_key
from zart.scheduler.base import SchedulerBase
from zart.scheduler.polling import PollBackoff

#: Seconds between reads while the listener is up (see the module docstring).
RECHECK_LISTENING = 1.0
#: Seconds a reader waits for the listener to be up before it relies on polling alone.
LISTEN_TIMEOUT = 5.0
#: Seconds the listener stays up after its last reader left.
LISTEN_LINGER = 2.0


class StreamHub:
    """The readers waiting on each execution, and what wakes them."""

    def __init__(self, store: Store, channel: str) -> None:
        self._store = store
        self._channel = channel
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.listening = asyncio.Event()
        #: Set when the server-sent-event answers must end (their server stops).
        self.stopping_answers = asyncio.Event()

    def wake(self, execution_id: str) -> None:
        """Something of ``execution_id`` changed: its readers read again."""
        for changed in self._waiting.get(execution_id, ()):
            changed.set()

    async def stop(self) -> None:
        """Close the listening connection now (the scheduler closes): its readers poll."""
        listener, self._listener = self._listener, None
        if listener is not None:
            self._stop.set()
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    def _wake_all(self) -> None:
        for waiting in self._waiting.values():
            for changed in waiting:
                changed.set()

    @contextlib.asynccontextmanager
    async def watching(self, execution_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever ``execution_id`` may have changed, registered (and, on
        PostgreSQL, listened for) before the caller's first read, so no change is missed."""
        changed = asyncio.Event()
        self._waiting.setdefault(execution_id, set()).add(changed)
        try:
            if self._store.backend.notifies:
                await self._ensure_listener()
            yield changed
        finally:
            waiting = self._waiting.get(execution_id)
            if waiting is not None:
                waiting.discard(changed)
                if not waiting:
                    del self._waiting[execution_id]
            if not self._waiting and self._listener is not None:
                # The last reader left: the listener closes its connection if none comes
                # back soon (a client reconnecting keeps it).
                asyncio.get_running_loop().call_later(LISTEN_LINGER, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        if not self._waiting and self._listener is not None and not self._stop.is_set():
            self._stop.set()
            self._listener.cancel()  # its probe interval is long: now, not at the next probe

    async def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done() or self._stop.is_set():
            # Events of its own: a listener still stopping must not clear the new one's.
            self._stop, self.listening = asyncio.Event(), asyncio.Event()
            self._listener = asyncio.create_task(
                self._listen(self._stop, self.listening), name="zart-streams"
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LISTEN_TIMEOUT):
                await self.listening.wait()

    async def _listen(self, stop: asyncio.Event, up: asyncio.Event) -> None:
        def listening(_pid: int) -> None:
            up.set()
            self._wake_all()  # a write may have committed before the LISTEN did

        try:
            while not stop.is_set():
                try:
                    await self._store.listen(
                        self._channel,
                        self.wake,
                        until=stop,
                        probe_every=10.0,
                        probe_timeout=5.0,
                        on_listening=listening,
                    )
                except Exception as exc:  # readers poll meanwhile; a reconnect is tried
                    log(
                        "stream_listener_lost",
                        f"the streams' listening connection was lost: {exc}",
                        level=10 if is_transient(exc) else 30,
                        channel=self._channel,
                    )
                up.clear()
                self._wake_all()  # the readers poll meanwhile
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await stop.wait()
        finally:
            up.clear()


class _Pauses:
    """How long a reader waits before it reads again when nothing wakes it."""

    def __init__(self, hub: StreamHub) -> None:
        self._hub = hub
        self._backoff = PollBackoff()

    def found(self) -> None:
        self._backoff.reset()

    async def wait(self, changed: asyncio.Event, give_up: float | None = None) -> None:
        pause = RECHECK_LISTENING if self._hub.listening.is_set() else self._backoff.next()
        if give_up is not None:
            pause = min(pause, give_up - time.monotonic())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(pause, 0.0)):
                await changed.wait()
        changed.clear()


class StreamOperations(SchedulerBase):
    """The published values and streams part of :class:`~zart.DurableScheduler`."""

    _stream_hub: StreamHub | None = None

    def _streams(self) -> StreamHub:
        if self._stream_hub is None:
            channel = streams_repo.channel_for(self.runtime.channel)
            self._stream_hub = StreamHub(self.store, channel)
            self.runtime.stream_written = self._stream_hub.wake
        return self._stream_hub

    async def close(self, *, dispose_engine: bool | None = None) -> None:
        if self._stream_hub is not None:
            await self._stream_hub.stop()
        await super().close(dispose_engine=dispose_engine)

    def stop_streaming(self) -> None:
        """End this scheduler's server-sent-event answers (the HTTP streams route) now,
        without their ``end`` event, so their clients reconnect, to another server if this
        one stops, and resume after the last offset they got. ``zart serve`` calls it when
        it is told to stop, before it waits for open requests; an application that mounts
        the router calls it on its own shutdown. Python readers are not affected."""
        self._streams().stopping_answers.set()

    def stream_answers_stopping(self) -> asyncio.Event:
        """Set once :meth:`stop_streaming` was called (read by the HTTP streams route)."""
        return self._streams().stopping_answers

    def _streams_changed(self, execution_id: str) -> None:
        """A run of this scheduler's workers ended (its readers may be done)."""
        if self._stream_hub is not None:
            self._stream_hub.wake(execution_id)

    async def _status(self, execution_id: str) -> ExecutionStatus:
        async with self.store.reading() as db:
            status = await db.run(streams_repo.execution_status, execution_id)
        if status is None:
            raise ExecutionNotFound(execution_id)
        return status

    async def get_published(self, execution_id: str, key: str, timeout: float | None = None) -> Any:
        """The last value the execution published under ``key`` (``zart.publish``), as JSON;
        waits for the first one when there is none yet, at most ``timeout`` seconds (``None``:
        as long as the execution runs).

        Raises :class:`~zart.PublishedValueTimeout` when ``timeout`` passes first,
        :class:`~zart.NothingPublished` when the execution finished without publishing it,
        :class:`~zart.ExecutionNotFound` for an unknown execution, :class:`~zart.InvalidName`
        for a malformed id or key.
        """
        check_path_segment(execution_id, "execution id")
        check_key(key, "published key")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0
        ):
            raise InvalidPayload(f"timeout must be None or seconds >= 0, not {timeout!r}")
        give_up = None if timeout is None else time.monotonic() + timeout
        hub = self._streams()
        pauses = _Pauses(hub)
        async with hub.watching(execution_id) as changed:
            while True:
                async with self.store.reading() as db:
                    found = await db.run(streams_repo.get_published, execution_id, key)
                    status = None
                    if found is None:
                        status = await db.run(streams_repo.execution_status, execution_id)
                if found is not None:
                    return found.value
                if status is None:
                    raise ExecutionNotFound(execution_id)
                if status.is_terminal:
                    raise NothingPublished(execution_id, key, status.value)
                if give_up is not None and time.monotonic() >= give_up:
                    raise PublishedValueTimeout(execution_id, key, timeout or 0.0)
                await pauses.wait(changed, give_up)

    def read_stream(self, execution_id: str, key: str, offset: int = 0) -> AsyncIterator[Any]:
        """The items of the execution's stream ``key`` (``zart.write_stream``), each once, in
        order, from ``offset`` (0: the first; after a reconnect, one past the last seen),
        following live writes; it ends after the stream is closed, or when the execution has
        finished and every item written is read.

        Checked at once: :class:`~zart.InvalidName` (id, key), :class:`~zart.InvalidPayload`
        (``offset`` not a whole number >= 0); at the first item:
        :class:`~zart.ExecutionNotFound`.
        """
        return _values(self.stream_entries(execution_id, key, offset))

    def stream_entries(
        self, execution_id: str, key: str, offset: int = 0
    ) -> AsyncIterator[tuple[int, Any]]:
        """:meth:`read_stream` with each item's offset: ``(offset, value)`` pairs."""
        check_path_segment(execution_id, "execution id")
        check_key(key, "stream key")
        check_offset(offset)
        return self._entries(execution_id, key, offset)

    async def _entries(
        self, execution_id: str, key: str, offset: int
    ) -> AsyncIterator[tuple[int, Any]]:
        await self._status(execution_id)  # unknown: ExecutionNotFound before anything
        hub = self._streams()
        pauses = _Pauses(hub)
        finished = False
        async with hub.watching(execution_id) as changed:
            while True:
                async with self.store.reading() as db:
                    batch = await db.run(
                        streams_repo.read_stream_items,
                        execution_id,
                        key,
                        offset=offset,
                        limit=streams_repo.READ_BATCH,
                    )
                for item in batch:
                    if item.closed:
                        return
                    yield item.offset, item.value
                    offset = item.offset + 1
                if len(batch) == streams_repo.READ_BATCH:
                    continue
                if batch:
                    pauses.found()
                    continue  # a new read before any wait: more may have come meanwhile
                if finished:
                    return  # finished, and every item written before the end read
                # Read after the items: the items written before a finish are read once more.
                finished = (await self._status(execution_id)).is_terminal
                if not finished:
                    await pauses.wait(changed)


def check_offset(offset: object) -> int:
    """A stream offset: a whole number from 0, else :class:`~zart.InvalidPayload`."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidPayload(f"a stream offset must be a whole number >= 0, not {offset!r}")
    return offset


async def _values(entries: AsyncIterator[tuple[int, Any]]) -> AsyncIterator[Any]:
    async for _offset, value in entries:
        yield value

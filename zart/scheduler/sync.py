"""``SyncScheduler``: the control plane for synchronous applications (Flask, Django views,
scripts, sync SQLAlchemy), over the very same asynchronous code.

A thread of its own (the *portal*) runs an event loop; every method hands its coroutine,
the :class:`~zart.DurableScheduler` method of the same name, to that loop and blocks until it
is done. There is no second implementation to keep in step: what ``start``, ``wait`` or
``cancel`` do is what the async methods do. Starting inside the caller's synchronous
transaction is :func:`zart.enqueue`'s job.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, overload

from zart.errors import ConfigurationError
from zart.repositories.records import ExecutionRecord
from zart.runtime.registry import DurableHandler, ExecutionId
from zart.scheduler.starts import StartOptions

if TYPE_CHECKING:
    from zart.scheduler.control_plane import DurableScheduler

In = TypeVar("In")
R = TypeVar("R")
T = TypeVar("T")


class SyncScheduler:
    """Blocking calls to a :class:`~zart.DurableScheduler` (``scheduler.sync()``)::

        sync = zart.DurableScheduler().sync()        # once, at start-up
        execution_id = sync.start(onboarding, Signup(email="ada@example.com"))
        sync.status(execution_id).status             # ExecutionStatus.SCHEDULED
        sync.offer_event(execution_id, "approval", {"approved": True})
        summary = sync.wait(execution_id, timeout=30)
        sync.close()                                 # or: with scheduler.sync() as sync:

    It owns the scheduler from then on: :meth:`close` closes it (on the portal's loop, where
    its connections live) and stops the portal. Use the scheduler only through it. Each call
    blocks the calling thread only; many threads may call at once.
    """

    def __init__(self, scheduler: DurableScheduler) -> None:
        self.scheduler = scheduler
        self._loop = asyncio.new_event_loop()
        self._portal = threading.Thread(
            target=self._loop.run_forever, name="zart-sync-portal", daemon=True
        )
        self._portal.start()
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise ConfigurationError("this SyncScheduler is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @overload
    def start(
        self,
        handler: DurableHandler[[In], R],
        payload: In,
        *,
        execution_id: str | None = None,
        **options: Unpack[StartOptions],
    ) -> ExecutionId[R]: ...
    @overload
    def start(
        self,
        handler: DurableHandler[[], R],
        payload: None = None,
        *,
        execution_id: str | None = None,
        **options: Unpack[StartOptions],
    ) -> ExecutionId[R]: ...
    @overload
    def start(
        self,
        handler: str,
        payload: Any = None,
        *,
        execution_id: str | None = None,
        **options: Unpack[StartOptions],
    ) -> ExecutionId[Any]: ...
    def start(
        self,
        handler: Any,
        payload: Any = None,
        *,
        execution_id: str | None = None,
        **options: Unpack[StartOptions],
    ) -> ExecutionId[Any]:
        """:meth:`DurableScheduler.start`, with the same options (``tags``, ``queue``,
        ``partition_key``, ``priority``, ``singleton_key``, ``debounce``, ``debounce_key``)
        but ``session=``: starting inside the caller's synchronous transaction is
        :func:`zart.enqueue`'s job."""
        if "session" in options:
            raise ConfigurationError(
                "SyncScheduler.start() takes no session=: to start inside a synchronous"
                " transaction, use zart.enqueue(session, ...)"
            )
        started = self.scheduler.start(handler, payload, execution_id=execution_id, **options)
        return self._call(started)

    def status(self, execution_id: str) -> ExecutionRecord:
        """:meth:`DurableScheduler.status`."""
        return self._call(self.scheduler.status(execution_id))

    @overload
    def wait(self, execution_id: ExecutionId[R], timeout: float | None = 30.0) -> R: ...
    @overload
    def wait(self, execution_id: str, timeout: float | None = 30.0) -> Any: ...
    def wait(self, execution_id: str, timeout: float | None = 30.0) -> Any:
        """:meth:`DurableScheduler.wait`: blocks this thread until the execution finishes."""
        return self._call(self.scheduler.wait(execution_id, timeout))

    def offer_event(
        self, execution_id: str, name: str, payload: Any = None, *, sender: str | None = None
    ) -> None:
        """:meth:`DurableScheduler.offer_event`."""
        self._call(self.scheduler.offer_event(execution_id, name, payload, sender=sender))

    def get_published(self, execution_id: str, key: str, timeout: float | None = None) -> Any:
        """:meth:`DurableScheduler.get_published`: blocks this thread until there is a value."""
        return self._call(self.scheduler.get_published(execution_id, key, timeout))

    def send(
        self, execution_id: str, topic: str, message: Any = None, *, sender: str | None = None
    ) -> None:
        """:meth:`DurableScheduler.send` (a message for ``zart.recv(topic)``)."""
        self._call(self.scheduler.send(execution_id, topic, message, sender=sender))

    def cancel(self, execution_id: str) -> bool:
        """:meth:`DurableScheduler.cancel`."""
        return self._call(self.scheduler.cancel(execution_id))

    def close(self) -> None:
        """Close the scheduler and stop the portal thread (again: nothing)."""
        if self._closed:
            return
        try:
            self._call(self.scheduler.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._portal.join()
            self._loop.close()

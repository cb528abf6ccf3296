"""A portal: one event loop in a dedicated daemon thread that sync code submits coroutines to.

This is how the sync :class:`omniq.TaskQueue` drives the async engine (the model of APScheduler 4's
sync scheduler): it works from any thread, including one that already runs its own loop (Jupyter).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

__all__ = ["Portal"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_END = object()


async def _next(iterator: AsyncIterator[T]) -> T | object:
    try:
        return await anext(iterator)
    except StopAsyncIteration:  # a coroutine must not let it escape as such
        return _END


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class Portal:
    """Runs an event loop on a daemon thread until :meth:`stop`.

    Args:
        name: the thread's name.
    """

    def __init__(self, name: str = "omniq-portal") -> None:
        self._loop: asyncio.AbstractEventLoop
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        # The loop is created in the thread that runs it: a selector bound to its creating thread
        # (gevent's, after monkey patching) then waits in the right hub.
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    @property
    def running(self) -> bool:
        """True until :meth:`stop` has ended the loop."""
        return self._thread.is_alive()

    def call(
        self,
        fn: Callable[P, Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run ``fn(*args, **kwargs)`` on the portal loop and block until it returns or raises.

        Exceptions cross unchanged.

        Raises:
            RuntimeError: called from the portal's own thread (it would wait on itself), or after
                :meth:`stop`.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "a blocking TaskQueue method was called on the queue's own event loop (e.g. from "
                "an async task); use the AsyncTaskQueue API there"
            )
        if not self.running:
            raise RuntimeError("the queue's event loop has stopped; the queue is closed")
        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop).result()

    def iterate(
        self, fn: Callable[P, AsyncIterator[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Iterator[T]:
        """Iterate ``fn(*args, **kwargs)``, an async iterator, from sync code: each ``next``
        runs one step on the portal loop. Leaving the loop early (or closing the iterator)
        closes the async iterator there too.

        Raises:
            RuntimeError: as :meth:`call`, at the first ``next``.
        """
        iterator = fn(*args, **kwargs)
        try:
            while True:
                item = self.call(_next, iterator)
                if item is _END:
                    return
                yield item  # type: ignore[misc]
        finally:
            if self.running and threading.current_thread() is not self._thread:
                self.call(_close, iterator)

    def stop(self) -> None:
        """End the loop and wait for the thread (idempotent)."""
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

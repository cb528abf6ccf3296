"""The ``thread`` executor: blocking functions on a pool of daemon threads."""

from __future__ import annotations

import asyncio
from typing import Any

from omniq._context import set_current_task
from omniq.executors._base import Call, Executor, is_async_callable
from omniq.executors._threads import DaemonThreadPool
from omniq.executors.async_ import _await_future

__all__ = ["ThreadExecutor"]


class ThreadExecutor(Executor):
    """Runs each call on one of ``concurrency`` daemon threads.

    Python cannot kill a thread: on timeout or cancellation the task's cancel token
    (:func:`omniq.current_task`) is set and the outcome is recorded at once; the thread keeps its
    slot until the function returns. A coroutine function routed here runs on a fresh event loop
    inside its thread.
    """

    name = "thread"

    def __init__(self, *, concurrency: int) -> None:
        super().__init__(concurrency=concurrency)
        self._pool = DaemonThreadPool(concurrency, name="omniq-thread")

    @property
    def in_flight(self) -> int:
        return self._pool.busy

    async def run(self, call: Call) -> Any:
        return await _await_future(call, self._pool.submit(lambda: _run(call)))

    async def shutdown(self) -> None:
        self._pool.shutdown()


def _run(call: Call) -> Any:
    set_current_task(call.context)
    if is_async_callable(call.fn):
        return asyncio.run(call.fn(*call.args, **call.kwargs))
    return call.fn(*call.args, **call.kwargs)

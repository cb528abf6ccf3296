"""The ``async`` executor: coroutines run on the worker's own event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from omniq._context import reset_current_task, set_current_task
from omniq.errors import TaskTimeoutError
from omniq.executors._base import Call, Executor, is_async_callable
from omniq.executors._thread_calls import ThreadCall, await_thread_call
from omniq.executors._threads import DaemonThreadPool

__all__ = ["AsyncExecutor"]

log = logging.getLogger("omniq.executors.async")


class AsyncExecutor(Executor):
    """Runs ``async def`` tasks as coroutines on the worker loop, ``concurrency`` at a time.

    A timeout or cancellation cancels the coroutine. A plain (sync) function routed here runs on a
    helper daemon thread so it never blocks the loop (heartbeats keep flowing).
    """

    name = "async"

    def __init__(self, *, concurrency: int) -> None:
        super().__init__(concurrency=concurrency)
        self._threads = DaemonThreadPool(concurrency, name="omniq-async-sync")
        self._coroutines = 0

    @property
    def in_flight(self) -> int:
        return self._coroutines + self._threads.busy

    async def run(self, call: Call) -> Any:
        if not is_async_callable(call.fn):
            job = ThreadCall(call, run_coroutines=False)
            return await await_thread_call(job, self._threads.submit(job))
        token = set_current_task(call.context)
        self._coroutines += 1
        loop = asyncio.get_running_loop()
        deadline = None if call.timeout is None else loop.time() + call.timeout
        try:
            async with asyncio.timeout(call.timeout) as scope:
                value = await call.fn(*call.args, **call.kwargs)
            if deadline is not None and loop.time() > deadline:
                # It returned late without the timeout firing: it blocked the event loop
                # (time.sleep, sync I/O) past its time limit, so it could not be cancelled.
                log.warning(
                    "task %s (async) blocked the event loop past its timeout of %s s; use "
                    "await asyncio.sleep / async I/O, or run it on the thread executor",
                    call.context.task_id,
                    call.timeout,
                )
                call.context.cancel_event.set()
                raise TaskTimeoutError(f"task exceeded its timeout of {call.timeout} s")
            return value
        except TimeoutError:
            if scope.expired():
                call.context.cancel_event.set()
                raise TaskTimeoutError(f"task exceeded its timeout of {call.timeout} s") from None
            raise
        except asyncio.CancelledError:
            call.context.cancel_event.set()
            raise
        finally:
            self._coroutines -= 1
            reset_current_task(token)

    async def shutdown(self) -> None:
        self._threads.shutdown()

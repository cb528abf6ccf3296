"""The ``thread`` executor: blocking functions on a pool of daemon threads."""

from __future__ import annotations

from typing import Any

from omniq.executors._base import Call, Executor
from omniq.executors._thread_calls import ThreadCall, await_thread_call
from omniq.executors._threads import DaemonThreadPool

__all__ = ["ThreadExecutor"]


class ThreadExecutor(Executor):
    """Runs each call on one of ``concurrency`` daemon threads.

    Python cannot kill a thread. On timeout the task's cancel token (:func:`omniq.current_task`)
    is set and :class:`~omniq.executors._thread_calls.TimeLimitExceeded` is raised inside the
    thread (delivered at its next bytecode); the ``TaskTimeoutError`` outcome is recorded once the
    thread has stopped, so a retry never overlaps the attempt that timed out. On cancellation the
    token is set and the outcome recorded at once; the thread keeps its slot until the function
    returns. A coroutine function routed here runs on a fresh event loop inside its thread.
    """

    name = "thread"

    def __init__(self, *, concurrency: int) -> None:
        super().__init__(concurrency=concurrency)
        self._pool = DaemonThreadPool(concurrency, name="omniq-thread")

    @property
    def in_flight(self) -> int:
        return self._pool.busy

    async def run(self, call: Call) -> Any:
        job = ThreadCall(call, run_coroutines=True)
        return await await_thread_call(job, self._pool.submit(job))

    async def shutdown(self) -> None:
        self._pool.shutdown()

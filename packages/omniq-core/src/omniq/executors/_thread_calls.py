"""Running one call on a pool thread, and its time limit.

Python cannot kill a thread. When a call on a thread outlives its timeout, the executor does
what Dramatiq does for its time limits: it sets the task's cancel token and raises an exception
*inside* the thread (``PyThreadState_SetAsyncExc``), which Python delivers at the thread's next
bytecode — at once for pure-Python code, when a blocking C call (``time.sleep``, a socket read)
returns otherwise. The exception derives from :class:`BaseException`, so a task's ``except
Exception`` does not swallow it. The outcome (``TaskTimeoutError``) is recorded only once the
thread has really stopped: a retry never runs while the timed-out attempt still runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from typing import Any

from omniq._context import set_current_task
from omniq.errors import TaskTimeoutError
from omniq.executors._base import Call, is_async_callable

__all__ = ["ThreadCall", "TimeLimitExceeded", "await_thread_call"]


class TimeLimitExceeded(BaseException):
    """Raised inside a task's thread when its timeout elapsed (not an :class:`Exception`, so
    ``except Exception`` in task code lets it through)."""


class ThreadCall:
    """``call`` as a pool-thread job that knows its thread while it runs, so it can be
    interrupted there and nowhere else.

    Args:
        call: the call to run.
        run_coroutines: run an ``async def`` function under :func:`asyncio.run` in the thread
            (the thread executor); otherwise the function is called as is.
    """

    def __init__(self, call: Call, *, run_coroutines: bool) -> None:
        self.call = call
        self._run_coroutines = run_coroutines
        self._lock = threading.Lock()
        self._ident: int | None = None  # the running thread, while the body runs

    def __call__(self) -> Any:
        with self._lock:
            self._ident = threading.get_ident()
        try:
            set_current_task(self.call.context)
            fn, args, kwargs = self.call.fn, self.call.args, self.call.kwargs
            if self._run_coroutines and is_async_callable(fn):
                return asyncio.run(fn(*args, **kwargs))
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self._ident = None
            _absorb_late_interrupt()

    def interrupt(self) -> bool:
        """Raise :class:`TimeLimitExceeded` in the thread if the body still runs there.

        Returns:
            True when the exception was scheduled in the running thread.
        """
        with self._lock:
            if self._ident is None:
                return False
            set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
            hit = int(
                set_async_exc(ctypes.c_ulong(self._ident), ctypes.py_object(TimeLimitExceeded))
            )
            if hit > 1:  # never expected: undo rather than hit several threads
                set_async_exc(ctypes.c_ulong(self._ident), None)
            return hit == 1


def _checkpoint() -> None:
    """A Python-level call: entering it makes the interpreter deliver a pending async exception."""


def _absorb_late_interrupt() -> None:
    """Swallow an interrupt that was scheduled just as the body returned, so it cannot surface
    later in the pool's own code (or in the thread's next job)."""
    try:
        _checkpoint()
    except TimeLimitExceeded:
        pass


async def await_thread_call(job: ThreadCall, future: asyncio.Future[Any]) -> Any:
    """Await a thread job's result within its call's timeout.

    On timeout: set the cancel token, interrupt the thread (:class:`TimeLimitExceeded`), wait
    until it has stopped, then raise :class:`~omniq.errors.TaskTimeoutError` (or return the
    value if it finished meanwhile). Only the expiry of this timeout becomes
    ``TaskTimeoutError``; a ``TimeoutError`` raised by the task's own code is its own error.
    On cancellation: set the cancel token and re-raise at once; the thread keeps its slot until
    the function returns (cancellation is cooperative for threads).
    """
    call = job.call
    try:
        async with asyncio.timeout(call.timeout) as scope:
            return await asyncio.shield(future)
    except TimeoutError:
        if not scope.expired():
            raise
    except asyncio.CancelledError:
        call.context.cancel_event.set()
        raise
    call.context.cancel_event.set()
    job.interrupt()
    try:
        return await asyncio.shield(future)  # the thread has stopped (or finished) by now
    except TimeLimitExceeded:
        pass
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # it failed on its own while stopping: still a timeout
        raise TaskTimeoutError(f"task exceeded its timeout of {call.timeout} s") from exc
    raise TaskTimeoutError(
        f"task exceeded its timeout of {call.timeout} s; its thread was interrupted"
    ) from None

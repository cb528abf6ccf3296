"""The ``gevent`` executor: sync task functions as greenlets, next to the worker's asyncio loop.

How the two schedulers share the main thread: the monkey patches (:mod:`omniq_gevent._monkey`)
make :class:`selectors.DefaultSelector` gevent's ``GeventSelector``, so the worker's asyncio loop,
created after patching, runs in the main greenlet and waits for I/O *through the gevent hub*.
While the loop waits, the hub runs the task greenlets; a greenlet that sleeps or does socket
I/O switches back to the hub, which resumes the loop when one of its file descriptors is ready or
its timer is due. A greenlet hands its result back with ``loop.call_soon_threadsafe``, which
writes to the loop's self-pipe: the hub sees the fd readable and wakes the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any

import gevent
import gevent.pool
from gevent import monkey
from gevent.selectors import GeventSelector

from omniq._context import set_current_task
from omniq.errors import ConfigError, TaskTimeoutError
from omniq.executors import Call, Executor
from omniq.executors._base import is_async_callable
from omniq.executors.async_ import AsyncExecutor
from omniq_gevent._monkey import imported_before_patch, is_patched

__all__ = ["HOW_TO_RUN", "GeventExecutor"]

log = logging.getLogger("omniq.executor.gevent")

HOW_TO_RUN = (
    "run it as `omniq worker -e gevent --import <your tasks module>` (the omniq command applies "
    "the patches before importing anything), or call `omniq_gevent.monkey_patch()` as the very "
    "first statement of the program that hosts the worker"
)
"""How to run the executor correctly (part of its error messages)."""

_BACKSTOP = 1.0
"""Seconds after a call's timeout at which the loop stops waiting for a greenlet that swallowed
its ``gevent.Timeout`` (the greenlet is killed and keeps its slot until it actually ends)."""

_SLOT_POLL = 0.005
"""Seconds between checks for a free pool slot in the (unexpected) case the pool is full."""


class GeventExecutor(Executor):
    """Runs sync task functions as greenlets of a :class:`gevent.pool.Pool` of ``concurrency``.

    * **Sync functions** run in greenlets; with the standard library monkey-patched,
      ``time.sleep`` and socket I/O yield to the other greenlets and to the worker's event loop,
      so thousands of I/O-bound calls run at once in one process. CPU-bound code does not
      yield: while it runs, nothing else (not even lease heartbeats) does.
    * **``async def`` functions** run as coroutines on the worker's event loop, exactly as on the
      ``async`` executor (``asyncio.timeout``, cancellation cancels the coroutine).
    * **Timeout**: a :class:`gevent.Timeout` is raised inside the greenlet at the point where it
      next yields; the call then fails with :class:`~omniq.errors.TaskTimeoutError` and the
      task's cancel token is set. If the function swallows the ``gevent.Timeout``, the call still
      fails with ``TaskTimeoutError`` one second later and the greenlet is killed.
    * **Cancellation** (the awaiting coroutine is cancelled: a cancel request, a lost lease or the
      worker's shutdown) sets the task's cancel token and kills the greenlet
      (:meth:`gevent.Greenlet.kill`: ``GreenletExit`` is raised where it waits, so its ``finally``
      blocks run); :class:`asyncio.CancelledError` propagates.
    * :func:`omniq.current_task` works inside the greenlet (it runs in a copy of the caller's
      context).

    A killed or timed-out greenlet keeps its slot until it has really ended.

    Args:
        concurrency: greenlets that may run at once (``OMNIQ_GEVENT_WORKERS`` by default).

    Raises:
        ConfigError: gevent's monkey patches are not applied (see :data:`HOW_TO_RUN`).
    """

    name = "gevent"

    def __init__(self, *, concurrency: int) -> None:
        super().__init__(concurrency=concurrency)
        if not is_patched():
            raise ConfigError(
                "the gevent executor needs gevent's monkey patches applied before anything else "
                f"is imported; {HOW_TO_RUN}"
            )
        if monkey.is_module_patched("threading"):
            log.warning(
                "threading is monkey-patched: aiosqlite's thread and the executors' helper "
                "threads become greenlets, and their blocking calls stall every greenlet and the "
                "event loop; patch with omniq_gevent.monkey_patch() (thread=False) instead"
            )
        early = imported_before_patch()
        if early:
            log.warning(
                "these modules were imported before gevent's monkey patches: %s; %s",
                ", ".join(early),
                HOW_TO_RUN,
            )
        self._pool = gevent.pool.Pool(concurrency)
        self._coroutines = AsyncExecutor(concurrency=concurrency)

    @property
    def in_flight(self) -> int:
        """Greenlets in the pool (killed and timed-out ones until they end) plus coroutines."""
        return len(self._pool) + self._coroutines.in_flight

    async def start(self) -> None:
        """Check that the running event loop waits through the gevent hub.

        Raises:
            ConfigError: the loop's selector is not gevent's (the loop was created before the
                patches, or it is not a selector loop, e.g. uvloop); greenlets would not run
                while the loop waits.
        """
        selector = getattr(asyncio.get_running_loop(), "_selector", None)
        if not isinstance(selector, GeventSelector):
            raise ConfigError(
                "the gevent executor needs the worker's asyncio loop to wait through gevent "
                f"(its selector is {type(selector).__name__}, not GeventSelector); {HOW_TO_RUN}"
            )
        await self._coroutines.start()

    async def run(self, call: Call) -> Any:
        """Run ``call``: a coroutine on the loop, anything else in a greenlet.

        Args:
            call: the function call, its timeout (seconds or ``None``) and its task context.

        Returns:
            The function's return value.

        Raises:
            TaskTimeoutError: the call exceeded ``call.timeout``.
            asyncio.CancelledError: the awaiting coroutine was cancelled (the greenlet is killed).
            BaseException: whatever the function raised, unchanged.
        """
        if is_async_callable(call.fn):
            return await self._coroutines.run(call)
        # Never true in practice: the worker hands over at most ``available()`` calls, and
        # ``in_flight`` counts every greenlet still in the pool. Polling keeps this guard free of
        # per-greenlet bookkeeping.
        while self._pool.full():  # noqa: ASYNC110
            await asyncio.sleep(_SLOT_POLL)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        greenlet = gevent.Greenlet(_run_in_greenlet, call, loop, future, contextvars.copy_context())
        self._pool.start(greenlet)
        backstop = None if call.timeout is None else call.timeout + _BACKSTOP
        try:
            async with asyncio.timeout(backstop) as scope:
                return await future
        except TimeoutError:
            if not scope.expired():
                raise  # the function's own TimeoutError
            call.context.cancel_event.set()
            greenlet.kill(block=False)
            raise TaskTimeoutError(f"task exceeded its timeout of {call.timeout} s") from None
        except asyncio.CancelledError:
            call.context.cancel_event.set()
            greenlet.kill(block=False)
            raise

    async def shutdown(self) -> None:
        """Kill the greenlets still running (timed out or killed, not ended yet); do not wait."""
        self._pool.kill(block=False)
        await self._coroutines.shutdown()


def _run_in_greenlet(
    call: Call,
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    context: contextvars.Context,
) -> None:
    """The greenlet's body: run the call in ``context`` and hand the outcome to ``future``."""
    ok, value = context.run(_call_with_timeout, call)
    try:
        loop.call_soon_threadsafe(_deliver, future, ok, value)
    except RuntimeError:  # the loop closed while the call ran; nobody is waiting
        pass


def _call_with_timeout(call: Call) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)``; the call's timeout as a ``gevent.Timeout``."""
    set_current_task(call.context)
    timer = gevent.Timeout(call.timeout)
    deadline = None if call.timeout is None else time.monotonic() + call.timeout
    timer.start()
    try:
        value = call.fn(*call.args, **call.kwargs)
        if deadline is not None and time.monotonic() >= deadline:
            # It caught its gevent.Timeout (or never yielded) and returned late: still a timeout.
            call.context.cancel_event.set()
            return False, TaskTimeoutError(f"task exceeded its timeout of {call.timeout} s")
        return True, value
    except gevent.Timeout as exc:
        if exc is not timer:
            return False, exc  # a gevent.Timeout of the function's own
        call.context.cancel_event.set()
        return False, TaskTimeoutError(f"task exceeded its timeout of {call.timeout} s")
    except BaseException as exc:  # the function's error (GreenletExit when killed: nobody waits)
        return False, exc
    finally:
        timer.close()


def _deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Complete ``future`` on the loop, unless its waiter is gone (cancelled or timed out)."""
    if future.done():
        return
    if ok:
        future.set_result(value)
        return
    try:
        future.set_exception(value)
    except TypeError:  # StopIteration cannot be set on a future
        error = RuntimeError(f"task raised {type(value).__name__}: {value}")
        error.__cause__ = value
        future.set_exception(error)

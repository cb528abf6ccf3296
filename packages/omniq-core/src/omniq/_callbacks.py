"""Running lifecycle callbacks without letting them change anything they observe.

A :class:`Callbacks` belongs to one client (shared with its embedded worker) or one standalone
worker. For each hook it calls the global middleware, then the queue's, then the task's own
callbacks (:mod:`omniq._middleware`), one after the other, in registration order:

- an ``async`` callback is awaited on the event loop; a sync one runs in a thread of the loop's
  default pool, so a slow one (an HTTP call, an e-mail) cannot stall heartbeats or other tasks;
- each call is bounded by ``timeout`` seconds (``OMNIQ_CALLBACK_TIMEOUT``): an async one is
  cancelled, a sync one is abandoned (its thread runs on; Python cannot stop it);
- whatever a callback raises (or a timeout) is logged at WARNING (the traceback at DEBUG) and
  recorded as a ``callback_error`` event naming the hook and the callback; the next callbacks
  still run and the task's stored outcome is never touched.

Hooks after a run are started in the background once the outcome is stored (the worker keeps
claiming meanwhile); those of one task run in order, one batch after the other. ``drain`` waits
for them (a stopping worker calls it before its last event flush).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Sequence
from typing import Any

from omniq._events import EventLogger
from omniq._middleware import (
    HOOKS,
    CallbackContext,
    Hook,
    any_task_callbacks,
    describe,
    flatten,
    hook_name,
    hooks_of,
    task_callbacks,
)
from omniq.executors._base import is_async_callable
from omniq.executors._threads import DaemonThreadPool
from omniq.models import ErrorInfo, EventType, Task, TaskState

__all__ = ["Callbacks", "hooks_for_state"]

_SYNC_CALLBACK_THREADS = 8
"""Threads that run sync callbacks (each call waits for a free one, within its timeout)."""

log = logging.getLogger("omniq.callbacks")

_AFTER: dict[TaskState, tuple[str, ...]] = {
    TaskState.SUCCESS: ("on_success", "on_complete"),
    TaskState.FAILED: ("on_failure", "on_complete"),
    TaskState.CANCELLED: ("on_cancel", "on_complete"),
    TaskState.SCHEDULED: ("on_retry",),
    TaskState.PENDING: ("on_retry",),
}


def hooks_for_state(state: TaskState) -> tuple[str, ...]:
    """The hooks an outcome of this state fires, in order (``()`` for none)."""
    return _AFTER.get(state, ())


class Callbacks:
    """The global and queue layers of callbacks, and the machinery that runs every layer.

    Args:
        events: where ``callback_error`` events go.
        timeout: seconds one callback call may take (> 0).
        middleware: the global layer (``omniq_add_middleware`` results); objects without any
            ``on_*`` method are skipped (the hook also carries event sinks for others).
    """

    def __init__(
        self, *, events: EventLogger, timeout: float = 30.0, middleware: Sequence[object] = ()
    ) -> None:
        self.timeout = timeout
        # Sync callbacks run on threads of their own: one that hangs past its timeout keeps
        # its thread, and must not take one the event loop's default pool (asyncio.to_thread,
        # which the backends use) needs.
        self._threads = DaemonThreadPool(_SYNC_CALLBACK_THREADS, name="omniq-callback")
        self._events = events
        self._hooks: dict[str, list[Hook]] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        for mw in middleware:
            for name, fn in hooks_of(mw).items():
                self._hooks.setdefault(name, []).append(fn)

    @classmethod
    def from_plugins(cls, *, events: EventLogger, timeout: float = 30.0) -> Callbacks:
        """The global layer from every ``omniq_add_middleware`` implementation, in
        registration order (pluggy calls the newest first; the results are reversed)."""
        from omniq.plugins import plugin_manager

        results = plugin_manager().hook.omniq_add_middleware()
        return cls(events=events, timeout=timeout, middleware=flatten(reversed(results)))

    # -- the queue layer ---------------------------------------------------------------------
    def add_middleware(self, middleware: object) -> None:
        """Append ``middleware``'s hooks (its overridden ``on_*`` methods).

        Raises:
            TypeError: it implements none of the hooks.
        """
        found = hooks_of(middleware)
        if not found:
            raise TypeError(
                f"{middleware!r} implements none of the hooks {', '.join(HOOKS)}; subclass "
                "omniq.Middleware and override some"
            )
        for name, fn in found.items():
            self._hooks.setdefault(name, []).append(fn)

    def on(self, hook: str, fn: Hook) -> None:
        """Append ``fn`` to ``hook`` (``"success"`` or ``"on_success"``).

        Raises:
            ConfigError: unknown hook name.
            TypeError: ``fn`` is not callable.
        """
        name = hook_name(hook)
        if not callable(fn):
            raise TypeError(f"callback for {name} must be callable, got {fn!r}")
        self._hooks.setdefault(name, []).append(fn)

    # -- running -----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """False when no callback exists anywhere (the hot paths then skip everything)."""
        return bool(self._hooks) or any_task_callbacks()

    def chain(self, hook: str, task: Task) -> list[Hook]:
        """The callables ``hook`` calls for ``task``: global and queue, then the task's own."""
        own = task_callbacks(task).get(hook, ())
        layered = self._hooks.get(hook)
        if layered is None:
            return list(own)
        return [*layered, *own]

    def contexts(
        self,
        task: Task,
        state: TaskState,
        *,
        hooks: Sequence[str] | None = None,
        worker_id: str | None = None,
        value: Any = None,
        error: ErrorInfo | None = None,
        exception: BaseException | None = None,
        retry_at: float | None = None,
        duration: float | None = None,
    ) -> list[tuple[CallbackContext, list[Hook]]]:
        """The hook calls an event fires (``hooks``, default those of ``state``), each with its
        callables; hooks with nothing to call are left out."""
        calls = []
        for hook in hooks_for_state(state) if hooks is None else hooks:
            chain = self.chain(hook, task)
            if chain:
                ctx = CallbackContext(
                    hook=hook,
                    task=task,
                    state=state,
                    worker_id=worker_id,
                    value=value,
                    error=error,
                    exception=exception,
                    retry_at=retry_at,
                    duration=duration,
                )
                calls.append((ctx, chain))
        return calls

    async def run(self, calls: list[tuple[CallbackContext, list[Hook]]]) -> None:
        """Call every callable of every hook call, in order; never raises (but is cancellable)."""
        for ctx, chain in calls:
            for fn in chain:
                await self._call(fn, ctx)

    async def run_in_order(
        self, task_id: str, calls: list[tuple[CallbackContext, list[Hook]]]
    ) -> None:
        """:meth:`run`, after the background calls of the same task (a retry's ``on_start``
        waits for the previous run's ``on_retry``)."""
        previous = self._pending.get(task_id)
        if previous is not None:
            await asyncio.wait([previous])
        await self.run(calls)

    async def run_chained(
        self, task_id: str, calls: list[tuple[CallbackContext, list[Hook]]]
    ) -> None:
        """Run ``calls`` now and wait for them, as a link of the task's chain: hooks this
        process fires later for the task (the embedded worker's ``on_start``) wait for them."""
        runner = self.spawn(task_id, calls)
        if runner is not None:
            await asyncio.shield(runner)

    def spawn(
        self, task_id: str, calls: list[tuple[CallbackContext, list[Hook]]]
    ) -> asyncio.Task[None] | None:
        """Run ``calls`` in the background, after the calls spawned earlier for the same task;
        returns the background task (``None`` when there is nothing to call)."""
        if not calls:
            return None
        previous = self._pending.get(task_id)
        runner = asyncio.create_task(
            self._after(previous, calls), name=f"omniq-callbacks-{task_id}"
        )
        self._pending[task_id] = runner

        def forget(done: asyncio.Task[None]) -> None:
            if self._pending.get(task_id) is done:
                del self._pending[task_id]

        runner.add_done_callback(forget)
        return runner

    async def _after(
        self, previous: asyncio.Task[None] | None, calls: list[tuple[CallbackContext, list[Hook]]]
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await self.run(calls)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the background callbacks (at most ``timeout`` seconds, then cancel them)."""
        while self._pending:
            pending = list(self._pending.values())
            _, late = await asyncio.wait(pending, timeout=timeout)
            if late:
                log.warning("cancelling %d callback run(s) still going at shutdown", len(late))
                for runner in late:
                    runner.cancel()
                await asyncio.wait(late)
                return

    async def _call(self, fn: Hook, ctx: CallbackContext) -> None:
        timer = asyncio.timeout(self.timeout)
        try:
            async with timer:
                if is_async_callable(fn):
                    await fn(ctx)
                else:
                    result = await self._threads.submit(functools.partial(fn, ctx))
                    if inspect.isawaitable(result):  # a sync callable returning a coroutine
                        await result
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled (shutdown): not the callback's doing
            self._failed(fn, ctx, exc)
        except TimeoutError as exc:
            late = TimeoutError(f"did not return within {self.timeout:g} s")
            self._failed(fn, ctx, late if timer.expired() else exc)
        except BaseException as exc:  # a callback must never take the worker down
            self._failed(fn, ctx, exc)

    def _failed(self, fn: Hook, ctx: CallbackContext, exc: BaseException) -> None:
        name = describe(fn)
        error = f"{type(exc).__name__}: {exc}"
        log.warning("%s callback %s of task %s failed: %s", ctx.hook, name, ctx.task_id, error)
        log.debug("%s callback %s traceback", ctx.hook, name, exc_info=exc)
        with contextlib.suppress(Exception):
            self._events.record(
                ctx.task,
                EventType.CALLBACK_ERROR,
                worker_id=ctx.worker_id,
                detail=f"{ctx.hook} {name}: {error}",
            )

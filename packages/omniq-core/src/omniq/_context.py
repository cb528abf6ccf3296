"""What a running task can learn about itself: :func:`current_task`.

The worker sets a :class:`TaskContext` in a context variable before calling the task's function,
in the event loop for coroutines and in the executing thread for sync functions (the context is
copied into the thread).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

__all__ = ["SlotLender", "TaskContext", "current_task", "lending_slot"]


class SlotLender(Protocol):
    """What the worker gives a running task so waiting inside it cannot deadlock the worker."""

    def lend(self) -> contextlib.AbstractAsyncContextManager[None]:
        """While inside, the task's slot counts as free: the worker may claim another task."""

    default_executor: str
    """The executor of tasks that name none on this worker."""

    def blocking(self) -> contextlib.AbstractContextManager[None]:
        """While inside, the task's slot counts as held by a task blocked waiting for others."""

    def could_run(self, executor: str | None, queue: str) -> bool:
        """True when this worker serves ``queue`` and hosts ``executor`` (``None``: its
        default) with at least one slot not held by a blocked waiter."""


class TaskContext(msgspec.Struct, kw_only=True, dict=True):
    """The running task's identity and its cancellation token.

    Attributes:
        task_id: the task's id.
        attempt: which run this is (1 for the first).
        queue: the task's queue.
        worker_id: the worker running it.
        cancel_event: set when the task should stop (cancellation requested, timeout, shutdown).
            Long-running sync code should check :meth:`cancelled` between steps.
        slots: the worker's slot lender (engine use: waiting for other tasks frees the slot of
            an async task; a sync task's wait checks there is a slot left), ``None`` where
            there is none (a ``process`` child).
    """

    task_id: str
    attempt: int
    queue: str
    worker_id: str
    cancel_event: threading.Event = msgspec.field(default_factory=threading.Event)
    slots: SlotLender | None = None

    def cancelled(self) -> bool:
        """True once the task has been asked to stop."""
        return self.cancel_event.is_set()


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "omniq_current_task", default=None
)


def current_task() -> TaskContext | None:
    """Return the context of the task running in this thread or coroutine, or ``None`` outside one."""
    return _current.get()


def set_current_task(ctx: TaskContext | None) -> contextvars.Token[TaskContext | None]:
    """Set the running task's context (engine use)."""
    return _current.set(ctx)


def reset_current_task(token: contextvars.Token[TaskContext | None]) -> None:
    """Undo :func:`set_current_task` (engine use)."""
    _current.reset(token)


@contextlib.asynccontextmanager
async def lending_slot() -> AsyncIterator[None]:
    """Around a wait for other tasks: inside a running task (on this worker's event loop), its
    slot is lent to the worker for the wait, so the awaited tasks can run here even when every
    slot is taken. Elsewhere it does nothing."""
    ctx = _current.get()
    if ctx is None or ctx.slots is None:
        yield
        return
    async with ctx.slots.lend():
        yield

"""What a running task can learn about itself: :func:`current_task`.

The worker sets a :class:`TaskContext` in a context variable before calling the task's function,
in the event loop for coroutines and in the executing thread for sync functions (the context is
copied into the thread).
"""

from __future__ import annotations

import contextvars
import threading

import msgspec

__all__ = ["TaskContext", "current_task"]


class TaskContext(msgspec.Struct, kw_only=True, dict=True):
    """The running task's identity and its cancellation token.

    Attributes:
        task_id: the task's id.
        attempt: which run this is (1 for the first).
        queue: the task's queue.
        worker_id: the worker running it.
        cancel_event: set when the task should stop (cancellation requested, timeout, shutdown).
            Long-running sync code should check :meth:`cancelled` between steps.
    """

    task_id: str
    attempt: int
    queue: str
    worker_id: str
    cancel_event: threading.Event = msgspec.field(default_factory=threading.Event)

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

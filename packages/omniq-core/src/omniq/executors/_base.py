"""The executor protocol: how a worker hands one function call to an execution model."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self

import msgspec

from omniq._context import TaskContext
from omniq.models import Task

if TYPE_CHECKING:
    from omniq.config import Settings
    from omniq.serialization import Serializer

__all__ = ["Call", "Executor", "is_async_callable"]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True when calling ``fn`` returns a coroutine (``async def``, also behind ``functools.partial``)."""
    while hasattr(fn, "func") and not inspect.isfunction(fn):  # functools.partial
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


class Call(msgspec.Struct, kw_only=True):
    """One function call to run.

    Attributes:
        fn: the task's function.
        args: positional arguments.
        kwargs: keyword arguments.
        timeout: seconds the call may take, or ``None``.
        context: the task's :class:`~omniq._context.TaskContext` (its cancel token is set on
            timeout or cancellation).
        task: the claimed record, for executors that run the call in another process and ship
            it there as stored (``func``, ``func_bytes``, ``payload``) instead of ``fn``/``args``.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    timeout: float | None
    context: TaskContext
    task: Task


class Executor(abc.ABC):
    """Runs calls; one instance per worker, with ``concurrency`` slots.

    The worker never hands an executor more than ``concurrency`` calls at once. ``run`` must raise
    :class:`~omniq.errors.TaskTimeoutError` when ``call.timeout`` elapses, re-raise the function's
    own exception unchanged, and, when the awaiting coroutine is cancelled, stop the call as far as
    the execution model allows and set ``call.context.cancel_event``.

    Args:
        concurrency: how many calls may run at once (>= 1).
    """

    name: ClassVar[str]

    def __init__(self, *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"{type(self).__name__}: concurrency must be >= 1, got {concurrency}")
        self.concurrency = concurrency

    @classmethod
    def from_settings(cls, settings: Settings, *, concurrency: int, serializer: Serializer) -> Self:
        """Build the executor a worker hosts.

        Executors with options of their own (the ``process`` executor's start method and child
        limits) read them from ``settings``; ``serializer`` is the worker's, for executors that
        decode arguments and encode results elsewhere. The default ignores both.

        Args:
            settings: the worker's effective settings.
            concurrency: slots (>= 1).
            serializer: the worker's serializer (carries the dill signing key).
        """
        del settings, serializer
        return cls(concurrency=concurrency)

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare resources (pools, children). Called once before the first ``run``."""

    @abc.abstractmethod
    async def run(self, call: Call) -> Any:
        """Run ``call`` and return the function's return value."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Slots in use, including calls that timed out but cannot be stopped yet (threads)."""

    lent: int = 0
    """Slots of calls that are waiting for other tasks and lent their slot to the worker
    (see :func:`omniq._context.lending_slot`); the worker's bookkeeping, not the executor's."""
    blocked: int = 0
    """Slots held by sync tasks blocked waiting for other tasks (see :mod:`omniq._waits`): they
    stay occupied, and a wait is refused when every slot is held so."""

    @property
    def occupied(self) -> int:
        """Slots in use that are not lent: what counts against ``concurrency``."""
        return max(0, self.in_flight - self.lent)

    def available(self) -> int:
        """Free slots: how many more calls the worker may hand over now (lent slots included)."""
        return max(0, self.concurrency - self.occupied)

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release resources; running calls have already been awaited or cancelled."""

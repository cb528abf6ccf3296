"""OmniQ: a Python task queue from one laptop (embedded SQLite) to PostgreSQL, Redis and NATS.

Start with :class:`TaskQueue` (sync) or :class:`AsyncTaskQueue` (async).

Importing ``omniq`` itself imports nothing else: every public name is loaded on first access
(PEP 562 ``__getattr__``). The ``omniq`` command relies on this: before anything else is
imported it may have to prepare the interpreter (``omniq worker -e gevent`` monkey-patches the
standard library first; see :mod:`omniq._launcher`). Type checkers see the names through the
``TYPE_CHECKING`` imports below, so ``from omniq import TaskQueue`` stays fully typed.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing is not free
if TYPE_CHECKING:
    from typing import Any

    from omniq._canvas import Graph, GraphRun, Signature, chain, chord, group, signature
    from omniq._context import TaskContext, current_task
    from omniq._defaults import DEFAULT
    from omniq._middleware import CallbackContext, Middleware
    from omniq._sync_client import TaskQueue
    from omniq.client import AsyncTaskQueue
    from omniq.errors import (
        DependencyCycleError,
        DependencyError,
        DependencyFailedError,
        OmniQError,
        ResultExpiredError,
        ResultNotStoredError,
        ResultTimeoutError,
        Retry,
        TaskCancelledError,
        TaskFailedError,
        TaskNotFoundError,
        TaskTimeoutError,
        WaitDeadlockError,
        WorkerLostError,
    )
    from omniq.models import (
        EventLevel,
        EventType,
        ExecutorStats,
        Task,
        TaskEvent,
        TaskResult,
        TaskState,
        ValueState,
        WorkerInfo,
        WorkerState,
    )

__all__ = [
    "DEFAULT",
    "AsyncTaskQueue",
    "CallbackContext",
    "DependencyCycleError",
    "DependencyError",
    "DependencyFailedError",
    "EventLevel",
    "EventType",
    "ExecutorStats",
    "Graph",
    "GraphRun",
    "Middleware",
    "OmniQError",
    "ResultExpiredError",
    "ResultNotStoredError",
    "ResultTimeoutError",
    "Retry",
    "Signature",
    "Task",
    "TaskCancelledError",
    "TaskContext",
    "TaskEvent",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskQueue",
    "TaskResult",
    "TaskState",
    "TaskTimeoutError",
    "ValueState",
    "WaitDeadlockError",
    "WorkerInfo",
    "WorkerLostError",
    "WorkerState",
    "chain",
    "chord",
    "current_task",
    "group",
    "signature",
]

__version__ = "0.1.0"

_HOME: dict[str, str] = {
    "DEFAULT": "omniq._defaults",
    "AsyncTaskQueue": "omniq.client",
    "CallbackContext": "omniq._middleware",
    "DependencyCycleError": "omniq.errors",
    "DependencyError": "omniq.errors",
    "DependencyFailedError": "omniq.errors",
    "EventLevel": "omniq.models",
    "EventType": "omniq.models",
    "ExecutorStats": "omniq.models",
    "Graph": "omniq._canvas",
    "GraphRun": "omniq._canvas",
    "Middleware": "omniq._middleware",
    "OmniQError": "omniq.errors",
    "ResultExpiredError": "omniq.errors",
    "ResultNotStoredError": "omniq.errors",
    "ResultTimeoutError": "omniq.errors",
    "Retry": "omniq.errors",
    "Signature": "omniq._canvas",
    "Task": "omniq.models",
    "TaskCancelledError": "omniq.errors",
    "TaskContext": "omniq._context",
    "TaskEvent": "omniq.models",
    "TaskFailedError": "omniq.errors",
    "TaskNotFoundError": "omniq.errors",
    "TaskQueue": "omniq._sync_client",
    "TaskResult": "omniq.models",
    "TaskState": "omniq.models",
    "TaskTimeoutError": "omniq.errors",
    "ValueState": "omniq.models",
    "WaitDeadlockError": "omniq.errors",
    "WorkerInfo": "omniq.models",
    "WorkerLostError": "omniq.errors",
    "WorkerState": "omniq.models",
    "chain": "omniq._canvas",
    "chord": "omniq._canvas",
    "current_task": "omniq._context",
    "group": "omniq._canvas",
    "signature": "omniq._canvas",
}
"""The module defining each public name (one entry per name of ``__all__``)."""


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and cache the name in this module.

    Raises:
        AttributeError: ``name`` is not a public name of ``omniq`` (nor a loaded submodule).
    """
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'omniq' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names (loaded or not) plus whatever this module already holds."""
    return sorted({*globals(), *__all__})

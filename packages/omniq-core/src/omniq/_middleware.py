"""Lifecycle callbacks: what a hook receives, the :class:`Middleware` base class, and the
process-local registry of per-task callbacks.

Callbacks come from three layers, run in this order for every hook:

1. **global**: every middleware returned by an ``omniq_add_middleware`` hook implementation
   (pluggy), in every client and worker of the process, standalone ``omniq worker`` included;
2. **queue**: ``queue.add_middleware(mw)`` and ``queue.on("success", fn)``, for that client's
   enqueues and its embedded worker;
3. **task**: ``@queue.task(on_success=fn, ...)``, kept here keyed by the function's import path
   when the decorator runs, so any worker that imports the task's module (it must, to run it)
   finds them.

How they run (threads, timeout, errors) is :mod:`omniq._callbacks`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from omniq.errors import ConfigError
from omniq.models import ErrorInfo, Task, TaskState

__all__ = [
    "CALLBACKS_HEADER",
    "HOOKS",
    "CallbackArgs",
    "CallbackContext",
    "Hook",
    "Middleware",
    "any_task_callbacks",
    "describe",
    "flatten",
    "hook_name",
    "hooks_of",
    "register_task_callbacks",
    "split_callbacks",
    "task_callbacks",
]

log = logging.getLogger("omniq.callbacks")

HOOKS = (
    "on_enqueue",
    "on_start",
    "on_success",
    "on_failure",
    "on_retry",
    "on_cancel",
    "on_complete",
)
"""Every lifecycle hook, in the order a task's life can reach them."""

CALLBACKS_HEADER = "omniq-callbacks"
"""Task header naming the registry entry of a ``.options(on_...=...)`` copy (reserved prefix)."""

Hook = Callable[["CallbackContext"], Any]
"""A callback: ``fn(ctx)``, sync or ``async``; its return value is ignored."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackContext:
    """What one hook call receives.

    Attributes:
        hook: the hook being called, e.g. ``"on_success"``.
        task: the task record — as stored (``on_enqueue``, a queued task's ``on_cancel``) or as
            claimed for this run (the other hooks; its ``attempt`` is this run's).
        state: the outcome: ``SUCCESS``, ``FAILED``, ``SCHEDULED`` (a retry), ``CANCELLED``;
            ``RUNNING`` for ``on_start``; ``PENDING``/``SCHEDULED`` for ``on_enqueue``.
            ``on_complete`` reads it to tell success, failure and cancellation apart.
        worker_id: the worker that ran the task; ``None`` in a producer.
        value: the task's return value (``on_success`` and its ``on_complete``).
        error: the error as stored (``on_failure``, ``on_retry``, ``on_cancel``, ``on_complete``).
        exception: the exception object when it was raised in this process (``None`` for an
            error known only as data: a ``process`` executor child's, a lost worker's).
        retry_at: epoch seconds of the next run (``on_retry``).
        duration: seconds the run took (hooks after a run; ``None`` otherwise).
    """

    hook: str
    task: Task
    state: TaskState
    worker_id: str | None = None
    value: Any = None
    error: ErrorInfo | None = None
    exception: BaseException | None = None
    retry_at: float | None = None
    duration: float | None = None

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.task.id

    @property
    def attempt(self) -> int:
        """Which run this is (1 for the first; 0 before any run)."""
        return self.task.attempt

    @property
    def queue(self) -> str:
        """The task's queue."""
        return self.task.queue


class Middleware:
    """Base class of lifecycle middleware: override the hooks you need (sync or ``async def``).

    Every hook receives one :class:`CallbackContext` and its return value is ignored. A hook
    that raises is logged and recorded as a ``callback_error`` event; it never changes the
    task's outcome, and the next callbacks still run.

    Install one with ``queue.add_middleware(mw)`` (that client and its embedded worker) or from
    an ``omniq_add_middleware`` plugin hook (every client and worker of the process).
    """

    def on_enqueue(self, ctx: CallbackContext) -> Any:
        """The task was stored (runs in the producer, after the write)."""

    def on_start(self, ctx: CallbackContext) -> Any:
        """A run is about to start (in the worker, before the function is called)."""

    def on_success(self, ctx: CallbackContext) -> Any:
        """The run returned and its outcome is stored; ``ctx.value`` is the return value."""

    def on_failure(self, ctx: CallbackContext) -> Any:
        """The task failed for good (no retry left, or not retryable) and that is stored."""

    def on_retry(self, ctx: CallbackContext) -> Any:
        """The run failed and a retry at ``ctx.retry_at`` is stored."""

    def on_cancel(self, ctx: CallbackContext) -> Any:
        """The task ended cancelled (queued: in the process that cancelled it; running: in
        its worker)."""

    def on_complete(self, ctx: CallbackContext) -> Any:
        """After any final outcome (success, failure, cancellation), after its specific hook."""


class CallbackArgs(TypedDict, total=False):
    """The callback keyword arguments of ``@queue.task(...)`` and ``.options(...)``: each a
    callable or a list of callables, called in list order."""

    on_enqueue: Hook | Sequence[Hook] | None
    on_start: Hook | Sequence[Hook] | None
    on_success: Hook | Sequence[Hook] | None
    on_failure: Hook | Sequence[Hook] | None
    on_retry: Hook | Sequence[Hook] | None
    on_cancel: Hook | Sequence[Hook] | None
    on_complete: Hook | Sequence[Hook] | None


def hook_name(name: str) -> str:
    """``"success"`` or ``"on_success"`` → ``"on_success"``.

    Raises:
        ConfigError: not a hook name (the message lists them).
    """
    full = name if name.startswith("on_") else f"on_{name}"
    if full not in HOOKS:
        raise ConfigError(
            f"unknown callback hook {name!r}; expected one of "
            + ", ".join(h.removeprefix("on_") for h in HOOKS)
        )
    return full


def _callables(name: str, value: Any) -> tuple[Hook, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else (value,)
    for fn in items:
        if not callable(fn):
            raise TypeError(f"{name} must be a callable or a list of callables, got {fn!r}")
    return tuple(items)


def split_callbacks(
    options: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, tuple[Hook, ...]]]:
    """Split decorator keyword arguments into ``(task options, {hook: callables})``.

    Raises:
        TypeError: a callback option holds something that is not callable (it is named).
    """
    rest = {k: v for k, v in options.items() if k not in HOOKS}
    hooks = {k: _callables(k, v) for k, v in options.items() if k in HOOKS}
    return rest, hooks


def hooks_of(middleware: object) -> dict[str, Hook]:
    """The hooks ``middleware`` implements: its ``on_*`` methods, without the no-ops inherited
    from :class:`Middleware`. Any object with such methods qualifies (duck typing)."""
    found: dict[str, Hook] = {}
    for name in HOOKS:
        method = getattr(middleware, name, None)
        if method is None or not callable(method):
            continue
        if getattr(method, "__func__", None) is getattr(Middleware, name):
            continue  # the base class's no-op
        found[name] = method
    return found


_warned: set[str] = set()
_registry: dict[str, dict[str, tuple[Hook, ...]]] = {}
"""Per-task callbacks by key (the function's import path, or a ``.options`` variant's key)."""


def register_task_callbacks(
    path: str,
    hooks: Mapping[str, tuple[Hook, ...]],
    *,
    base: str | None = None,
    site: str = "",
) -> str:
    """Keep a task function's callbacks in this process; return the key workers look up.

    Args:
        path: the function's import path (``module:qualname``).
        hooks: callables by hook name (``()`` or absent: none).
        base: for a ``.options(on_...=...)`` copy, the key whose callbacks it starts from: the
            hooks it names replace the base's, the others are inherited; the copy gets its own
            key, carried in the task's :data:`CALLBACKS_HEADER` header.
        site: where the copy was made (``module:line``): with the callbacks' names it makes
            the copy's key, the same in every process that runs that code (a worker importing
            the module that makes the copy at import time knows it too).

    Registering the same key again replaces its callbacks (a re-imported module does not
    double them); a decorator without callbacks removes the path's entry.
    """
    if base is None:
        entry = {k: v for k, v in hooks.items() if v}
        if entry:
            _registry[path] = entry
        else:
            _registry.pop(path, None)
        return path
    merged = {**_registry.get(base, {}), **hooks}
    entry = {k: v for k, v in merged.items() if v}
    names = ";".join(f"{k}={','.join(_name(fn) for fn in entry[k])}" for k in HOOKS if k in entry)
    names = f"{site}|{base}|{names}"
    key = f"{path}#{hashlib.sha256(names.encode()).hexdigest()[:16]}"
    _registry[key] = entry
    return key


def any_task_callbacks() -> bool:
    """True once some task function registered callbacks in this process."""
    return bool(_registry)


def task_callbacks(task: Task) -> Mapping[str, tuple[Hook, ...]]:
    """The per-task callbacks registered in this process for ``task`` (empty when none)."""
    if not _registry:
        return {}
    key = task.headers.get(CALLBACKS_HEADER)
    if key is not None:
        found = _registry.get(key)
        if found is not None:
            return found
        if key not in _warned:
            _warned.add(key)
            log.warning(
                "task %s was enqueued with callbacks %s that this process never registered (the "
                ".options(...) copy was made in code this worker does not import); running the "
                "function's own callbacks",
                task.id,
                key,
            )
    return _registry.get(task.func, {})


def _name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}:{qualname}"


def describe(fn: Callable[..., Any]) -> str:
    """A callback's readable name for logs and events (``module:qualname``)."""
    self_ = getattr(fn, "__self__", None)
    if self_ is not None and not isinstance(self_, type):
        return f"{type(self_).__module__}:{type(self_).__qualname__}.{fn.__name__}"
    return _name(fn)


def flatten(results: Iterable[Any]) -> list[object]:
    """The middleware objects of ``omniq_add_middleware`` results (lists concatenated)."""
    out: list[object] = []
    for result in results:
        if result is None:
            continue
        out.extend(result if isinstance(result, list | tuple) else [result])
    return out

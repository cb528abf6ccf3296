"""``TaskQueue``: the sync face of :class:`~omniq.client.AsyncTaskQueue`.

Every method is the async method run through a :class:`~omniq._portal.Portal`; nothing is written
twice. A queue that is never closed is closed at interpreter exit (running embedded tasks get a
short grace period, then go back to the queue), so a script exits promptly and loses nothing.
"""

from __future__ import annotations

import atexit
import functools
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack, overload

from omniq._decorator import TaskFunction
from omniq._middleware import Hook, split_callbacks
from omniq._options import TaskOptions, TaskOptionsArgs
from omniq._portal import Portal
from omniq.client import AsyncTaskQueue
from omniq.clock import Clock
from omniq.config import Settings

__all__ = ["TaskQueue"]

P = ParamSpec("P")
R = TypeVar("R")

_EXIT_GRACE = 2.0
"""Seconds embedded tasks get to finish when the interpreter exits with the queue still open."""


def _blocking(
    method: Callable[Concatenate[AsyncTaskQueue, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[TaskQueue, P], R]:
    @functools.wraps(method)
    def call(self: TaskQueue, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._portal.call(method, self.async_queue, *args, **kwargs)

    return call


def _close_at_exit(ref: weakref.ref[TaskQueue]) -> None:
    queue = ref()
    if queue is not None:
        queue.close(grace=min(_EXIT_GRACE, queue.settings.shutdown_grace))


class TaskQueue:
    """Sync client: same arguments and methods as :class:`~omniq.client.AsyncTaskQueue`,
    without ``await``. Connects and starts the embedded worker on construction.
    """

    def __init__(
        self,
        storage_type: str | None = None,
        worker_type: str | None = None,
        max_workers: int | None = None,
        *,
        storage_url: str | None = None,
        workers: int | None = None,
        queues: Sequence[str] = ("default",),
        settings: Settings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.async_queue = AsyncTaskQueue(
            storage_type,
            worker_type,
            max_workers,
            storage_url=storage_url,
            workers=workers,
            queues=queues,
            settings=settings,
            clock=clock,
        )
        self.settings = self.async_queue.settings
        self._portal = Portal()
        try:
            self._portal.call(self.async_queue.open)
        except BaseException:
            self._portal.stop()
            raise
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    def close(self, grace: float | None = None) -> None:
        """Drain the embedded worker (``grace`` seconds), flush and disconnect. Idempotent."""
        if not self._portal.running:
            return
        try:
            self._portal.call(self.async_queue.close, grace)
        finally:
            self._portal.stop()
            atexit.unregister(self._atexit)

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    enqueue = _blocking(AsyncTaskQueue.enqueue)
    enqueue_many = _blocking(AsyncTaskQueue.enqueue_many)
    get_task = _blocking(AsyncTaskQueue.get_task)
    get_result = _blocking(AsyncTaskQueue.get_result)
    cancel = _blocking(AsyncTaskQueue.cancel)
    list_tasks = _blocking(AsyncTaskQueue.list_tasks)
    stats = _blocking(AsyncTaskQueue.stats)
    worker_counts = _blocking(AsyncTaskQueue.worker_counts)
    list_events = _blocking(AsyncTaskQueue.list_events)
    list_workers = _blocking(AsyncTaskQueue.list_workers)
    add_schedule = _blocking(AsyncTaskQueue.add_schedule)
    get_schedule = _blocking(AsyncTaskQueue.get_schedule)
    list_schedules = _blocking(AsyncTaskQueue.list_schedules)
    pause_schedule = _blocking(AsyncTaskQueue.pause_schedule)
    resume_schedule = _blocking(AsyncTaskQueue.resume_schedule)
    remove_schedule = _blocking(AsyncTaskQueue.remove_schedule)
    next_runs = _blocking(AsyncTaskQueue.next_runs)
    list_dead = _blocking(AsyncTaskQueue.list_dead)
    requeue_dead = _blocking(AsyncTaskQueue.requeue_dead)
    requeue_dead_all = _blocking(AsyncTaskQueue.requeue_dead_all)
    purge_dead = _blocking(AsyncTaskQueue.purge_dead)

    def add_middleware(self, middleware: object) -> None:
        """Install lifecycle middleware; see :meth:`omniq.AsyncTaskQueue.add_middleware`."""
        self.async_queue.add_middleware(middleware)

    @overload
    def on(self, hook: str, fn: Hook, /) -> Hook: ...
    @overload
    def on(self, hook: str, fn: None = None, /) -> Callable[[Hook], Hook]: ...
    def on(self, hook: str, fn: Hook | None = None, /) -> Any:
        """Add one callback to a hook; see :meth:`omniq.AsyncTaskQueue.on`."""
        return self.async_queue.on(hook, fn) if fn is not None else self.async_queue.on(hook)

    def _enqueue_with(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: TaskOptions,
    ) -> str:
        return self._portal.call(self.async_queue._enqueue_with, func, args, kwargs, options)

    @overload
    def task(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...
    @overload
    def task(
        self, fn: None = None, /, **options: Unpack[TaskOptionsArgs]
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...
    def task(self, fn: Callable[P, R] | None = None, /, **options: Unpack[TaskOptionsArgs]) -> Any:
        """Decorate a function as a task: ``@queue.task`` or ``@queue.task(retries=3)``.

        ``f.enqueue(*args, **kwargs)`` stores a task (checked by mypy against ``f``'s signature).
        """
        rest, hooks = split_callbacks(options)
        task_options = TaskOptions(**rest)

        def decorate(f: Callable[P, R]) -> TaskFunction[P, R]:
            return TaskFunction(f, self._enqueue_with, task_options, hooks)

        return decorate(fn) if fn is not None else decorate

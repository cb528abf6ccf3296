"""``TaskQueue``: the sync face of :class:`~omniq.client.AsyncTaskQueue`.

Every method is the async method run through a :class:`~omniq._portal.Portal`; nothing is written
twice. A queue that is never closed is closed at interpreter exit (running embedded tasks get a
short grace period, then go back to the queue), so a script exits promptly and loses nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack, overload

from omniq._canvas import GraphRun
from omniq._context import current_task
from omniq._decorator import TaskFunction
from omniq._events import EventLogger, EventTypes
from omniq._middleware import Hook, split_callbacks
from omniq._options import TaskOptions, TaskOptionsArgs
from omniq._portal import Portal
from omniq._waits import sync_wait
from omniq.client import AsyncTaskQueue
from omniq.clock import Clock
from omniq.config import Settings
from omniq.models import Task, TaskEvent, TaskResult

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

    @property
    def event_logger(self) -> EventLogger:
        """The event logger (``queue.event_logger.level = "WARNING"`` changes the level)."""
        return self.async_queue.event_logger

    def events(
        self,
        *,
        task_id: str | None = None,
        type: EventTypes | None = None,
        since: float | datetime | None = None,
        poll_interval: float = 0.5,
    ) -> Iterator[TaskEvent]:
        """Subscribe to events: ``for event in queue.events(): ...`` (see
        :meth:`AsyncTaskQueue.events <omniq.client.AsyncTaskQueue.events>`). Each ``next``
        waits on the queue's event loop; closing the iterator (``break``) ends the subscription.

        Raises:
            ValueError: an unknown event type name.
        """
        stream = self.async_queue.events(
            task_id=task_id, type=type, since=since, poll_interval=poll_interval
        )
        return self._iterate(stream)

    def _iterate(self, stream: AsyncIterator[TaskEvent]) -> Iterator[TaskEvent]:
        async def step() -> tuple[bool, TaskEvent | None]:
            try:
                return True, await anext(stream)
            except StopAsyncIteration:
                return False, None

        async def close() -> None:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

        try:
            while True:
                more, event = self._portal.call(step)
                if not more or event is None:
                    return
                yield event
        finally:
            if self._portal.running:
                self._portal.call(close)

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    enqueue = _blocking(AsyncTaskQueue.enqueue)
    enqueue_many = _blocking(AsyncTaskQueue.enqueue_many)
    get_task = _blocking(AsyncTaskQueue.get_task)
    enqueue_graph = _blocking(AsyncTaskQueue.enqueue_graph)

    def get_result(self, task_id: str | GraphRun, timeout: float | None = None) -> Any:
        """Wait for the task (or graph) to finish and return its value; as
        :meth:`AsyncTaskQueue.get_result`.

        Raises:
            WaitDeadlockError: called from a sync task, for an unfinished task no worker could
                ever run (see :mod:`omniq._waits`); besides the errors of
                :meth:`AsyncTaskQueue.get_result`.
        """
        ids = task_id.result_ids if isinstance(task_id, GraphRun) else (task_id,)
        with self._waiting_for(ids):
            return self._portal.call(self.async_queue.get_result, task_id, timeout)

    def get_results(
        self,
        task_ids: Sequence[str],
        timeout: float | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Wait for every task and return their values in order; as
        :meth:`AsyncTaskQueue.get_results` (and :class:`WaitDeadlockError` as :meth:`get_result`)."""
        with self._waiting_for(task_ids):
            return self._portal.call(
                self.async_queue.get_results, task_ids, timeout, return_exceptions=return_exceptions
            )

    def _waiting_for(self, task_ids: Sequence[str]) -> contextlib.AbstractContextManager[None]:
        return sync_wait(
            task_ids,
            lambda ids: self._portal.call(self._read_tasks, ids),
            lambda: self._portal.call(self.async_queue.list_workers),
        )

    async def _read_tasks(self, task_ids: list[str]) -> list[Task | None]:
        await self.async_queue.open()
        return await self.async_queue.backend.get_tasks(task_ids)

    get_task_result = _blocking(AsyncTaskQueue.get_task_result)
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

    def as_completed(
        self, task_ids: Sequence[str], timeout: float | None = None
    ) -> Iterator[TaskResult]:
        """:meth:`AsyncTaskQueue.as_completed` as a plain iterator::

            for result in queue.as_completed(ids):
                ...

        Raises: as :meth:`AsyncTaskQueue.as_completed`, from the ``next`` call concerned
        (and :class:`WaitDeadlockError` at once, as :meth:`get_result`).
        """
        results = self._portal.iterate(self.async_queue.as_completed, task_ids, timeout)
        if current_task() is None:
            return results
        return self._yield_waiting(task_ids, results)

    def _yield_waiting(
        self, task_ids: Sequence[str], results: Iterator[TaskResult]
    ) -> Iterator[TaskResult]:
        with self._waiting_for(task_ids):
            yield from results

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

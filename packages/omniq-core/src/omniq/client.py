"""``AsyncTaskQueue``: the async client, and by default an embedded worker.

The sync :class:`omniq.TaskQueue` drives this same class through a portal thread, so everything
here exists once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, Unpack, overload

from omniq._callbacks import Callbacks
from omniq._canvas import Canvas, Graph, GraphRun, compile_any
from omniq._dead import DeadLetters
from omniq._decorator import AsyncTaskFunction
from omniq._defaults import DEFAULT, Default
from omniq._dependencies import check_parents, report_settled, settle, settle_dependents
from omniq._event_stream import stream_events
from omniq._events import EventTypes, build_event_logger, event_types
from omniq._events import epoch as _epoch
from omniq._ids import new_id
from omniq._middleware import Hook, split_callbacks
from omniq._offload import result_offload
from omniq._options import TaskOptions, TaskOptionsArgs, check_seconds, check_task_ids
from omniq._process_role import in_worker_process
from omniq._results import ResultReader
from omniq._setup import EMBEDDED_EXECUTORS, build_executors, create_backend, resolve_secret_key
from omniq._tasks import TaskBuilder
from omniq.backend import DEPENDENCY_FAILED_ERROR, Backend, TaskQuery
from omniq.clock import Clock
from omniq.config import Settings, load_settings
from omniq.errors import (
    ConfigError,
)
from omniq.logging import configure_logging
from omniq.models import (
    ErrorInfo,
    EventType,
    MisfirePolicy,
    Schedule,
    Task,
    TaskEvent,
    TaskResult,
    TaskState,
    WorkerInfo,
)
from omniq.plugins import configure_plugins
from omniq.schedules._api import ScheduleManager
from omniq.serialization import Serializer
from omniq.worker import Worker, WorkerOptions

__all__ = ["DEFAULT", "AsyncTaskQueue"]

log = logging.getLogger("omniq.client")

P = ParamSpec("P")
R = TypeVar("R")


_MAX_POLL = 0.2


def _check_ids(task_ids: Sequence[str]) -> list[str]:
    if isinstance(task_ids, str | bytes) or not isinstance(task_ids, Iterable):
        raise ConfigError(
            f"task_ids must be a list of task ids, got {type(task_ids).__name__} {task_ids!r:.60}"
        )
    ids = list(task_ids)
    for task_id in ids:
        if not isinstance(task_id, str):
            raise ConfigError(f"task_ids: {task_id!r} is not a task id (a string)")
    return ids


def _check_id(task_id: object) -> str:
    if not isinstance(task_id, str):
        hint = " (a GraphRun: use run.id or run.ids)" if isinstance(task_id, GraphRun) else ""
        raise TypeError(f"expected a task id (a string), got {type(task_id).__name__}{hint}")
    return task_id


class AsyncTaskQueue(DeadLetters):
    """Enqueue tasks, read results, and (by default) run tasks in this process.

    Args:
        storage_type: ``"sqlite"`` (default), ``"memory"``, ``"file"``, ``"postgres"``, … —
            ``OMNIQ_STORAGE_TYPE``.
        worker_type: the executor for tasks that name none: ``"async"`` (default), ``"thread"``,
            ``"process"``, ``"gevent"`` — ``OMNIQ_DEFAULT_WORKER``. The embedded worker hosts it
            and omniq-core's other executors, so a task naming ``async``, ``thread`` or
            ``process`` runs here too.
        max_workers: the most tasks the embedded worker runs at once, across its executors —
            ``OMNIQ_MAX_WORKERS``; it also sizes the default executor's pool. Unset: each
            executor's own pool size (``OMNIQ_ASYNC_WORKERS``, ``OMNIQ_THREAD_WORKERS``, …).
        storage_url: a storage URI (``sqlite:///jobs.db``, ``redis://…``); wins over ``storage_type``.
        workers: ``1`` runs one embedded worker; ``0`` makes a producer-only client. Default:
            ``1``, except in a worker process (``omniq worker``, a ``process`` executor child),
            where a client built by an imported task module must not start a worker of its own.
        queues: the queues the embedded worker serves (default ``("default",)``).
        settings: a :class:`~omniq.config.Settings` to use instead of reading the environment.
        clock: time source for the backend (tests use :class:`~omniq.clock.ManualClock`).

    Raises:
        ConfigError: a setting or argument is invalid (the message names it).
        omniq.errors.BackendNotFoundError: the storage's plugin is not installed.
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
        if workers is None:
            workers = 0 if in_worker_process() else 1
        if workers not in (0, 1):
            raise ConfigError(
                f"workers={workers!r}: a client runs 0 or 1 embedded worker; "
                "start more with `omniq worker`"
            )
        if isinstance(queues, str) or not queues:
            raise ConfigError(f"queues must be a non-empty list of names, got {queues!r}")
        self.settings = settings or load_settings(
            storage_type=storage_type,
            storage_url=storage_url,
            default_worker=worker_type,
            max_workers=max_workers,
        )
        configure_logging(self.settings)
        configure_plugins(self.settings)
        self.backend: Backend = create_backend(self.settings.resolved_storage_url(), clock=clock)
        self.serializer = Serializer(
            secret_key=resolve_secret_key(self.settings, self.backend),
            max_payload_bytes=self.settings.max_payload_bytes,
        )
        self._tasks = TaskBuilder(self.settings, self.backend, self.serializer)
        self._offload = result_offload(self.settings, self.backend)
        self._results = ResultReader(self.backend, self.serializer, self._offload)
        self._schedules = ScheduleManager(self.backend, self._tasks)
        self.event_logger = build_event_logger(self.backend, self.settings)
        self.callbacks = Callbacks.from_plugins(
            events=self.event_logger, timeout=self.settings.callback_timeout
        )
        self.worker: Worker | None = None
        if workers:
            executor = self.settings.default_worker
            self.worker = Worker(
                self.backend,
                executors=build_executors(
                    (executor, *EMBEDDED_EXECUTORS),
                    settings=self.settings,
                    serializer=self.serializer,
                    concurrency=max_workers,
                ),
                options=WorkerOptions.from_settings(
                    self.settings, queues=tuple(queues), executor=executor
                ),
                serializer=self.serializer,
                events=self.event_logger,
                on_finished=self._results.notify,
                offload=self._offload,
                callbacks=self.callbacks,
            )
        self._warned_callbacks = False
        self._open_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect to the backend and start the embedded worker (done on first use anyway).

        Raises:
            RuntimeError: the queue is closed, or was opened on another event loop (an
                ``AsyncTaskQueue`` lives on one loop: create one per ``asyncio.run``).
        """
        if self._opened:
            if asyncio.get_running_loop() is not self._loop:
                raise RuntimeError(
                    "this AsyncTaskQueue was opened on another event loop (an earlier "
                    "asyncio.run?); create one queue per event loop, or use TaskQueue"
                )
            return
        if self._closed:
            raise RuntimeError("this queue was closed; create a new one")
        if self._open_lock is None:
            self._loop = asyncio.get_running_loop()
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._opened:  # another coroutine opened it while we waited for the lock
                return  # type: ignore[unreachable]
            await self.backend.open()
            self.event_logger.start()
            if self.worker is not None:
                await self.worker.start()
            self._opened = True

    async def close(self, grace: float | None = None) -> None:
        """Drain the embedded worker (``grace`` seconds, default ``OMNIQ_SHUTDOWN_GRACE``), flush
        events and disconnect. Unfinished tasks go back to the queue for other workers. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        if not self._opened:
            return
        if self.worker is not None:
            await self.worker.stop(grace)
        await self.callbacks.drain(self.settings.callback_timeout)
        await self.event_logger.stop()
        await self.backend.close()

    async def __aenter__(self) -> AsyncTaskQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- enqueueing --------------------------------------------------------------------------
    async def _store(self, tasks: list[Task]) -> list[Task]:
        await self.open()
        if any(t.depends_on for t in tasks):
            await check_parents(self.backend, tasks)
        stored = await self.backend.enqueue(tasks)
        created = {t.id for t in tasks}
        for task in stored:
            if task.id in created:
                self.event_logger.record(task, EventType.ENQUEUED)
        waiting = [t.id for t in stored if t.state is TaskState.WAITING and t.id in created]
        if waiting:  # parents may have finished already: release or cancel those now
            await settle(self.backend, waiting, self._settled)
        if self.worker is not None:
            self.worker.wake()
        if self.callbacks.active:
            for task in stored:
                if task.id in created:
                    await self.callbacks.run_chained(
                        task.id, self.callbacks.contexts(task, task.state, hooks=("on_enqueue",))
                    )
        return stored

    def _settled(self, changed: list[Task]) -> None:
        """Waiting tasks this client released or cancelled: events, callbacks, woken waiters."""
        report_settled(changed, events=self.event_logger, callbacks=self.callbacks)
        self._results.notify([t.id for t in changed if t.state.is_terminal])

    # -- callbacks ---------------------------------------------------------------------------
    def add_middleware(self, middleware: object) -> None:
        """Install lifecycle middleware for this client's enqueues and cancellations and its
        embedded worker: an :class:`omniq.Middleware` (or any object) whose ``on_*`` methods
        are called after the global middleware's and before the task's own callbacks, in
        installation order. See ``docs/callbacks.md``.

        Raises:
            TypeError: ``middleware`` implements none of the hooks.
        """
        self.callbacks.add_middleware(middleware)
        self._warn_if_producer_in_worker()

    @overload
    def on(self, hook: str, fn: Hook, /) -> Hook: ...
    @overload
    def on(self, hook: str, fn: None = None, /) -> Callable[[Hook], Hook]: ...
    def on(self, hook: str, fn: Hook | None = None, /) -> Any:
        """Add one callback to a hook of this client (like :meth:`add_middleware`):
        ``queue.on("success", fn)``, or as a decorator ``@queue.on("failure")``.

        Args:
            hook: ``enqueue``, ``start``, ``success``, ``failure``, ``retry``, ``cancel`` or
                ``complete`` (the ``on_`` prefix is optional).
            fn: called with one :class:`omniq.CallbackContext`; sync or ``async``.

        Raises:
            ConfigError: unknown hook.
            TypeError: ``fn`` is not callable.
        """

        def add(f: Hook) -> Hook:
            self.callbacks.on(hook, f)
            self._warn_if_producer_in_worker()
            return f

        return add(fn) if fn is not None else add

    def _warn_if_producer_in_worker(self) -> None:
        """Queue-level callbacks of a producer-only client built by a task module inside
        ``omniq worker`` apply to its own enqueues only, not to the worker running the tasks:
        say so once (Celery users register signal handlers in exactly that place)."""
        if self.worker is None and in_worker_process() and not self._warned_callbacks:
            self._warned_callbacks = True
            log.warning(
                "callbacks added with queue.on()/add_middleware() in a worker process apply to "
                "this client's enqueues only, not to the tasks the worker runs; use per-task "
                "callbacks (@queue.task(on_success=...)) or an omniq_add_middleware plugin "
                "(docs/callbacks.md)"
            )

    async def enqueue(
        self,
        func: Callable[..., Any] | str,
        /,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        delay: float | timedelta | None = None,
        eta: datetime | None = None,
        priority: int = 0,
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
        retry_delay: float | timedelta | None = None,
        retry_backoff: float | None = None,
        retry_max_delay: float | timedelta | None = None,
        retry_jitter: bool | None = None,
        retry_on: Sequence[type[BaseException] | str] | None = None,
        give_up_on: Sequence[type[BaseException] | str] | None = None,
        result_ttl: float | Default | None = DEFAULT,
        idempotency_key: str | None = None,
        executor: str | None = None,
        headers: Mapping[str, str] | None = None,
        depends_on: Sequence[str] = (),
    ) -> str:
        """Store one task and return its id.

        Args:
            func: the function to run, or its import path ``"package.module:function"``.
            args: positional arguments (any value :mod:`omniq.serialization` carries).
            kwargs: keyword arguments.
            queue: queue name (default ``"default"``).
            delay: seconds (or a ``timedelta``) before the task is due.
            eta: an aware ``datetime`` at which the task is due (naive ones are rejected).
            priority: higher runs first.
            timeout: seconds one run may take; ``None`` for no limit; default ``OMNIQ_TASK_TIMEOUT``.
            retries: how often a failure is retried (the task runs at most ``retries + 1`` times);
                default ``OMNIQ_RETRY_ATTEMPTS``.
            retry_delay: base seconds before a retry; default ``OMNIQ_RETRY_DELAY``. Retry
                ``k`` waits ``min(retry_max_delay, retry_delay * retry_backoff ** (k - 1))``,
                or with ``retry_jitter`` a uniform random time between 0 and that.
            retry_backoff: delay multiplier per retry; default ``OMNIQ_RETRY_BACKOFF``.
            retry_max_delay: cap of one retry delay; default ``OMNIQ_RETRY_MAX_DELAY``.
            retry_jitter: "full jitter"; default ``OMNIQ_RETRY_JITTER``.
            retry_on: retry only these exceptions (classes or import paths, subclasses
                included); default: every exception.
            give_up_on: never retry these exceptions (they fail the task at once).
            result_ttl: seconds to keep the result; ``None`` forever, ``0`` not at all; default
                ``OMNIQ_RESULT_TTL``.
            idempotency_key: while a task with this key exists, enqueueing again returns its id.
            executor: executor that must run it; default: the worker's.
            headers: free text metadata.
            depends_on: ids of parent tasks: it stays ``waiting`` until every one succeeded
                (at once if they already did) and is cancelled, with the reason, when one fails
                or is cancelled. See :meth:`enqueue_graph` for chains, groups and chords.

        Raises:
            omniq.errors.SerializationError: an argument cannot be stored (the message names it).
            omniq.errors.PayloadTooLargeError: the arguments exceed ``OMNIQ_MAX_PAYLOAD_BYTES``.
            omniq.errors.DependencyError: ``depends_on`` names an unknown task id.
            ConfigError: an option is invalid.
        """
        options = TaskOptions(
            queue=queue,
            delay=delay,
            eta=eta,
            priority=priority,
            timeout=timeout,
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            retry_max_delay=retry_max_delay,
            retry_jitter=retry_jitter,
            retry_on=retry_on,
            give_up_on=give_up_on,
            result_ttl=result_ttl,
            idempotency_key=idempotency_key,
            executor=executor,
            headers=headers,
            depends_on=depends_on,
        )
        [task] = await self._store([self._tasks.build(func, args, kwargs, options)])
        return task.id

    async def enqueue_graph(
        self, graph: Canvas | Graph, *, depends_on: Sequence[str] = ()
    ) -> GraphRun:
        """Store a task graph in one batch: a :func:`~omniq.chain`, :func:`~omniq.group`,
        :func:`~omniq.chord`, a signature (``f.s(...)``) or a named :class:`~omniq.Graph`.

        Parents run before children, in parallel where the graph allows; a child starts only
        when all its parents succeeded; a failure or cancellation cancels every descendant
        with the reason. ``await get_result(run)`` waits for the graph's result.

        Args:
            graph: the graph.
            depends_on: ids of existing tasks the graph's first tasks wait for.

        Returns:
            A :class:`~omniq.GraphRun`: every task id, and the ids holding the result.

        Raises:
            omniq.errors.DependencyCycleError: a :class:`~omniq.Graph` with a cycle.
            omniq.errors.DependencyError: ``depends_on`` names an unknown task.
            ConfigError: a node has an ``idempotency_key`` or ``depends_on`` of its own, or a
                graph refers to an unknown node.
            TypeError: a node is not a signature, chain, group, chord or graph.
        """
        plan = compile_any(graph, new_id, check_task_ids("depends_on", depends_on))
        tasks = self._tasks.build_plan(plan)
        if tasks:
            await self._store(tasks)
        return plan.run()

    async def enqueue_many(
        self,
        func: Callable[..., Any] | str,
        /,
        args_list: Iterable[Sequence[Any]],
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        delay: float | timedelta | None = None,
        eta: datetime | None = None,
        priority: int = 0,
        timeout: float | Default | None = DEFAULT,
        retries: int | Default = DEFAULT,
        retry_delay: float | timedelta | None = None,
        retry_backoff: float | None = None,
        retry_max_delay: float | timedelta | None = None,
        retry_jitter: bool | None = None,
        retry_on: Sequence[type[BaseException] | str] | None = None,
        give_up_on: Sequence[type[BaseException] | str] | None = None,
        result_ttl: float | Default | None = DEFAULT,
        executor: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Store one task per item of ``args_list`` in one atomic write; return their ids in order.

        Every task calls ``func(*args, **kwargs)`` with its own ``args`` and the shared ``kwargs``;
        the other options are those of :meth:`enqueue` and apply to every task.
        """
        options = TaskOptions(
            queue=queue,
            delay=delay,
            eta=eta,
            priority=priority,
            timeout=timeout,
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            retry_max_delay=retry_max_delay,
            retry_jitter=retry_jitter,
            retry_on=retry_on,
            give_up_on=give_up_on,
            result_ttl=result_ttl,
            executor=executor,
            headers=headers,
        )
        tasks = [self._tasks.build(func, args, kwargs, options) for args in args_list]
        if not tasks:
            return []
        return [task.id for task in await self._store(tasks)]

    async def _enqueue_with(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: TaskOptions,
    ) -> str:
        [task] = await self._store([self._tasks.build(func, args, kwargs, options)])
        return task.id

    @overload
    def task(self, fn: Callable[P, R], /) -> AsyncTaskFunction[P, R]: ...
    @overload
    def task(
        self, fn: None = None, /, **options: Unpack[TaskOptionsArgs]
    ) -> Callable[[Callable[P, R]], AsyncTaskFunction[P, R]]: ...
    def task(self, fn: Callable[P, R] | None = None, /, **options: Unpack[TaskOptionsArgs]) -> Any:
        """Decorate a function as a task of this queue: ``@queue.task`` or ``@queue.task(retries=3)``.

        The decorated function still runs locally when called; ``await f.enqueue(*args, **kwargs)``
        stores a task (arguments checked by mypy against the function's signature) and
        ``f.options(delay=…)`` returns a copy with other options. Accepted options: those of
        :meth:`enqueue` except ``args``/``kwargs``, plus lifecycle callbacks ``on_enqueue``,
        ``on_start``, ``on_success``, ``on_failure``, ``on_retry``, ``on_cancel``,
        ``on_complete`` (a callable or a list of them, each called with an
        :class:`omniq.CallbackContext`; see ``docs/callbacks.md``).

        Raises:
            TypeError, ConfigError: an invalid option (named in the message).
        """
        rest, hooks = split_callbacks(options)
        task_options = TaskOptions(**rest)

        def decorate(f: Callable[P, R]) -> AsyncTaskFunction[P, R]:
            return AsyncTaskFunction(f, self._enqueue_with, task_options, hooks)

        return decorate(fn) if fn is not None else decorate

    # -- reading -----------------------------------------------------------------------------
    async def get_task(self, task_id: str) -> Task:
        """The stored task record.

        Raises:
            TaskNotFoundError: no such task (never enqueued, or purged).
        """
        task_id = _check_id(task_id)
        await self.open()
        return await self._results.task(task_id)

    async def get_result(self, task_id: str | GraphRun, timeout: float | None = None) -> Any:
        """Wait for the task to finish and return its value.

        Args:
            task_id: the id ``enqueue`` returned, or the :class:`~omniq.GraphRun` of
                :meth:`enqueue_graph`: then the value of its last task (a chain), callback
                (a chord), or the list of its members' values (a group; ``[]`` at once for
                an empty one).
            timeout: seconds to wait; ``None`` waits as long as it takes, ``0`` checks once.

        Raises:
            TaskFailedError: the task failed; carries the remote type, message and traceback.
            TaskCancelledError: the task was cancelled.
            ResultTimeoutError: still unfinished after ``timeout`` seconds.
            ResultNotStoredError: it succeeded with ``result_ttl=0``.
            ResultExpiredError: its result outlived ``result_ttl``.
            TaskNotFoundError: no such task.
            ConfigError: ``timeout`` is negative or not a finite number.
        """
        timeout = check_seconds("timeout", timeout, allow_none=True)
        await self.open()
        if isinstance(task_id, GraphRun):
            if task_id.is_group:
                ids = list(task_id.result_ids)
                return await self._results.values(ids, timeout, return_exceptions=False)
            task_id = task_id.id
        task_id = _check_id(task_id)
        return await self._results.wait(task_id, timeout)

    async def get_results(
        self,
        task_ids: Sequence[str],
        timeout: float | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Wait for several tasks and return their values, in the order of ``task_ids``.

        One round trip per polling round reads every unfinished task (and one more the values
        of those that just succeeded), however many ids are given. Duplicated ids get the same
        value at each place; an empty list returns ``[]`` at once.

        Args:
            task_ids: ids ``enqueue``/``enqueue_many`` returned (a list, not one id string).
            timeout: seconds to wait for all of them; ``None`` as long as it takes, ``0`` checks
                once.
            return_exceptions: put each task's error (``TaskFailedError``,
                ``TaskCancelledError``, ``ResultNotStoredError``, ``ResultExpiredError``) in
                its place instead of raising; the call then waits for every task.

        Raises:
            TaskFailedError, TaskCancelledError, ResultNotStoredError, ResultExpiredError: the
                first of these in input order (without ``return_exceptions``), raised once every
                task before it has succeeded, without waiting for the tasks after it.
            ResultTimeoutError: tasks were still unfinished after ``timeout`` seconds (their ids
                are on the error's ``task_ids``).
            TaskNotFoundError: an id is unknown (checked in the first round).
            ConfigError: ``task_ids`` is a string, or ``timeout`` is negative or not finite.
        """
        ids = _check_ids(task_ids)
        timeout = check_seconds("timeout", timeout, allow_none=True)
        if not ids:
            return []
        await self.open()
        return await self._results.values(ids, timeout, return_exceptions=return_exceptions)

    async def as_completed(
        self, task_ids: Sequence[str], timeout: float | None = None
    ) -> AsyncGenerator[TaskResult, None]:
        """Yield a :class:`~omniq.models.TaskResult` per task as each one finishes::

            async for result in queue.as_completed(ids):
                print(result.task_id, result.state, result.value if result.ok else result.error)

        Failed and cancelled tasks are yielded too (``state``, ``error``): a task's failure never
        raises here. Each distinct id is yielded once, in completion order (tasks seen finished
        in one polling round come by ``finished_at``, then input order). Leaving the loop early
        is fine.

        Args:
            task_ids: the ids to watch (a list, not one id string).
            timeout: seconds, counted from the start of the iteration, for all of them to
                finish; ``None`` as long as it takes.

        Raises:
            ResultTimeoutError: the timeout passed with tasks unfinished (the ones that finished
                were yielded before; the others are on the error's ``task_ids``).
            TaskNotFoundError: an id is unknown (raised before anything is yielded).
            ConfigError: ``task_ids`` is a string, or ``timeout`` is invalid.
        """
        ids = _check_ids(task_ids)
        timeout = check_seconds("timeout", timeout, allow_none=True)
        if not ids:
            return
        await self.open()
        async with contextlib.aclosing(self._results.as_completed(ids, timeout)) as results:
            async for result in results:
                yield result

    async def get_task_result(self, task_id: str) -> TaskResult:
        """The task's :class:`~omniq.models.TaskResult` now, without waiting.

        It carries the state, the value (``value_state`` says whether it is ``available``,
        ``not_stored`` with ``result_ttl=0``, ``expired``, or there is none yet or at all), the
        error, ``attempts``, ``worker_id`` and the timings (``enqueued_at``, ``started_at``,
        ``finished_at``; properties ``duration`` and ``queued_for`` in seconds).
        ``result.value_or_raise()`` turns it into what :meth:`get_result` returns or raises.

        Raises:
            TaskNotFoundError: no such task (never enqueued, or purged by retention).
            omniq.errors.DeserializationError: the stored value cannot be decoded here.
        """
        task_id = _check_id(task_id)
        await self.open()
        return await self._results.task_result(task_id)

    async def cancel(self, task_id: str | GraphRun) -> bool:
        """Cancel a task: a queued one never runs; a running one is asked to stop (it stops when
        its worker learns of it, at its next heartbeat). Either way its waiting dependents are
        cancelled at once, with the reason, so a pipeline stops at the cancelled task.

        Args:
            task_id: a task id, or the :class:`~omniq.GraphRun` of :meth:`enqueue_graph` to
                cancel every unfinished task of that graph.

        Returns True when the task (for a graph: any of its tasks) is now cancelled or its
        cancellation was requested, False when it had already finished.

        Raises:
            TaskNotFoundError: no such task.
            TypeError: ``task_id`` is neither a task id nor a ``GraphRun``.
        """
        if isinstance(task_id, GraphRun):
            done = [await self._cancel_one(i) for i in task_id.ids]
            return any(done)
        if not isinstance(task_id, str):
            raise TypeError(f"cancel() takes a task id or a GraphRun, got {type(task_id).__name__}")
        return await self._cancel_one(task_id)

    async def _cancel_one(self, task_id: str) -> bool:
        before = await self.get_task(task_id)
        if before.state.is_terminal:
            return False
        [task] = await self.backend.cancel(
            [task_id],
            error=ErrorInfo(type="omniq.errors.TaskCancelledError", message="cancelled by request"),
        )
        if task.state is TaskState.CANCELLED:
            self.event_logger.record(task, EventType.CANCELLED, detail="cancelled by request")
            self._results.notify([task_id])
            if self.callbacks.active:  # a queued task: it ends here (a running one, in its worker)
                await self.callbacks.run(
                    self.callbacks.contexts(task, task.state, error=task.error)
                )
            await settle_dependents(self.backend, [task_id], self._settled)
            return True
        if task.cancel_requested:  # running: whatever its outcome, its dependents must not run
            children = await self.backend.dependents([task_id])
            if children:
                reason = f"parent task {task_id} was cancelled while running"
                error = ErrorInfo(type=DEPENDENCY_FAILED_ERROR, message=reason)
                changed = [
                    t
                    for t in await self.backend.cancel(children, error=error)
                    if t.state is TaskState.CANCELLED and t.error == error
                ]
                if changed:
                    self._settled(changed)
                    await settle_dependents(self.backend, [t.id for t in changed], self._settled)
        return task.cancel_requested

    async def list_tasks(
        self,
        *,
        queue: str | None = None,
        state: TaskState | str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Stored tasks, newest first, optionally of one queue and/or state.

        Raises:
            ConfigError: ``limit`` is not between 1 and 10,000, or ``state`` is unknown.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigError(f"limit={limit!r}: must be an integer between 1 and 10000")
        if state is not None and state not in TaskState._value2member_map_:
            raise ConfigError(
                f"state={state!r}: expected one of {', '.join(s.value for s in TaskState)}"
            )
        await self.open()
        return await self.backend.list_tasks(
            TaskQuery(
                queues=(queue,) if queue else None,
                states=(TaskState(state),) if state else None,
                limit=limit,
            )
        )

    async def stats(self, *, queue: str | None = None) -> dict[str, int]:
        """How many tasks are in each state (all states listed, zeros included)."""
        await self.open()
        counts = await self.backend.count_tasks(TaskQuery(queues=(queue,) if queue else None))
        return {state.value: counts.get(state, 0) for state in TaskState}

    async def worker_counts(self, *, queue: str | None = None) -> dict[str, int]:
        """How many finished or running tasks each worker id ran (its latest attempt)."""
        await self.open()
        return await self.backend.count_by_worker(
            TaskQuery(
                queues=(queue,) if queue else None,
                states=(
                    TaskState.RUNNING,
                    TaskState.SUCCESS,
                    TaskState.FAILED,
                    TaskState.CANCELLED,
                ),
            )
        )

    async def list_workers(self) -> list[WorkerInfo]:
        """The live workers of this storage (standalone and embedded), sorted by id.

        Each is its latest health record: host, pid, queues, executors with their busy slots and
        counters, running task ids, and when it was last heard from. A worker not heard from
        for three heartbeats (``OMNIQ_WORKER_HEARTBEAT``) is considered dead and not listed.
        """
        await self.open()
        return await self.backend.list_workers()

    async def list_events(
        self,
        *,
        task_id: str | None = None,
        type: EventTypes | None = None,
        since: float | datetime | None = None,
        limit: int = 100,
    ) -> list[TaskEvent]:
        """Recorded events, oldest first (this process's buffered events are flushed first).

        Args:
            task_id: only this task's events.
            type: only events of this type, or of these types (names or :class:`EventType`).
            since: only events at or after this time (seconds since the epoch, or an aware
                ``datetime``).
            limit: at most this many events.

        Raises:
            ValueError: an unknown event type name.
        """
        await self.open()
        await self.event_logger.flush()
        return await self.backend.list_events(
            task_id=task_id, types=event_types(type), since=_epoch(since), limit=limit
        )

    def events(
        self,
        *,
        task_id: str | None = None,
        type: EventTypes | None = None,
        since: float | datetime | None = None,
        poll_interval: float = 0.5,
    ) -> AsyncIterator[TaskEvent]:
        """Subscribe to events: ``async for event in queue.events(): ...``.

        Yields this process's events as they are recorded and every other process's as they are
        stored (polled every ``poll_interval`` seconds), each once; ends when the queue closes.
        Delivery guarantees are in ``docs/events.md`` (:mod:`omniq._event_stream`).

        Args:
            task_id: only this task's events.
            type: only this type, or these types (names or :class:`EventType`).
            since: replay stored events from this time first (seconds since the epoch or an
                aware ``datetime``); ``None``: only events from now on.
            poll_interval: seconds between polls of the store.

        Raises:
            ValueError: an unknown event type name (at once, not when iteration starts).
        """
        return self._event_stream(task_id, event_types(type), _epoch(since), poll_interval)

    async def _event_stream(
        self,
        task_id: str | None,
        types: frozenset[EventType] | None,
        since: float | None,
        poll_interval: float,
    ) -> AsyncIterator[TaskEvent]:
        await self.open()
        async for event in stream_events(
            self.backend,
            self.event_logger,
            task_id=task_id,
            types=types,
            since=since,
            poll_interval=poll_interval,
            is_closed=lambda: self._closed,
        ):
            yield event

    # -- schedules ---------------------------------------------------------------------------
    async def add_schedule(
        self,
        func: Callable[..., Any] | str,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        at: datetime | float | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        id: str | None = None,
        timezone: str = "UTC",
        start_at: datetime | float | None = None,
        end_at: datetime | float | None = None,
        queue: str | None = None,
        executor: str | None = None,
        priority: int = 0,
        jitter: float | timedelta = 0,
        misfire: MisfirePolicy | str = "run_once",
        misfire_limit: int = 100,
    ) -> Schedule:
        """Create or update (same ``id``) a schedule; every worker's scheduler runs it, exactly
        one task per tick.

        Args:
            func: a module-level function or its import path ``"package.module:function"``.
            cron: a 5- or 6-field cron expression, read in ``timezone``.
            every: seconds (or a ``timedelta``) between runs.
            at: one run at this aware ``datetime`` (or epoch seconds).
            args, kwargs: the arguments of every run.
            id: the schedule's name (default: the function's import path). Adding an existing id
                updates that schedule; its next run is kept when the timing is unchanged.
            timezone: IANA zone of ``cron`` and of :meth:`next_runs`'s datetimes.
            start_at, end_at: aware datetimes (or epoch seconds) bounding the ticks.
            queue, executor, priority: copied onto every task.
            jitter: up to this many seconds (or a ``timedelta``) of delay added to each task.
            misfire: ``run_once`` (default), ``skip`` or ``run_all``: what happens to ticks
                missed while no scheduler ran.
            misfire_limit: the most missed ticks ``run_all`` catches up.

        Raises:
            ConfigError: not exactly one of ``cron``/``every``/``at``, a naive datetime, an
                invalid cron expression or value, or a function workers cannot import.
        """
        schedule = self._schedules.build(
            func,
            cron=cron,
            every=every,
            at=at,
            args=args,
            kwargs=kwargs,
            id=id,
            timezone=timezone,
            start_at=start_at,
            end_at=end_at,
            queue=queue,
            executor=executor,
            priority=priority,
            jitter=jitter,
            misfire=misfire,
            misfire_limit=misfire_limit,
        )
        await self.open()
        stored = await self._schedules.upsert(schedule)
        if self.worker is not None:
            self.worker.wake_scheduler()
        return stored

    async def get_schedule(self, schedule_id: str) -> Schedule:
        """The stored schedule.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        await self.open()
        return await self._schedules.get(schedule_id)

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule of this storage (paused ones included), sorted by id."""
        await self.open()
        return await self.backend.list_schedules()

    async def pause_schedule(self, schedule_id: str) -> Schedule:
        """Stop a schedule producing tasks until :meth:`resume_schedule`.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        await self.open()
        return await self._schedules.set_paused(schedule_id, True)

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        """Let a paused schedule produce tasks again (missed ticks run per its misfire policy).

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        await self.open()
        stored = await self._schedules.set_paused(schedule_id, False)
        if self.worker is not None:
            self.worker.wake_scheduler()
        return stored

    async def remove_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule; ``True`` if it existed. Tasks it produced are kept."""
        await self.open()
        return await self._schedules.remove(schedule_id)

    async def next_runs(self, schedule_id: str, n: int = 5) -> list[datetime]:
        """The next ``n`` ticks as aware datetimes in the schedule's zone (fewer if it ends).

        Raises:
            ScheduleNotFoundError: no such schedule.
            ConfigError: ``n`` is not between 1 and 1000.
        """
        await self.open()
        return await self._schedules.next_runs(schedule_id, n)

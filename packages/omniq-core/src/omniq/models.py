"""The records OmniQ stores: tasks, results, schedules, events and worker health (``msgspec.Struct``).

All times are POSIX timestamps in seconds (``float``, UTC). Durations are seconds. A backend stores
these records and indexes a few fields; payloads (``Task.payload``, ``StoredResult.data``) are opaque
bytes produced by :mod:`omniq.serialization`.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = [
    "TERMINAL_STATES",
    "WORKER_COUNTERS",
    "ErrorInfo",
    "EVENT_LEVELS",
    "EventLevel",
    "EventType",
    "ExecutorStats",
    "MisfirePolicy",
    "Schedule",
    "StoredResult",
    "Task",
    "TaskEvent",
    "TaskResult",
    "TaskState",
    "ValueState",
    "WorkerInfo",
    "WorkerState",
]


class TaskState(enum.StrEnum):
    """Where a task is in its life; see ``docs/task-states.md`` for every allowed transition."""

    PENDING = "pending"
    """Due now; any worker serving its queue may claim it."""
    SCHEDULED = "scheduled"
    """Delayed (``delay``/``eta``) or waiting for a retry; claimable once ``run_at`` has passed."""
    WAITING = "waiting"
    """Waiting for parent tasks to succeed (dependencies)."""
    RUNNING = "running"
    """Claimed by a worker under a lease."""
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for ``success``, ``failed`` and ``cancelled``: the task will never run again."""
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[TaskState] = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.CANCELLED}
)


class EventType(enum.StrEnum):
    """What happened to a task (or a worker); one :class:`TaskEvent` is recorded per occurrence.

    Each type has a level (:data:`EVENT_LEVELS`): an :class:`~omniq._events.EventLogger` records
    only the types at or above its level.
    """

    ENQUEUED = "enqueued"
    EXECUTING = "executing"
    COMPLETE = "complete"
    ERROR = "error"
    RETRY = "retry"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    LEASE_EXPIRED = "lease_expired"
    """The worker holding the task stopped heartbeating (killed, frozen, network cut)."""
    RELEASED = "released"
    """A worker shutting down gave the task back unfinished, without counting an attempt."""
    REQUEUED = "requeued"
    """A failed (dead) task was put back in its queue by hand, with a fresh retry budget."""
    READY = "ready"
    """A waiting task's parents all succeeded: it was released to its queue."""
    CALLBACK_ERROR = "callback_error"
    """A lifecycle callback raised or timed out (the detail names the hook and the callback);
    the task's outcome is unchanged."""
    WORKER_STARTED = "worker_started"
    """A worker started (no task: ``task_id`` is ``None``)."""
    WORKER_STOPPED = "worker_stopped"
    """A worker stopped (no task)."""
    CIRCUIT_OPENED = "circuit_opened"
    """A worker's circuit breaker opened: the store is unreachable (no task)."""
    CIRCUIT_CLOSED = "circuit_closed"
    """A worker's circuit breaker closed again: the store answers (no task)."""


class EventLevel(enum.StrEnum):
    """How important an event is; ``DEBUG < INFO < WARNING < ERROR``, and ``DISABLED`` records
    nothing. Compare levels with :attr:`rank`."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    DISABLED = "DISABLED"

    @property
    def rank(self) -> int:
        """10, 20, 30, 40 (like :mod:`logging`), and 100 for ``DISABLED``."""
        return _LEVEL_RANKS[self]

    @classmethod
    def parse(cls, value: str | EventLevel) -> EventLevel:
        """The level named ``value`` (case-insensitive).

        Raises:
            ValueError: naming the accepted levels when ``value`` is not one.
        """
        try:
            return cls(value.upper() if isinstance(value, str) else value)
        except (ValueError, AttributeError):
            names = ", ".join(level.value for level in cls)
            raise ValueError(f"unknown event level {value!r}; use one of {names}") from None


_LEVEL_RANKS = {
    EventLevel.DEBUG: 10,
    EventLevel.INFO: 20,
    EventLevel.WARNING: 30,
    EventLevel.ERROR: 40,
    EventLevel.DISABLED: 100,
}

EVENT_LEVELS: dict[EventType, EventLevel] = {
    EventType.ENQUEUED: EventLevel.DEBUG,
    EventType.EXECUTING: EventLevel.DEBUG,
    EventType.READY: EventLevel.DEBUG,
    EventType.COMPLETE: EventLevel.INFO,
    EventType.REQUEUED: EventLevel.INFO,
    EventType.WORKER_STARTED: EventLevel.INFO,
    EventType.WORKER_STOPPED: EventLevel.INFO,
    EventType.CIRCUIT_CLOSED: EventLevel.INFO,
    EventType.RETRY: EventLevel.WARNING,
    EventType.TIMEOUT: EventLevel.WARNING,
    EventType.LEASE_EXPIRED: EventLevel.WARNING,
    EventType.RELEASED: EventLevel.WARNING,
    EventType.CALLBACK_ERROR: EventLevel.WARNING,
    EventType.ERROR: EventLevel.ERROR,
    EventType.CANCELLED: EventLevel.ERROR,
    EventType.CIRCUIT_OPENED: EventLevel.ERROR,
}
"""The level of each event type (the table in ``docs/events.md``)."""


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An exception stored as data.

    Attributes:
        type: import path of the exception class, e.g. ``"builtins.ValueError"``.
        message: ``str(exception)``.
        traceback: formatted traceback text (may be empty).
    """

    type: str
    message: str
    traceback: str = ""


class Task(msgspec.Struct, kw_only=True):
    """One unit of work, as stored by a backend.

    Attributes:
        id: time-ordered id (UUIDv7 text, sorts by creation time).
        func: import path ``"package.module:qualname"`` of the function to run.
        func_bytes: signed dill bytes of the function when it cannot be imported by path
            (lambdas, closures, ``__main__`` functions), else ``None``.
        payload: the encoded ``(args, kwargs)`` pair (see :mod:`omniq.serialization`).
        queue: queue name; workers claim from the queues they serve.
        priority: higher runs first; FIFO by ``run_at`` then ``id`` within one priority.
        executor: name of the executor that must run it (``"async"``, ``"thread"``, …), or
            ``None`` for the worker's default.
        state: see :class:`TaskState`.
        run_at: when the task becomes due (seconds since the epoch).
        created_at: when it was enqueued (seconds since the epoch).
        attempt: how many times it has been claimed; also the fencing token of the current lease.
        max_retries: how many times a failure is retried; the task runs at most ``max_retries + 1`` times.
        retry_delay: base seconds to wait before a retry (stamped at enqueue from
            ``OMNIQ_RETRY_DELAY`` when not given; ``None`` only in records written by hand, for
            which the worker's setting applies).
        retry_backoff: multiplier of the delay from one retry to the next
            (``OMNIQ_RETRY_BACKOFF``); ``None``: the worker's setting.
        retry_max_delay: cap of one retry delay in seconds (``OMNIQ_RETRY_MAX_DELAY``);
            ``None``: the worker's setting.
        retry_jitter: "full jitter" (a random delay between 0 and the backed-off one)
            (``OMNIQ_RETRY_JITTER``); ``None``: the worker's setting.
        retry_on: type paths of the exceptions that are retried (subclasses included);
            ``None``: every exception.
        give_up_on: type paths of exceptions that are never retried (subclasses included).
        timeout: seconds one run may take, or ``None`` for no limit.
        result_ttl: seconds to keep the result; ``None`` forever, ``0`` not at all.
        idempotency_key: while a task with this key exists, enqueueing another returns it instead.
        worker_id: the worker holding (or that last held) the task.
        lease_expires_at: when the current lease ends unless extended.
        started_at: when the latest attempt started.
        finished_at: when the task reached a terminal state.
        error: the latest error (the terminal one for failed tasks).
        cancel_requested: a cancellation was asked for while the task was running.
        headers: free text metadata carried with the task.
        released: runs given back unfinished by a graceful worker shutdown. They still advance
            ``attempt`` (the fencing token never repeats) but do not count against
            ``max_retries``: runs used = ``attempt - released``.
        depends_on: ids of the parent tasks; the task stays ``waiting`` until every one of them
            has succeeded, and is cancelled when one fails or is cancelled.
        pass_results: ids (a subset of ``depends_on``, in order) whose return values the worker
            passes as the first positional argument: a list of them, or with ``pass_single``
            the one value itself (a chain's link). ``None``: nothing is passed.
        pass_single: pass the one value of ``pass_results`` unwrapped instead of a list.
    """

    id: str
    func: str
    payload: bytes
    run_at: float
    created_at: float
    func_bytes: bytes | None = None
    queue: str = "default"
    priority: int = 0
    executor: str | None = None
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    max_retries: int = 0
    retry_delay: float | None = None
    timeout: float | None = None
    result_ttl: float | None = None
    idempotency_key: str | None = None
    worker_id: str | None = None
    lease_expires_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: ErrorInfo | None = None
    cancel_requested: bool = False
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    released: int = 0
    retry_backoff: float | None = None
    retry_max_delay: float | None = None
    retry_jitter: bool | None = None
    retry_on: tuple[str, ...] | None = None
    give_up_on: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    pass_results: tuple[str, ...] | None = None
    pass_single: bool = False

    @property
    def runs_used(self) -> int:
        """Runs that count against ``max_retries`` (claims minus graceful releases)."""
        return self.attempt - self.released


class StoredResult(msgspec.Struct, frozen=True, kw_only=True):
    """A successful task's encoded return value as the backend keeps it.

    Attributes:
        task_id: the task it belongs to.
        data: the encoded value (see :mod:`omniq.serialization`).
        stored_at: when it was written (seconds since the epoch).
        expires_at: when it stops being readable, or ``None`` to keep forever.
    """

    task_id: str
    data: bytes
    stored_at: float
    expires_at: float | None = None


class ValueState(enum.StrEnum):
    """Whether a task's return value can be read (:attr:`TaskResult.value_state`)."""

    UNFINISHED = "unfinished"
    """The task has not finished yet: no value, no error."""
    AVAILABLE = "available"
    """It succeeded and :attr:`TaskResult.value` holds its return value."""
    NOT_STORED = "not_stored"
    """It succeeded with ``result_ttl=0``: the value was never stored."""
    EXPIRED = "expired"
    """It succeeded, but its result outlived ``result_ttl`` (and may have been purged)."""
    NO_VALUE = "no_value"
    """It failed or was cancelled: see :attr:`TaskResult.error`."""
    UNREADABLE = "unreadable"
    """It succeeded, but its stored value cannot be decoded here (a damaged offloaded object, a
    dill value without the signing key): :attr:`TaskResult.error` says why."""


class TaskResult(msgspec.Struct, kw_only=True):
    """What a client sees of a task: its state, its value or error, and its timings.

    Returned by ``get_task_result`` (now, without waiting) and yielded by ``as_completed``
    (as each task finishes). Reading a value that is not there is explicit: check
    :attr:`value_state`, or call :meth:`value_or_raise`.

    Attributes:
        task_id: the task's id.
        state: its state when read.
        value: the decoded return value when ``value_state`` is ``available``, else ``None``.
        value_state: whether the value can be read (see :class:`ValueState`).
        error: the terminal error of a ``failed`` or ``cancelled`` task; for an unfinished one,
            the failure that caused the pending retry; ``None`` after a success, unless its
            value is ``unreadable`` or its offloaded object is gone (then why).
        attempts: how many times it was claimed (retries and lost workers included).
        worker_id: the worker that ran (or runs) the latest attempt.
        enqueued_at, started_at, finished_at: seconds since the epoch; ``started_at`` is the
            start of the latest attempt.
        result_expires_at: when the stored value stops being readable (seconds since the
            epoch), ``None`` for never or when there is no stored value.
    """

    task_id: str
    state: TaskState
    value: Any = None
    error: ErrorInfo | None = None
    attempts: int = 0
    worker_id: str | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    value_state: ValueState = ValueState.UNFINISHED
    result_expires_at: float | None = None

    @property
    def ok(self) -> bool:
        """True when the task succeeded (its value may still be unreadable: ``value_state``)."""
        return self.state is TaskState.SUCCESS

    @property
    def finished(self) -> bool:
        """True once the task is ``success``, ``failed`` or ``cancelled``."""
        return self.state.is_terminal

    @property
    def duration(self) -> float | None:
        """Seconds the latest attempt ran (``finished_at - started_at``); ``None`` if unknown."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @property
    def queued_for(self) -> float | None:
        """Seconds from enqueue to the start of the latest attempt (earlier attempts and retry
        delays included); ``None`` before it started."""
        if self.enqueued_at is None or self.started_at is None:
            return None
        return max(0.0, self.started_at - self.enqueued_at)

    def value_or_raise(self) -> Any:
        """The return value, or the error that says why there is none.

        Raises:
            omniq.errors.TaskFailedError: the task failed (remote type, message, traceback).
            omniq.errors.TaskCancelledError: it was cancelled.
            omniq.errors.ResultNotStoredError: it succeeded with ``result_ttl=0``.
            omniq.errors.ResultExpiredError: its result expired.
            omniq.errors.DeserializationError: its value cannot be decoded here.
            omniq.errors.ResultTimeoutError: it has not finished.
        """
        from omniq import errors  # errors imports this module

        if self.value_state is ValueState.AVAILABLE:
            return self.value
        error = self.error or ErrorInfo(type="", message="")
        if self.state is TaskState.FAILED:
            raise errors.TaskFailedError(self.task_id, error.type, error.message, error.traceback)
        if self.state is TaskState.CANCELLED:
            raise errors.TaskCancelledError(
                self.task_id, error.type, error.message, error.traceback
            )
        if self.value_state is ValueState.NOT_STORED:
            raise errors.ResultNotStoredError(
                f"task {self.task_id} was enqueued with result_ttl=0: no result was stored"
            )
        if self.value_state is ValueState.EXPIRED:
            gone = self.error is not None and self.error.type.endswith(".ResultExpiredError")
            raise errors.ResultExpiredError(
                error.message if gone else f"the result of task {self.task_id} expired"
            )
        if self.value_state is ValueState.UNREADABLE:
            raise errors.DeserializationError(error.message)
        raise errors.ResultTimeoutError(
            f"task {self.task_id} is still {self.state.value}", task_ids=(self.task_id,)
        )


class ScheduleKind(enum.StrEnum):
    CRON = "cron"
    INTERVAL = "interval"
    ONCE = "once"


class MisfirePolicy(enum.StrEnum):
    """What a schedule does with ticks that passed while no scheduler ran (see ``docs/schedules.md``)."""

    RUN_ONCE = "run_once"
    """Run one task, late, for the latest missed tick; drop the older ones."""
    SKIP = "skip"
    """Run nothing for missed ticks, unless the latest one is within the grace period of now."""
    RUN_ALL = "run_all"
    """Run one task per missed tick, oldest first, at most ``misfire_limit`` of them."""


class Schedule(msgspec.Struct, kw_only=True):
    """A recurring or one-shot rule that produces tasks (driven by the scheduler loop).

    Attributes:
        id: stable name of the schedule.
        func: import path of the function each tick runs.
        payload: encoded ``(args, kwargs)`` for every produced task.
        kind: ``cron``, ``interval`` or ``once``.
        cron: a 5- or 6-field cron expression (``kind == "cron"``).
        interval: seconds between runs (``kind == "interval"``); real elapsed seconds, on the
            grid ``start_at + k * interval`` (the epoch when ``start_at`` is ``None``).
        at: when a one-shot schedule fires (``kind == "once"``), seconds since the epoch.
        timezone: IANA zone name in which ``cron`` is read, e.g. ``"Europe/Paris"``.
        start_at, end_at: inclusive bounds in seconds since the epoch, or ``None``.
        next_run_at: the next due tick (seconds since the epoch); ``None`` when exhausted.
        last_run_at: the latest tick that produced a task.
        queue, executor, priority: copied onto every produced task.
        jitter: up to this many seconds of random delay added to each produced task.
        paused: a paused schedule produces nothing until resumed.
        misfire: what to do with ticks missed while no scheduler ran (see :class:`MisfirePolicy`).
        misfire_limit: the most missed ticks ``run_all`` runs at once (a count, at least 1).
    """

    id: str
    func: str
    payload: bytes
    kind: ScheduleKind
    cron: str | None = None
    interval: float | None = None
    at: float | None = None
    timezone: str = "UTC"
    start_at: float | None = None
    end_at: float | None = None
    next_run_at: float | None = None
    last_run_at: float | None = None
    queue: str = "default"
    executor: str | None = None
    priority: int = 0
    jitter: float = 0.0
    paused: bool = False
    misfire: MisfirePolicy = MisfirePolicy.RUN_ONCE
    misfire_limit: int = 100


class TaskEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that happened to a task, or to a worker.

    Attributes:
        id: time-ordered event id (UUIDv7 text).
        task_id: the task concerned; ``None`` for worker events (``worker_started``,
            ``circuit_opened``, …).
        type: see :class:`EventType`.
        at: when it happened (seconds since the epoch).
        queue: the task's queue (a worker event: the worker's first queue).
        worker_id: the worker involved, if any.
        attempt: the task's attempt number at the time.
        detail: short free text (error summary, reason), at most 500 characters.
        duration: seconds the run took, from its claim to its end (``complete``, ``error``,
            ``retry``, ``cancelled`` and ``timeout`` events of a run), else ``None``.
        error: the error's type and message (no traceback, to keep events small), if any.
    """

    id: str
    task_id: str | None = None
    type: EventType
    at: float
    queue: str = "default"
    worker_id: str | None = None
    attempt: int = 0
    detail: str = ""
    duration: float | None = None
    error: ErrorInfo | None = None

    @property
    def level(self) -> EventLevel:
        """The level of this event's type (see :data:`EVENT_LEVELS`)."""
        return EVENT_LEVELS.get(self.type, EventLevel.INFO)


class ExecutorStats(msgspec.Struct, kw_only=True):
    """What one executor of a worker has done since the worker started.

    Attributes:
        name: the executor's name (``async``, ``thread``, ``process``, ``gevent``, …).
        concurrency: its slots (tasks it can run at once).
        busy: slots in use now (a timed-out thread still holds its slot until it returns).
        started: calls handed to it.
        succeeded: calls that returned.
        failed: calls that raised, timed out or lost their process.
        cancelled: calls stopped by a cancel request.
        run_seconds: total wall time of finished calls, in seconds.
    """

    name: str
    concurrency: int
    busy: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    run_seconds: float = 0.0

    @property
    def mean_run_seconds(self) -> float | None:
        """Mean wall time of a finished call in seconds, ``None`` before the first one."""
        done = self.succeeded + self.failed + self.cancelled
        return self.run_seconds / done if done else None


class WorkerState(enum.StrEnum):
    """What a registered worker is doing."""

    RUNNING = "running"
    """Claiming and running tasks."""
    STOPPING = "stopping"
    """Shutting down: claims nothing more, lets its running tasks finish (or releases them)."""


WORKER_COUNTERS: tuple[str, ...] = (
    "claimed",
    "succeeded",
    "failed",
    "retried",
    "cancelled",
    "lost",
)
"""The keys of :attr:`WorkerInfo.counters`."""


class WorkerInfo(msgspec.Struct, kw_only=True):
    """A worker's health record: who it is, what it hosts and what it is doing.

    Each worker writes its record when it starts and again at every heartbeat
    (``OMNIQ_WORKER_HEARTBEAT`` seconds), and removes it on a clean stop. A worker not heard from
    until ``expires_at`` (three heartbeats) is considered dead: backends no longer list it and
    ``purge`` deletes its record. All times are seconds since the epoch (UTC), read from the
    backend's clock.

    Attributes:
        id: the worker id (``host:pid:random`` by default); the record's key.
        host: the host name the worker runs on.
        pid: its operating-system process id.
        queues: the queues it serves.
        executors: one entry per executor it hosts: slots, busy slots and counters.
        capacity: the most tasks it runs at once (its executors' slots, within
            ``OMNIQ_MAX_WORKERS``).
        running: ids of the tasks it is running now, sorted.
        counters: tasks ``claimed``, ``succeeded``, ``failed``, ``retried``, ``cancelled`` and
            ``lost`` (outcomes discarded because a newer attempt owned the task) since it started.
        started_at: when the worker started.
        heartbeat_at: when this record was written.
        expires_at: when the worker counts as dead unless a newer heartbeat arrives
            (``heartbeat_at`` + 3 * the heartbeat interval).
        state: ``running`` or ``stopping``.
        version: the omniq-core version the worker runs.
        breaker: its circuit breaker around the store: ``closed`` (normal), ``open`` (the store
            is failing; nothing is claimed) or ``half_open`` (probing the store).
        breaker_failures: consecutive failed calls to the store as of this record.
        breaker_opened: how many times the breaker opened since the worker started.
    """

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    executors: tuple[ExecutorStats, ...]
    capacity: int
    running: tuple[str, ...]
    counters: dict[str, int]
    started_at: float
    heartbeat_at: float
    expires_at: float
    state: WorkerState = WorkerState.RUNNING
    version: str = ""
    breaker: str = "closed"
    breaker_failures: int = 0
    breaker_opened: int = 0

    @property
    def busy(self) -> int:
        """Slots in use now, over all executors."""
        return sum(e.busy for e in self.executors)

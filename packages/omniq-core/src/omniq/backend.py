"""The storage protocol every backend implements ("dumb storage, smart engine").

A backend stores :class:`~omniq.models.Task` records whose payloads are opaque bytes, plus results
and events, and offers a small set of atomic primitives. Retries, backoff, serialization and
routing decisions live in the engine. Signatures are batch-first (a list in, a list out) so a
backend can serve each call in one round trip.

Every method is a coroutine. Times are seconds since the epoch read from the backend's
:class:`~omniq.clock.Clock`; durations are seconds. The docstrings state each method's atomicity
and idempotency; the conformance suite (``omniq.testing``) checks exactly those sentences.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import ClassVar, Generic, NamedTuple, Self, TypeVar

import msgspec

from omniq.clock import Clock, SystemClock
from omniq.errors import LeaseLostError
from omniq.models import (
    ErrorInfo,
    EventType,
    Schedule,
    StoredResult,
    Task,
    TaskEvent,
    TaskState,
    WorkerInfo,
)

__all__ = [
    "event_filter",
    "OUTCOME_STATES",
    "Backend",
    "Capabilities",
    "Outcome",
    "TaskQuery",
    "ClaimGroup",
    "check_claim_args",
    "claim_groups",
    "decode_schedule_record",
    "decode_worker_record",
    "encode_schedule_record",
    "encode_worker_record",
    "check_outcomes",
    "settle_decision",
]


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """What a backend guarantees beyond the required primitives.

    Attributes:
        cross_process: several OS processes (and hosts, for network stores) may share the store.
        durable: records survive a restart of the process (and of the server).
        priority: ``claim`` honours ``Task.priority`` (higher first).
        notify: the backend can wake waiting workers and result readers; without it the engine polls.
        transactional_enqueue: enqueue can join a caller's own database transaction.
        network: the store is reached over a network; dill payloads then require ``OMNIQ_SECRET_KEY``.
        atomic_batches: ``enqueue`` writes a whole batch or nothing (else each task is atomic).
        max_value_bytes: the largest stored value (a result's bytes) the store accepts, in
            bytes; ``None``: no limit below ``OMNIQ_MAX_PAYLOAD_BYTES``. Larger results are
            offloaded by the engine to ``OMNIQ_RESULT_OFFLOAD_URL`` (claim-check) and the backend
            stores only a small reference; without that setting such a task fails.
    """

    cross_process: bool = False
    durable: bool = False
    priority: bool = True
    notify: bool = False
    transactional_enqueue: bool = False
    network: bool = False
    atomic_batches: bool = False
    max_value_bytes: int | None = None


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one attempt of a task ended, as handed to :meth:`Backend.finish`.

    Attributes:
        task_id: the task.
        attempt: the fencing token from the claim (``Task.attempt`` when claimed).
        state: ``success``, ``failed`` or ``cancelled`` (terminal) or ``scheduled`` (retry later).
        finished_at: when the attempt ended.
        result: the encoded return value to store (success only; ``None`` stores nothing).
        result_expires_at: when ``result`` stops being readable, ``None`` for never.
        error: the error to record (failed, cancelled, or the failure that causes a retry).
        retry_at: when a ``scheduled`` (retry) outcome becomes due again.
    """

    task_id: str
    attempt: int
    state: TaskState
    finished_at: float
    result: bytes | None = None
    result_expires_at: float | None = None
    error: ErrorInfo | None = None
    retry_at: float | None = None


class TaskQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A filter for :meth:`Backend.list_tasks` and :meth:`Backend.count_tasks`.

    Every set field must match (``None`` matches anything). Results are ordered by id (creation
    time), newest first.

    Attributes:
        states: only tasks in one of these states.
        queues: only tasks in one of these queues.
        worker_id: only tasks last held by this worker.
        limit: at most this many tasks (``list_tasks`` only).
        before_id: only tasks with an id strictly lower (older) than this; for paging.
    """

    states: tuple[TaskState, ...] | None = None
    queues: tuple[str, ...] | None = None
    worker_id: str | None = None
    limit: int = 100
    before_id: str | None = None


OUTCOME_STATES: frozenset[TaskState] = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.CANCELLED, TaskState.SCHEDULED}
)
"""The states an :class:`Outcome` may carry."""


def check_claim_args(queues: Sequence[str], lease: float) -> list[str]:
    """Validate the arguments of :meth:`Backend.claim`; return the queue names without duplicates.

    For backend authors: call it first, so every backend refuses the same bad input the same way.

    Raises:
        TypeError: ``queues`` is a single string instead of a sequence of names.
        ValueError: ``lease`` is not > 0 seconds.
    """
    if isinstance(queues, str):
        raise TypeError("claim(queues=...) takes a sequence of queue names, not a string")
    if lease <= 0:
        raise ValueError(f"claim: lease must be > 0 seconds, got {lease}")
    return list(dict.fromkeys(queues))


class ClaimGroup(NamedTuple):
    """One part of a claim filtered by executor (see :func:`claim_groups`).

    Attributes:
        executors: take tasks naming one of these executors; ``None``: any executor.
        unrouted: also take tasks that name no executor.
        limit: at most this many tasks from this group.
    """

    executors: list[str] | None
    unrouted: bool
    limit: int


def claim_groups(
    limit: int, executors: Mapping[str, int] | None, default_executor: str | None
) -> list[ClaimGroup]:
    """Split a claim by executor, for backends that claim one group after the other.

    Args:
        limit: the claim's overall limit.
        executors: free slots by executor name, or ``None`` for no executor filter.
        default_executor: the executor that runs tasks naming none; those tasks are taken
            within its group only (never when it is not a key of ``executors``).

    Returns:
        The groups with room, each capped at ``min(slots, limit)``. A backend takes them in
        order and stops once ``limit`` tasks are taken overall.

    Raises:
        TypeError: ``executors`` is not a mapping of names to slot counts.
        ValueError: a slot count is negative.
    """
    if executors is None:
        return [ClaimGroup(None, True, limit)] if limit > 0 else []
    if not isinstance(executors, Mapping):
        raise TypeError(
            "claim(executors=...) takes a mapping of executor name to free slots, "
            f"not {type(executors).__name__}"
        )
    groups = []
    for name, slots in executors.items():
        if not isinstance(name, str) or isinstance(slots, bool) or not isinstance(slots, int):
            raise TypeError(f"claim(executors=...): {name!r}: {slots!r} is not name: int")
        if slots < 0:
            raise ValueError(f"claim(executors=...): {name!r} has {slots} slots; expected >= 0")
        if min(slots, limit) > 0:
            groups.append(ClaimGroup([name], name == default_executor, min(slots, limit)))
    return groups


def check_outcomes(outcomes: Sequence[Outcome]) -> None:
    """Refuse, before anything is written, outcomes :meth:`Backend.finish` cannot apply.

    Raises:
        ValueError: an outcome state outside :data:`OUTCOME_STATES`, or a ``scheduled`` (retry)
            outcome without ``retry_at``.
    """
    for o in outcomes:
        if o.state not in OUTCOME_STATES:
            raise ValueError(f"finish: task {o.task_id}: outcome state {o.state!r} is not final")
        if o.state == TaskState.SCHEDULED and o.retry_at is None:
            raise ValueError(f"finish: task {o.task_id}: a scheduled outcome needs retry_at")


DEPENDENCY_FAILED_ERROR = "omniq.errors.DependencyFailedError"


def settle_decision(child: Task, parents: Sequence[Task | None], *, now: float) -> Task | None:
    """What :meth:`Backend.settle_waiting` turns one waiting task into, given its parents.

    For backend authors who settle in Python: read the child and its parents (``parents[i]`` is
    the stored task of ``child.depends_on[i]``, ``None`` when it does not exist), call this, and
    write the returned task only if the child is still ``waiting`` (one atomic step).

    Returns:
        ``None`` when nothing changes (the child is not waiting, or a parent is unfinished);
        else the child ``cancelled`` (``finished_at = now``, error
        ``omniq.errors.DependencyFailedError`` naming the first parent that failed, was
        cancelled or does not exist), or, when every parent succeeded, ``pending`` (``scheduled``
        if its own ``run_at`` is still ahead).
    """
    if child.state is not TaskState.WAITING:
        return None
    unfinished = False
    for parent_id, parent in zip(child.depends_on, parents, strict=True):
        if parent is None:
            reason = f"parent task {parent_id} does not exist (never enqueued, or purged)"
        elif parent.state is TaskState.FAILED:
            why = f": {parent.error.type}: {parent.error.message}" if parent.error else ""
            reason = f"parent task {parent_id} failed{why}"
        elif parent.state is TaskState.CANCELLED:
            reason = f"parent task {parent_id} was cancelled"
        else:
            unfinished = unfinished or parent.state is not TaskState.SUCCESS
            continue
        return msgspec.structs.replace(
            child,
            state=TaskState.CANCELLED,
            finished_at=now,
            error=ErrorInfo(type=DEPENDENCY_FAILED_ERROR, message=reason[:1000]),
        )
    if unfinished:
        return None
    due = TaskState.SCHEDULED if child.run_at > now else TaskState.PENDING
    return msgspec.structs.replace(child, state=due)


_R = TypeVar("_R")


class _RecordCodec(Generic[_R]):
    """msgpack bytes of one kind of record (worker, schedule), checked to decode back before
    anything is written, with errors that name the record."""

    def __init__(self, kind: str, type_: type[_R], key: Callable[[_R], str]) -> None:
        self.kind = kind
        self._key = key
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(type_)

    def encode(self, record: _R) -> bytes:
        try:
            data = self._encoder.encode(record)
            self._decoder.decode(data)
        except (msgspec.ValidationError, msgspec.EncodeError, OverflowError, TypeError) as exc:
            raise ValueError(
                f"{self.kind} {self._key(record)!r}: record cannot be stored: {exc}"
            ) from None
        return data

    def decode(self, data: bytes | memoryview) -> _R:
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ValueError(f"not a {self.kind} record: {exc}") from None


_WORKERS: _RecordCodec[WorkerInfo] = _RecordCodec("worker", WorkerInfo, lambda w: w.id)
_SCHEDULES: _RecordCodec[Schedule] = _RecordCodec("schedule", Schedule, lambda s: s.id)


def encode_worker_record(info: WorkerInfo) -> bytes:
    """A worker health record as msgpack bytes, for backends that store it as one value.

    The bytes are checked to decode back, so a record holding a value of the wrong type is
    refused before anything is written.

    Raises:
        ValueError: naming the worker, when ``info`` cannot be stored.
    """
    return _WORKERS.encode(info)


def decode_worker_record(data: bytes | memoryview) -> WorkerInfo:
    """The :class:`~omniq.models.WorkerInfo` of :func:`encode_worker_record`'s bytes.

    Raises:
        ValueError: the bytes are not a worker record (the message says why).
    """
    return _WORKERS.decode(data)


def encode_schedule_record(schedule: Schedule) -> bytes:
    """A schedule as msgpack bytes, for backends that store it as one value (checked to decode).

    Raises:
        ValueError: naming the schedule, when it cannot be stored.
    """
    return _SCHEDULES.encode(schedule)


def decode_schedule_record(data: bytes | memoryview) -> Schedule:
    """The :class:`~omniq.models.Schedule` of :func:`encode_schedule_record`'s bytes.

    Raises:
        ValueError: the bytes are not a schedule record (the message says why).
    """
    return _SCHEDULES.decode(data)


class Backend(abc.ABC):
    """Base class of every storage backend.

    Subclasses set :attr:`capabilities`, implement :meth:`from_url` and every abstract method,
    and are registered under their URI scheme in the ``omniq.backends`` entry-point group.

    Args:
        clock: where "now" comes from; defaults to the system clock.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> Self:
        """Build an unopened backend from its URI (``sqlite:///path.db``, ``redis://host``…).

        Raises:
            omniq.errors.ConfigError: if the URI cannot be used; the message says why.
        """

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create or migrate the schema; safe to call from several processes at once."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- tasks ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def enqueue(self, tasks: Sequence[Task]) -> list[Task]:
        """Store new tasks; return, in input order, the task now stored for each input.

        A task may arrive ``waiting`` with ``depends_on`` (parents that exist, or come earlier in
        the same batch): it is stored as given and never claimed until :meth:`settle_waiting`
        releases it; :meth:`dependents` finds it from any of its parents once this returns.

        Idempotent by id and by ``idempotency_key``: when a task with the same id, or with the same
        non-null key, already exists, nothing is written for that input and the existing task is
        returned in its place. Each task is written atomically; the whole batch too (all or
        nothing) when the backend declares ``atomic_batches``.
        """

    @abc.abstractmethod
    async def claim(
        self,
        *,
        queues: Sequence[str],
        worker_id: str,
        limit: int,
        lease: float,
        executors: Mapping[str, int] | None = None,
        default_executor: str | None = None,
    ) -> list[Task]:
        """Atomically take up to ``limit`` due tasks and lease them to ``worker_id``.

        Due means state ``pending`` or ``scheduled`` with ``run_at <= now``. Tasks are taken by
        ``priority`` (higher first, when the backend declares ``priority``), then ``run_at``, then
        id. Each claimed task moves to ``running`` with ``attempt`` increased by one (the fencing
        token), ``worker_id`` set, ``started_at = now`` and ``lease_expires_at = now + lease``.
        With ``executors`` given (free slots by executor name), only tasks whose ``executor`` is a
        key are taken, at most ``executors[name]`` of each; tasks that name no executor count as
        ``default_executor`` (and are not taken when it is ``None`` or not a key).
        :func:`claim_groups` splits such a claim for backends that take one group at a time.
        No two concurrent callers ever receive the same task for the same attempt.
        """

    async def finish_and_claim(
        self,
        outcomes: Sequence[Outcome],
        *,
        queues: Sequence[str],
        worker_id: str,
        limit: int,
        lease: float,
        executors: Mapping[str, int] | None = None,
        default_executor: str | None = None,
    ) -> tuple[list[str], list[Task]]:
        """:meth:`finish` the outcomes, then :meth:`claim` up to ``limit`` tasks.

        The worker's one round trip per cycle. Stale outcomes are not applied and, instead of
        raising :class:`~omniq.errors.LeaseLostError`, are returned so the claim still happens.
        This default makes two calls; a backend that can do both in one round trip (one
        transaction on SQL stores) overrides it with the same semantics.

        Returns:
            ``(stale_task_ids, claimed_tasks)``.
        """
        stale: list[str] = []
        if outcomes:
            try:
                await self.finish(outcomes)
            except LeaseLostError as exc:
                stale = list(exc.task_ids)
        tasks: list[Task] = []
        if limit > 0:
            try:
                tasks = await self.claim(
                    queues=queues,
                    worker_id=worker_id,
                    limit=limit,
                    lease=lease,
                    executors=executors,
                    default_executor=default_executor,
                )
            except Exception as exc:
                if not outcomes:
                    raise
                # The outcomes are stored: report that, and let the next round claim.
                logging.getLogger("omniq.backend").warning("claim failed: %s", exc)
        return stale, tasks

    @abc.abstractmethod
    async def extend_leases(self, leases: Sequence[tuple[str, int]], *, lease: float) -> list[str]:
        """Heartbeat: push ``lease_expires_at`` of each ``(task_id, attempt)`` to ``now + lease``.

        Returns the ids among them whose cancellation was requested (see :meth:`cancel`).

        Raises:
            omniq.errors.LeaseLostError: naming every pair whose task is no longer ``running`` at
                that attempt; the other leases are still extended, and the ids the call would
                have returned are on the error's ``cancel_requested``.
        """

    @abc.abstractmethod
    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record how attempts ended, each atomically with its result (fenced by ``attempt``).

        Terminal outcomes set ``state``, ``finished_at``, ``error`` and store ``result`` when given.
        A ``scheduled`` outcome (retry) sets ``state = scheduled``, ``run_at = retry_at`` and
        ``error`` — or ``cancelled`` when the task's cancellation was requested meanwhile (a
        cancelled task is never retried). Every outcome clears the lease.

        Raises:
            omniq.errors.LeaseLostError: naming every outcome whose task is no longer ``running`` at
                that attempt (a newer attempt owns it, or it was recovered); those are not applied,
                the others are.
        """

    @abc.abstractmethod
    async def release(self, leases: Sequence[tuple[str, int]]) -> list[str]:
        """Give running tasks back unfinished (graceful shutdown): each becomes ``pending`` now.

        ``attempt`` is kept (fencing tokens never repeat) and ``released`` grows by one, so a
        task cut short by a shutdown keeps all its retries. A task whose cancellation was
        requested becomes ``cancelled`` instead. Stale pairs are skipped. Returns the ids
        released (or so cancelled).
        """

    @abc.abstractmethod
    async def requeue_expired(self, *, limit: int = 1000) -> list[Task]:
        """Recover tasks whose lease expired (their worker died or froze).

        Each ``running`` task with ``lease_expires_at < now`` becomes ``pending`` again with
        ``error`` set to a worker-lost :class:`~omniq.models.ErrorInfo` (the lost run counts as an
        attempt), or ``failed`` when ``attempt - released > max_retries`` (no runs left), or
        ``cancelled`` when its cancellation had been requested. Atomic per task, safe to call
        from any number of workers at once. Returns the tasks as they now are.
        """

    @abc.abstractmethod
    async def cancel(self, task_ids: Sequence[str], *, error: ErrorInfo) -> list[Task]:
        """Cancel tasks. Returns, in input order, each task as it now is (absent ids skipped).

        A ``pending``, ``scheduled`` or ``waiting`` task becomes ``cancelled`` at once (it will
        never run). A ``running`` task gets ``cancel_requested = True``; its worker learns it at
        the next heartbeat. Terminal tasks are left unchanged. Atomic per task.
        """

    @abc.abstractmethod
    async def requeue(self, task_ids: Sequence[str], *, now: float | None = None) -> list[Task]:
        """Put failed (dead) tasks back in their queue; returns the requeued tasks, in input
        order (duplicates once).

        Only a ``failed`` task changes: it becomes ``pending`` with ``run_at = now`` (the
        backend's clock when ``None``), ``error``, ``finished_at`` and ``lease_expires_at``
        cleared, ``attempt`` kept (fencing tokens never repeat) and ``released = attempt``, so
        ``runs_used`` restarts at 0: a fresh retry budget. Other states and unknown ids are
        ignored (so a second call is a no-op: idempotent). Atomic per task.
        """

    @abc.abstractmethod
    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task | None]:
        """Read tasks by id; ``None`` in the place of each unknown id."""

    @abc.abstractmethod
    async def list_tasks(self, query: TaskQuery) -> list[Task]:
        """Tasks matching ``query``, newest first, at most ``query.limit``."""

    @abc.abstractmethod
    async def count_tasks(self, query: TaskQuery) -> dict[TaskState, int]:
        """How many tasks match ``query`` per state (states with no task are omitted)."""

    @abc.abstractmethod
    async def count_by_worker(self, query: TaskQuery) -> dict[str, int]:
        """How many tasks matching ``query`` each worker id last held."""

    # -- dependencies ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def dependents(self, task_ids: Sequence[str]) -> list[str]:
        """Ids of the ``waiting`` tasks that list one of ``task_ids`` in their ``depends_on``
        (each once, any order). Tasks in other states are not returned.

        A task enqueued ``waiting`` is found here as soon as :meth:`enqueue` has returned.
        """

    @abc.abstractmethod
    async def settle_waiting(self, task_ids: Sequence[str]) -> list[Task]:
        """Re-evaluate waiting tasks against their parents; return the ones that changed.

        For each id whose task is ``waiting``, as one atomic step (its parents' states read
        and its own transition conditional on it still being ``waiting``): it becomes what
        :func:`settle_decision` says, with the backend's ``now``: ``cancelled`` when a parent
        failed, was cancelled or does not exist; ``pending`` (or ``scheduled`` before its
        ``run_at``) when every parent succeeded; else it is left unchanged. Other states and
        unknown ids are ignored. Since a task leaves ``waiting`` only once, any number of
        concurrent callers release (or cancel) each task exactly once: it is returned by exactly
        one of them.
        """

    # -- results ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_results(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        """Stored results by task id; ``None`` where none is stored or it has expired (``now``)."""

    # -- events ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def append_events(self, events: Sequence[TaskEvent]) -> None:
        """Append events (one batch, one round trip). Duplicate event ids are ignored."""

    @abc.abstractmethod
    async def list_events(
        self,
        *,
        task_id: str | None = None,
        types: Collection[EventType] | None = None,
        since: float | None = None,
        after_id: str | None = None,
        limit: int = 100,
    ) -> list[TaskEvent]:
        """Events oldest first (by ``at``, then ``id``), at most ``limit`` (``<= 0``: none).

        Args:
            task_id: only this task's events.
            types: only events of these types (an empty collection matches nothing).
            since: only events with ``at >= since`` (seconds since the epoch).
            after_id: keyset paging, only with ``since``: skip the events at exactly ``since``
                whose id is ``<= after_id``; pass the last event's ``at`` and ``id`` to get the
                page after it.

        Raises:
            ValueError: ``after_id`` without ``since``.
        """

    # -- workers ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_worker(self, info: WorkerInfo) -> None:
        """Register or refresh a worker's health record (upsert by ``info.id``).

        The stored record replaces any earlier one of the same id as a whole, atomically: a
        reader sees the old record or the new one, never a mix. :meth:`list_workers` returns it
        exactly as given (every field equal) until ``info.expires_at``.
        """

    @abc.abstractmethod
    async def list_workers(self) -> list[WorkerInfo]:
        """The live workers: every record with ``expires_at > now`` (by the backend's clock),
        sorted by id (code-point order). Expired records are never returned, whether or not
        :meth:`purge` has deleted them yet; a record that cannot be decoded is skipped."""

    @abc.abstractmethod
    async def remove_worker(self, worker_id: str) -> None:
        """Delete a worker's record (a worker stopping cleanly). An unknown id is not an error."""

    # -- schedules -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_schedule(self, schedule: Schedule) -> None:
        """Create or replace the schedule ``schedule.id`` as a whole (atomically), every field
        as given, ``next_run_at`` and ``paused`` included.

        Keeping ``next_run_at`` when only cosmetic fields change is the engine's job (it reads
        the stored schedule first); the backend stores what it is given.

        Raises:
            ValueError: when ``schedule`` holds a value of the wrong type (nothing is written).
        """

    @abc.abstractmethod
    async def get_schedules(self, schedule_ids: Sequence[str]) -> list[Schedule | None]:
        """Read schedules by id, in input order; ``None`` in the place of each unknown id.

        ``next_run_at`` and ``last_run_at`` reflect every successful :meth:`fire_schedule`.
        """

    @abc.abstractmethod
    async def list_schedules(self) -> list[Schedule]:
        """Every stored schedule (paused ones included), sorted by id (code-point order).

        A record that cannot be decoded is skipped (and logged)."""

    @abc.abstractmethod
    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule; ``True`` if it existed. Tasks it already produced are kept."""

    @abc.abstractmethod
    async def fire_schedule(
        self, schedule_id: str, tick: float, next_tick: float | None, tasks: Sequence[Task]
    ) -> bool:
        """The exactly-once primitive of schedules: commit the due ``tick`` of a schedule.

        Atomically, if the stored schedule exists, is not paused and its ``next_run_at`` equals
        ``tick``: set ``next_run_at = next_tick`` (``None``: exhausted) and ``last_run_at =
        tick``, enqueue ``tasks`` (as :meth:`enqueue`: idempotent by id) and return ``True``.
        Otherwise write nothing and return ``False`` (another scheduler already committed this
        tick, or the schedule changed meanwhile). Any number of concurrent callers with the
        same ``tick`` get exactly one ``True``.

        The engine gives ``tasks`` ids derived from ``(schedule_id, tick)`` (see
        :func:`omniq._ids.tick_task_id`), so a backend that cannot commit the tick and enqueue in
        one transaction stays exactly-once: it commits the tick first, and a crash before the
        enqueue is repaired by the next caller re-enqueueing the same ids (see
        ``docs/schedules.md``).
        """

    # -- housekeeping ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def purge(
        self,
        *,
        finished_before: float,
        events_before: float,
        failed_before: float | None = None,
        max_events: int | None = None,
    ) -> tuple[int, int]:
        """Delete terminal tasks finished before ``finished_before`` (with their results), every
        expired result, events older than ``events_before``, and every worker record whose
        ``expires_at <= now`` (a dead worker's).

        ``max_events`` (``OMNIQ_EVENT_MAX_COUNT``) also deletes the oldest events (by ``at``,
        then ``id``) beyond that count; ``None`` means no count limit. Backends that store
        events in batches may keep a few more when batches overlap in time, never fewer.

        ``failed`` tasks (the dead-letter queue) use ``failed_before`` instead, when given
        (``OMNIQ_DEAD_RETENTION``); ``None`` means ``finished_before``.

        Returns ``(tasks_deleted, events_deleted)``.
        """


def event_filter(
    *,
    task_id: str | None = None,
    types: Collection[EventType] | None = None,
    since: float | None = None,
    after_id: str | None = None,
) -> Callable[[TaskEvent], bool]:
    """The predicate of :meth:`Backend.list_events`' filters, for backends that filter in Python.

    Raises:
        ValueError: ``after_id`` without ``since``.
    """
    if after_id is not None and since is None:
        raise ValueError("list_events: after_id needs since (the at of the event it names)")
    wanted = None if types is None else frozenset(types)

    def keep(e: TaskEvent) -> bool:
        if task_id is not None and e.task_id != task_id:
            return False
        if wanted is not None and e.type not in wanted:
            return False
        if since is not None:
            if e.at < since:
                return False
            if after_id is not None and e.at == since and e.id <= after_id:
                return False
        return True

    return keep

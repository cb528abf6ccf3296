"""The object-store backend: one object per record, claims by create-if-absent.

The only atomic primitive relied on is ``put(mode="create")`` (fails with ``AlreadyExistsError``
when the key exists). obstore's ``MemoryStore``, ``LocalStore`` and the S3, GCS and Azure stores
all provide it; conditional update (``mode={"e_tag": …}``) is never used, because ``LocalStore``
does not implement it. The object layout is in :mod:`omniq_obstore._keys`, how a task's state is
folded from its objects in :mod:`omniq_obstore._records`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self, cast

import msgspec
from obstore.store import LocalStore, MemoryStore

from omniq import errors
from omniq.backend import (
    Backend,
    Capabilities,
    Outcome,
    TaskQuery,
    check_claim_args,
    check_outcomes,
    event_filter,
)
from omniq.clock import Clock
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
from omniq_obstore import (
    _claiming,
    _dependencies,
    _ending,
    _housekeeping,
    _schedules,
    _view,
    _workers,
)
from omniq_obstore import _keys as K
from omniq_obstore._store import ImmutableCache, Store
from omniq_obstore._url import StoreURL, cloud_store, parse_url

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = ["CloudBackend", "LocalBackend", "MemoryBackend", "ObjectStoreBackend", "open_store"]

log = logging.getLogger("omniq.backend.obstore")

FORMAT = 1
"""Version of the object layout this code writes (stored in ``omniq-format``)."""

_MEMORY: dict[str, tuple[MemoryStore, ImmutableCache]] = {}
_MEMORY_LOCK = threading.Lock()


def memory_store(name: str) -> tuple[MemoryStore, ImmutableCache]:
    """The process-wide ``MemoryStore`` called ``name`` (created on first use) and its cache."""
    with _MEMORY_LOCK:
        if name not in _MEMORY:
            _MEMORY[name] = (MemoryStore(), ImmutableCache())
        return _MEMORY[name]


class ObjectStoreBackend(Backend):
    """OmniQ storage in any obstore store.

    Usually built by :meth:`from_url`, which returns the subclass matching the scheme
    (:class:`MemoryBackend`, :class:`LocalBackend`, :class:`CloudBackend`) with its capabilities.
    Built directly, it takes an obstore store (or a callable building one on :meth:`open`) and
    declares conservative capabilities (one process, not durable, network).

    Args:
        store: an obstore store, or a no-argument callable returning one (called by ``open``).
        clock: where "now" comes from; defaults to the system clock.
        label: how to name the store in messages (the URI without option values).
        cache: the cache of immutable objects (shared by backends on one memory store).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=False, durable=False, priority=True, network=True, atomic_batches=False
    )

    def __init__(
        self,
        store: ObjectStore | Callable[[], ObjectStore],
        *,
        clock: Clock | None = None,
        label: str = "obstore",
        cache: ImmutableCache | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self._source = store
        self._label = label
        self._cache = cache or ImmutableCache()
        self._succeeded = _dependencies.SucceededParents()
        self._store: Store | None = None
        self._held = _claiming.Held()
        self._lifecycle = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> Self:
        """Build an unopened backend from ``memory://[name]``, ``file:///abs/dir``,
        ``s3://bucket/prefix``, ``gs://bucket/prefix`` or ``az://container/prefix``.

        Cloud URIs take obstore options as query parameters: HTTP client options
        (``allow_http``, ``timeout``, …) and store configuration (``endpoint``, ``region``,
        ``skip_signature``, …); credentials come from the usual environment variables.

        Raises:
            omniq.errors.ConfigError: if the URI cannot be used (wrong scheme, no bucket, a
                relative path, an option obstore refuses); the message says why.
        """
        spec = parse_url(url)
        kind: type[ObjectStoreBackend] = {
            "memory": MemoryBackend,
            "file": LocalBackend,
        }.get(spec.scheme, CloudBackend)
        if not issubclass(kind, cls):
            raise errors.ConfigError(f"{cls.__name__} cannot serve {spec.scheme}:// URIs")
        return cast("Self", kind._from_spec(spec, clock))

    @classmethod
    def _from_spec(cls, spec: StoreURL, clock: Clock | None) -> ObjectStoreBackend:
        raise NotImplementedError

    @property
    def store(self) -> ObjectStore:
        """The obstore store (after :meth:`open`)."""
        return self._s().raw

    def __repr__(self) -> str:
        state = "open" if self._store is not None else "closed"
        return f"{type(self).__name__}({self._label!r}, {state})"

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Build the store, then check (once per open) that it honours create-if-absent.

        A no-op when already open; safe from several processes at once.

        Raises:
            omniq.errors.BackendError: if the store cannot be reached, was written by a newer
                omniq-obstore, or silently overwrites on create-if-absent (an S3-compatible
                server without ``If-None-Match`` support) — claims would not be exclusive.
        """
        async with self._lifecycle:
            if self._store is not None:
                return
            raw = self._build()
            root = raw.prefix if isinstance(raw, LocalStore) else None
            store = Store(raw, label=self._label, cache=self._cache, local_root=root)
            body = msgspec.msgpack.encode({"format": FORMAT})
            if not await store.create(K.FORMAT_KEY, body):
                self._check_format(await store.read(K.FORMAT_KEY))
            if await store.create(K.FORMAT_KEY, body):
                raise errors.BackendError(
                    f"{self._label}: the store overwrote an existing object on a create-if-absent "
                    "put; claims would not be exclusive. Use a store (or S3-compatible server) "
                    "that supports conditional writes (If-None-Match: *)"
                )
            self._store = store
            log.debug("opened %s", self._label)

    def _build(self) -> ObjectStore:
        if not callable(self._source):
            return self._source
        try:
            return self._source()
        except errors.OmniQError:
            raise
        except Exception as exc:
            raise errors.BackendError(f"{self._label}: cannot open the store: {exc}") from exc

    def _check_format(self, data: bytes | None) -> None:
        try:
            fmt = msgspec.msgpack.decode(data or b"", type=dict[str, int]).get("format", 0)
        except msgspec.DecodeError as exc:
            raise errors.BackendError(f"{self._label}: damaged {K.FORMAT_KEY} object") from exc
        if fmt > FORMAT:
            raise errors.BackendError(
                f"{self._label} holds object layout version {fmt}, newer than this "
                f"omniq-obstore understands ({FORMAT}); upgrade omniq-obstore"
            )

    async def close(self) -> None:
        """Forget the store (objects stay where they are). Idempotent."""
        async with self._lifecycle:
            self._store = None

    def _s(self) -> Store:
        if self._store is None:
            raise errors.BackendError(f"{self!r} is not open; call open() or use 'async with'")
        return self._store

    # -- tasks ---------------------------------------------------------------------------------
    async def enqueue(self, tasks: Sequence[Task]) -> list[Task]:
        """Store new tasks; return, in input order, the task now stored for each input.

        Idempotent by id and by ``idempotency_key`` (also within the batch). **Each task is
        written atomically; the batch is not**: a store failure in the middle of a batch leaves
        the tasks written so far (enqueueing the same batch again is safe and completes it).
        Every task is validated before anything is written. A ``waiting`` task's dependency
        edges (``deps/{parent}/{id}``) are written before its spec, and it gets no due entry.

        Raises:
            ValueError: for a task holding a value of the wrong type (nothing is written).
            omniq.errors.BackendError: when the store fails.
        """
        if not tasks:
            return []
        return await _claiming.enqueue(self._s(), tasks)

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
        """Lease up to ``limit`` due tasks to ``worker_id`` (see :meth:`Backend.claim`).

        Exclusive because each claim is the create-if-absent of the task's next claim marker.
        A claimed task whose spec cannot be decoded is marked ``failed`` with an
        ``omniq.errors.DeserializationError`` error and left out.
        """
        queues = check_claim_args(queues, lease)
        if limit <= 0 or not queues:
            return []
        return await _claiming.claim(
            self._s(),
            self._held,
            queues=queues,
            worker_id=worker_id,
            limit=limit,
            lease=lease,
            executors=executors,
            default_executor=default_executor,
            now=self.clock.now(),
        )

    async def extend_leases(self, leases: Sequence[tuple[str, int]], *, lease: float) -> list[str]:
        """Push each ``(task_id, attempt)`` lease to ``now + lease``; return cancel-requested ids.

        Raises:
            omniq.errors.LeaseLostError: naming every pair whose attempt has ended (or never
                existed), after extending the others.
        """
        if not leases:
            return []
        cancel, stale = await _ending.extend(
            self._s(), self._held, leases, self.clock.now() + lease
        )
        if stale:
            raise errors.LeaseLostError(stale, cancel_requested=cancel)
        return cancel

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record outcomes, each fenced by the create-if-absent of its attempt's end marker.

        A result is written just before its end marker, so a stored success always has it.

        Raises:
            omniq.errors.LeaseLostError: naming the stale outcomes (not applied; the rest are).
            ValueError: for an outcome state other than success, failed, cancelled or scheduled,
                or a scheduled outcome without ``retry_at`` (nothing is written).
        """
        check_outcomes(outcomes)
        if not outcomes:
            return
        stale = await _ending.finish(self._s(), self._held, outcomes, self.clock.now())
        if stale:
            raise errors.LeaseLostError(stale)

    async def release(self, leases: Sequence[tuple[str, int]]) -> list[str]:
        """Give running tasks back: ``pending`` with ``released`` one higher and ``attempt``
        kept, or ``cancelled`` when a cancel was requested; stale pairs are skipped."""
        if not leases:
            return []
        return await _ending.release(self._s(), self._held, leases, self.clock.now())

    async def requeue_expired(self, *, limit: int = 1000) -> list[Task]:
        """Recover up to ``limit`` running tasks whose lease expired (worker lost).

        Each becomes ``pending`` (error ``omniq.errors.WorkerLostError``), or ``failed`` when
        ``attempt - released > max_retries``, or ``cancelled`` when a cancel was requested.
        Safe from any number of callers: each recovery is the create-if-absent of an end marker.
        """
        if limit <= 0:
            return []
        return await _ending.requeue_expired(self._s(), self._held, self.clock.now(), limit)

    async def cancel(self, task_ids: Sequence[str], *, error: ErrorInfo) -> list[Task]:
        """Cancel queued tasks now (a tombstone takes their next claim slot; a waiting task gets
        its ``settled`` marker), flag running ones (a ``cancel`` marker their heartbeat sees);
        return each found task as it now is."""
        if not task_ids:
            return []
        got = await _ending.cancel(self._s(), list(task_ids), error, self.clock.now())
        return [t for t in got if t is not None]

    async def requeue(self, task_ids: Sequence[str], *, now: float | None = None) -> list[Task]:
        """Put failed tasks back (see :meth:`Backend.requeue`): a ``requeue-n`` snapshot after
        the failed attempt's ``end-n``, then a due entry for attempt ``n + 1``."""
        if not task_ids:
            return []
        when = self.clock.now() if now is None else now
        got = await _ending.requeue(self._s(), list(dict.fromkeys(task_ids)), when)
        return [t for t in got if t is not None]

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task | None]:
        """Read tasks by id; ``None`` for unknown ids; undecodable ones show as ``failed``."""
        store = self._s()
        views = await store.gather(_view.load(store, K.component(i)) for i in task_ids)
        return [None if v is None else v.task for v in views]

    async def list_tasks(self, query: TaskQuery) -> list[Task]:
        """Tasks matching ``query``, newest first (by id), at most ``query.limit``.

        Reads tasks in id order until ``limit`` match: cheap without filters, a read of every
        task with filters that match few.
        """
        if query.limit <= 0:
            return []
        return await _housekeeping.list_tasks(self._s(), query)

    async def count_tasks(self, query: TaskQuery) -> dict[TaskState, int]:
        """Number of tasks matching ``query`` per state (reads every task; ``limit`` ignored)."""
        counts: dict[TaskState, int] = {}
        for t in await _housekeeping.all_tasks(self._s(), query):
            counts[t.state] = counts.get(t.state, 0) + 1
        return counts

    async def count_by_worker(self, query: TaskQuery) -> dict[str, int]:
        """Number of tasks matching ``query`` per last worker (reads every task)."""
        counts: dict[str, int] = {}
        for t in await _housekeeping.all_tasks(self._s(), query):
            if t.worker_id is not None:
                counts[t.worker_id] = counts.get(t.worker_id, 0) + 1
        return counts

    # -- dependencies --------------------------------------------------------------------------
    async def dependents(self, task_ids: Sequence[str]) -> list[str]:
        """Ids of the ``waiting`` tasks listing one of ``task_ids`` in ``depends_on``.

        One listing of ``deps/{parent}/`` per id (the edges ``enqueue`` writes before a waiting
        task's spec), then a read of each child found.
        """
        if not task_ids:
            return []
        return await _dependencies.dependents(self._s(), task_ids)

    async def settle_waiting(self, task_ids: Sequence[str]) -> list[Task]:
        """Release or cancel waiting tasks whose parents decided it (see
        :meth:`Backend.settle_waiting`); return the ones this call changed.

        Each transition is the create-if-absent of ``tasks/{T}/settled``, which ``cancel`` races
        on too, so each task leaves ``waiting`` once and is returned by one caller only. A
        release then writes the task's due entry (``purge`` restores it after a crash).
        """
        if not task_ids:
            return []
        return await _dependencies.settle_waiting(
            self._s(), task_ids, self.clock.now(), self._succeeded
        )

    # -- results -------------------------------------------------------------------------------
    async def get_results(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        """Stored results by task id; ``None`` where none is stored or ``expires_at <= now``."""
        store, now = self._s(), self.clock.now()
        return await store.gather(_view.load_result(store, K.component(i), now) for i in task_ids)

    # -- events --------------------------------------------------------------------------------
    async def append_events(self, events: Sequence[TaskEvent]) -> None:
        """Append events as one batch object; duplicate event ids are dropped when read."""
        if events:
            await _housekeeping.append_events(self._s(), events)

    async def list_events(
        self,
        *,
        task_id: str | None = None,
        types: Collection[EventType] | None = None,
        since: float | None = None,
        after_id: str | None = None,
        limit: int = 100,
    ) -> list[TaskEvent]:
        """Events oldest first (by ``at``, then id), filtered as :meth:`Backend.list_events`
        says, at most ``limit``; batches older than ``since`` are skipped by their key.

        Raises:
            ValueError: ``after_id`` without ``since``.
        """
        keep = event_filter(task_id=task_id, types=types, since=since, after_id=after_id)
        if limit <= 0 or (types is not None and not types):
            return []
        return await _housekeeping.list_events(self._s(), keep=keep, since=since, limit=limit)

    # -- workers -------------------------------------------------------------------------------
    async def put_worker(self, info: WorkerInfo) -> None:
        """Create or replace the worker's record, the object ``workers/{escaped id}``.

        Raises:
            ValueError: when ``info`` holds a value of the wrong type (nothing is written).
        """
        await _workers.put_worker(self._s(), info)

    async def list_workers(self) -> list[WorkerInfo]:
        """Workers whose record has not expired (``expires_at > now``), sorted by id; reads
        every object under ``workers/``."""
        return await _workers.list_workers(self._s(), self.clock.now())

    async def remove_worker(self, worker_id: str) -> None:
        """Delete the worker's record; an unknown id is ignored."""
        await _workers.remove_worker(self._s(), worker_id)

    # -- schedules -----------------------------------------------------------------------------
    async def put_schedule(self, schedule: Schedule) -> None:
        """Create or replace the definition object ``schedules/{escaped id}``.

        Raises:
            ValueError: when ``schedule`` holds a value of the wrong type (nothing is written).
        """
        await _schedules.put_schedule(self._s(), schedule)

    async def get_schedules(self, schedule_ids: Sequence[str]) -> list[Schedule | None]:
        """Schedules by id, folded with their newest tick marker; ``None`` for unknown ids."""
        return await _schedules.get_schedules(self._s(), list(schedule_ids))

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule (reads every definition and lists its tick markers), sorted by id."""
        return await _schedules.list_schedules(self._s())

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete the definition and its tick markers; ``True`` if it existed."""
        return await _schedules.delete_schedule(self._s(), schedule_id)

    async def fire_schedule(
        self, schedule_id: str, tick: float, next_tick: float | None, tasks: Sequence[Task]
    ) -> bool:
        """Commit ``tick`` by the create-if-absent of ``ticks/{S}/{tick}``, then enqueue
        ``tasks`` (idempotent by their deterministic ids); see :mod:`omniq_obstore._schedules`."""
        return await _schedules.fire_schedule(self._s(), schedule_id, tick, next_tick, tasks)

    # -- housekeeping --------------------------------------------------------------------------
    async def purge(
        self,
        *,
        finished_before: float,
        events_before: float,
        failed_before: float | None = None,
        max_events: int | None = None,
    ) -> tuple[int, int]:
        """Delete terminal tasks finished before ``finished_before`` (``failed`` ones before
        ``failed_before``, default the same) (all their objects and
        idempotency key), every expired result, event batches whose newest event is older
        than ``events_before``, the oldest events beyond ``max_events`` (counted from the
        batch keys), and the records of dead workers (``expires_at <= now``). Also
        restores index entries a crashed writer left out.

        Returns ``(tasks_deleted, events_deleted)``.
        """
        await _workers.purge_workers(self._s(), self.clock.now())
        await _schedules.purge_ticks(self._s())
        return await _housekeeping.purge(
            self._s(),
            finished_before=finished_before,
            events_before=events_before,
            now=self.clock.now(),
            failed_before=failed_before,
            max_events=max_events,
        )


def open_store(url: str) -> ObjectStore:
    """The raw obstore store a URI names, for other uses than a backend (the event sink):
    ``memory://[name]`` is the process-wide store of that name, ``file:///dir`` a
    ``LocalStore`` (the directory is created), ``s3://``/``gs://``/``az://`` obstore's own.

    Raises:
        ConfigError: the URI cannot be used (the message says why).
    """
    spec = parse_url(url)
    if spec.scheme == "memory":
        return memory_store(spec.name)[0]
    if spec.scheme == "file":
        return LocalStore(Path(spec.path), mkdir=True, automatic_cleanup=True)
    return cloud_store(spec)


class MemoryBackend(ObjectStoreBackend):
    """``memory://[name]``: a ``MemoryStore`` shared by every backend on that name in this
    process (``memory://`` alone is the process-wide default). Gone when the process exits."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=False, durable=False, priority=True, network=False, atomic_batches=False
    )

    @classmethod
    def _from_spec(cls, spec: StoreURL, clock: Clock | None) -> ObjectStoreBackend:
        store, cache = memory_store(spec.name)
        return cls(store, clock=clock, label=spec.display, cache=cache)


class LocalBackend(ObjectStoreBackend):
    """``file:///absolute/dir``: a ``LocalStore`` rooted at the directory (created on open).
    Safe for several processes on one host."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=True, durable=True, priority=True, network=False, atomic_batches=False
    )

    @classmethod
    def _from_spec(cls, spec: StoreURL, clock: Clock | None) -> ObjectStoreBackend:
        path = Path(spec.path)

        def build() -> ObjectStore:
            return LocalStore(path, mkdir=True, automatic_cleanup=True)

        return cls(build, clock=clock, label=spec.display)


class CloudBackend(ObjectStoreBackend):
    """``s3://``, ``gs://``, ``az://``: obstore's own ``from_url`` with the URI's options."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=True, durable=True, priority=True, network=True, atomic_batches=False
    )

    @classmethod
    def _from_spec(cls, spec: StoreURL, clock: Clock | None) -> ObjectStoreBackend:
        store = cloud_store(spec)
        return cls(store, clock=clock, label=spec.display)

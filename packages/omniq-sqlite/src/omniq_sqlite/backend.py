"""The SQLite backend: one database file in WAL mode, shared by any number of local processes.

Design:

* Two aiosqlite connections per backend: a *writer* for every write transaction and a *reader*
  (``query_only``) for listings, so reads never queue behind writes. WAL lets readers and the one
  writer work at the same time, across processes too.
* Every operation is one synchronous function (:mod:`omniq_sqlite._ops`) run as a single call on
  the connection's aiosqlite thread. A multi-statement transaction (``BEGIN IMMEDIATE`` …
  ``COMMIT``) therefore runs start to finish without another coroutine's statement slipping in
  and without holding the SQLite write lock across an ``await``, and cancelling the awaiting
  coroutine cannot leave a transaction open. This replaces the usual ``asyncio.Lock``: the
  connection's thread already serialises the calls.
* ``claim`` is one ``UPDATE … WHERE rowid IN (SELECT … ORDER BY … LIMIT) RETURNING``, preceded by
  a lock-free probe so idle workers polling an empty queue never take the write lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import aiosqlite

from omniq import errors
from omniq.backend import (
    Backend,
    Capabilities,
    Outcome,
    TaskQuery,
    check_claim_args,
    check_outcomes,
    claim_groups,
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
from omniq_sqlite import _ops, _schema
from omniq_sqlite._url import (
    DEFAULT_BUSY_TIMEOUT_MS,
    check_busy_timeout,
    check_path,
    check_synchronous,
    parse_url,
)

__all__ = ["SQLiteBackend"]

log = logging.getLogger("omniq.backend.sqlite")

T = TypeVar("T")


class SQLiteBackend(Backend):
    """OmniQ storage in one SQLite file (``sqlite:///relative.db``, ``sqlite:////abs.db``).

    Safe for several processes on one machine (not for a network file system: SQLite's WAL mode
    needs shared memory). The file and its parent directories are created on :meth:`open`.

    Args:
        path: the database file; a relative path is resolved against the current directory now.
        clock: where "now" comes from; defaults to the system clock.
        busy_timeout_ms: how long to wait for another connection's write lock before failing
            with :class:`~omniq.errors.BackendError` (milliseconds).
        synchronous: ``PRAGMA synchronous``: ``NORMAL`` (default; in WAL mode a commit survives a
            process crash, the last commits may be lost on power failure) or ``FULL``/``EXTRA``
            (also survives power failure, slower), or ``OFF``.

    Raises:
        omniq.errors.ConfigError: for an in-memory or empty path or a bad option value.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        cross_process=True,
        durable=True,
        priority=True,
        notify=False,
        transactional_enqueue=False,
        network=False,
        atomic_batches=True,
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        synchronous: str = "NORMAL",
    ) -> None:
        super().__init__(clock=clock)
        self._path = Path(check_path(path)).absolute()
        self._busy_timeout_ms = check_busy_timeout(busy_timeout_ms)
        self._synchronous = check_synchronous(synchronous)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lifecycle = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> Self:
        """Build an unopened backend from ``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db``.

        Query options: ``busy_timeout`` (milliseconds, default 10000) and ``synchronous``
        (``NORMAL``, ``FULL``, ``EXTRA`` or ``OFF``), e.g. ``sqlite:///q.db?busy_timeout=5000``.

        Raises:
            omniq.errors.ConfigError: if the URI is not a usable SQLite file URI (wrong scheme, a
                host, no path, ``:memory:``, an unknown or invalid option); the message says which.
        """
        settings = parse_url(url)
        return cls(
            settings.path,
            clock=clock,
            busy_timeout_ms=settings.busy_timeout_ms,
            synchronous=settings.synchronous,
        )

    @property
    def path(self) -> Path:
        """The absolute path of the database file."""
        return self._path

    def __repr__(self) -> str:
        state = "open" if self._writer is not None else "closed"
        return f"SQLiteBackend({str(self._path)!r}, {state})"

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the file if needed, apply PRAGMAs and migrations; a no-op when already open.

        Safe when several processes open the same new file at once (see :mod:`._schema`).

        Raises:
            omniq.errors.BackendError: if the file cannot be opened or migrated.
        """
        async with self._lifecycle:
            if self._writer is not None:
                return
            writer = reader = None
            try:
                await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
                writer = await self._connect(read_only=False)
                applied = await self._call(
                    writer, _schema.migrate, path=str(self._path), now=self.clock.now()
                )
                reader = await self._connect(read_only=True)
            except BaseException as exc:
                for conn in (reader, writer):
                    if conn is not None:
                        await conn.close()
                if isinstance(exc, OSError | sqlite3.Error):
                    raise errors.BackendError(
                        f"cannot open SQLite file {self._path}: {exc}"
                    ) from exc
                raise
            self._writer, self._reader = writer, reader
            log.debug("opened %s (%d migration(s) applied)", self._path, applied)

    async def _connect(self, *, read_only: bool) -> aiosqlite.Connection:
        conn = aiosqlite.connect(self._path, isolation_level=None, cached_statements=256)
        # aiosqlite runs each connection on a threading.Thread that is not a daemon. A program
        # that never closes the backend (crash path, forgotten close) would then hang at exit,
        # because the interpreter joins every non-daemon thread. A daemon thread lets it exit;
        # the database stays consistent (WAL), a transaction cut short is simply rolled back.
        # Must be set before the connection is awaited, which starts the thread.
        conn._thread.daemon = True
        await conn
        try:
            await self._call(
                conn,
                _schema.configure,
                path=str(self._path),
                busy_timeout_ms=self._busy_timeout_ms,
                synchronous=self._synchronous,
                read_only=read_only,
            )
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        """Close both connections. Idempotent."""
        async with self._lifecycle:
            writer, reader = self._writer, self._reader
            self._writer = self._reader = None
            for conn in (reader, writer):
                if conn is not None:
                    await conn.close()

    async def _call(
        self, conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Run ``fn(sqlite3_connection, *args, **kwargs)`` as one call on ``conn``'s thread."""
        raw = conn._conn  # the sqlite3.Connection, only ever used on conn's own thread
        try:
            # aiosqlite has no public "run this callable on the thread"; _execute is it (private;
            # tested with aiosqlite 0.22, present in older releases too).
            result: T = await conn._execute(fn, raw, *args, **kwargs)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise errors.BackendError(f"SQLite error on {self._path}: {exc}") from exc
        return result

    def _conn(self, which: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if which is None:
            raise errors.BackendError(f"{self!r} is not open; call open() or use 'async with'")
        return which

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._call(self._conn(self._writer), fn, *args, **kwargs)

    async def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._call(self._conn(self._reader), fn, *args, **kwargs)

    # -- tasks ---------------------------------------------------------------------------------
    async def enqueue(self, tasks: Sequence[Task]) -> list[Task]:
        """Store new tasks atomically; return, in input order, the task stored for each input.

        An input whose id, or non-null ``idempotency_key``, already exists (in the store or
        earlier in the same batch) is not written; the existing task is returned in its place.
        """
        if not tasks:
            return []
        return await self._write(_ops.enqueue, tasks)

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
        """Atomically lease up to ``limit`` due tasks to ``worker_id`` (see :meth:`Backend.claim`).

        A claimed row that cannot be decoded is marked ``failed`` with a
        ``omniq.errors.DeserializationError`` error and left out; the others are returned.
        """
        params = self._claim_params(queues, worker_id, limit, lease, executors, default_executor)
        if params is None:
            return []
        return await self._write(_ops.claim, params)

    def _claim_params(
        self,
        queues: Sequence[str],
        worker_id: str,
        limit: int,
        lease: float,
        executors: Mapping[str, int] | None,
        default_executor: str | None,
    ) -> dict[str, object] | None:
        """The claim's query parameters, or ``None`` when there is nothing to claim."""
        queues = check_claim_args(queues, lease)
        groups = claim_groups(limit, executors, default_executor)
        if not queues or not groups:
            return None
        return _ops.claim_params(
            now=self.clock.now(),
            queues=queues,
            worker_id=worker_id,
            groups=groups,
            limit=limit,
            lease=lease,
        )

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
        """Store outcomes and claim up to ``limit`` tasks in one transaction (one thread hop).

        See :meth:`Backend.finish_and_claim`; stale outcomes are returned, not raised.
        """
        check_outcomes(outcomes)
        claim_with = self._claim_params(
            queues, worker_id, limit, lease, executors, default_executor
        )
        if not outcomes:
            return [], [] if claim_with is None else await self._write(_ops.claim, claim_with)
        return await self._write(_ops.finish_and_claim, outcomes, claim_with, now=self.clock.now())

    async def extend_leases(self, leases: Sequence[tuple[str, int]], *, lease: float) -> list[str]:
        """Push each ``(task_id, attempt)`` lease to ``now + lease``; return cancel-requested ids.

        Raises:
            omniq.errors.LeaseLostError: naming every stale pair, after extending the others.
        """
        if not leases:
            return []
        cancel, stale = await self._write(
            _ops.extend_leases, leases, expires_at=self.clock.now() + lease
        )
        if stale:
            raise errors.LeaseLostError(stale, cancel_requested=cancel)
        return cancel

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        """Record outcomes in one transaction, each fenced by its attempt.

        Raises:
            omniq.errors.LeaseLostError: naming the stale outcomes (not applied; the rest are).
            ValueError: for an outcome state other than success, failed, cancelled or scheduled,
                or a scheduled outcome without ``retry_at`` (nothing is written).
        """
        check_outcomes(outcomes)
        if not outcomes:
            return
        stale = await self._write(_ops.finish, outcomes, now=self.clock.now())
        if stale:
            raise errors.LeaseLostError(stale)

    async def release(self, leases: Sequence[tuple[str, int]]) -> list[str]:
        """Give running tasks back (see :meth:`Backend.release`): ``pending`` with ``released``
        one higher and ``attempt`` kept, or ``cancelled`` when a cancel was requested; stale pairs
        are skipped."""
        if not leases:
            return []
        return await self._write(_ops.release, leases, now=self.clock.now())

    async def requeue_expired(self, *, limit: int = 1000) -> list[Task]:
        """Recover up to ``limit`` running tasks whose lease expired (worker lost).

        Each becomes ``pending`` (error ``omniq.errors.WorkerLostError``), or ``failed`` when
        ``attempt - released > max_retries``, or ``cancelled`` when a cancel was requested. Returns
        the tasks as they now are.
        """
        if limit <= 0:
            return []
        return await self._write(_ops.requeue_expired, now=self.clock.now(), limit=limit)

    async def cancel(self, task_ids: Sequence[str], *, error: ErrorInfo) -> list[Task]:
        """Cancel queued tasks now, flag running ones; return each found task as it now is."""
        if not task_ids:
            return []
        return await self._write(_ops.cancel, list(task_ids), error=error, now=self.clock.now())

    async def requeue(self, task_ids: Sequence[str], *, now: float | None = None) -> list[Task]:
        """Put failed tasks back (see :meth:`Backend.requeue`) in one transaction."""
        if not task_ids:
            return []
        return await self._write(
            _ops.requeue, list(task_ids), now=self.clock.now() if now is None else now
        )

    async def get_tasks(self, task_ids: Sequence[str]) -> list[Task | None]:
        """Read tasks by id; ``None`` for unknown ids.

        A row that cannot be decoded is returned as ``failed`` with a DeserializationError error.
        """
        if not task_ids:
            return []
        return await self._read(_ops.get_tasks, list(task_ids))

    async def list_tasks(self, query: TaskQuery) -> list[Task]:
        """Tasks matching ``query``, newest first (by id), at most ``query.limit``."""
        if query.limit <= 0:
            return []
        return await self._read(_ops.list_tasks, query)

    async def count_tasks(self, query: TaskQuery) -> dict[TaskState, int]:
        """Number of tasks matching ``query`` per state (``limit`` is ignored)."""
        return await self._read(_ops.count_tasks, query)

    async def count_by_worker(self, query: TaskQuery) -> dict[str, int]:
        """Number of tasks matching ``query`` per last worker (tasks never claimed are left out)."""
        return await self._read(_ops.count_by_worker, query)

    # -- dependencies --------------------------------------------------------------------------
    async def dependents(self, task_ids: Sequence[str]) -> list[str]:
        """Waiting tasks with one of ``task_ids`` as a parent (one indexed read)."""
        if not task_ids:
            return []
        return await self._read(_ops.dependents, list(task_ids))

    async def settle_waiting(self, task_ids: Sequence[str]) -> list[Task]:
        """Release or cancel waiting tasks (see :meth:`Backend.settle_waiting`) in one
        ``BEGIN IMMEDIATE`` transaction: each task's parents are read and its row updated
        ``WHERE state = 'waiting'`` under the write lock."""
        if not task_ids:
            return []
        decidable = await self._read(_ops.settle_candidates, list(task_ids))
        if not decidable:
            return []
        return await self._write(_ops.settle_waiting, decidable, now=self.clock.now())

    # -- results -------------------------------------------------------------------------------
    async def get_results(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        """Stored results by task id; ``None`` where none is stored or ``expires_at <= now``."""
        if not task_ids:
            return []
        return await self._read(_ops.get_results, list(task_ids), now=self.clock.now())

    # -- events --------------------------------------------------------------------------------
    async def append_events(self, events: Sequence[TaskEvent]) -> None:
        """Append events in one transaction; duplicate event ids are ignored."""
        if events:
            await self._write(_ops.append_events, events)

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
        says, at most ``limit``; one indexed query (``(task_id, at, id)`` or ``(at, id)``).

        Raises:
            ValueError: ``after_id`` without ``since``.
        """
        if after_id is not None and since is None:
            raise ValueError("list_events: after_id needs since (the at of the event it names)")
        if limit <= 0 or (types is not None and not types):
            return []
        return await self._read(
            _ops.list_events,
            task_id=task_id,
            types=None if types is None else [str(t) for t in types],
            since=since,
            after_id=after_id,
            limit=limit,
        )

    # -- workers -------------------------------------------------------------------------------
    async def put_worker(self, info: WorkerInfo) -> None:
        """Upsert a worker's health record (one row of ``omniq_workers``, the record as msgpack).

        Raises:
            ValueError: when ``info`` holds a value of the wrong type (nothing is written).
        """
        await self._write(_ops.put_worker, _ops.encode_worker(info))

    async def list_workers(self) -> list[WorkerInfo]:
        """Workers whose record has not expired (``expires_at > now``), sorted by id."""
        return await self._read(_ops.list_workers, now=self.clock.now())

    async def remove_worker(self, worker_id: str) -> None:
        """Delete a worker's record; an unknown id is ignored."""
        await self._write(_ops.remove_worker, worker_id)

    # -- schedules -----------------------------------------------------------------------------
    async def put_schedule(self, schedule: Schedule) -> None:
        """Upsert a schedule (one row of ``omniq_schedules``, the record as msgpack).

        Raises:
            ValueError: when ``schedule`` holds a value of the wrong type (nothing is written).
        """
        await self._write(_ops.put_schedule, _ops.encode_schedule(schedule))

    async def get_schedules(self, schedule_ids: Sequence[str]) -> list[Schedule | None]:
        """Schedules by id; ``None`` for unknown (or undecodable) ids."""
        if not schedule_ids:
            return []
        return await self._read(_ops.get_schedules, list(schedule_ids))

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, sorted by id; undecodable records are skipped."""
        return await self._read(_ops.list_schedules)

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule's row; ``True`` if it existed."""
        return await self._write(_ops.delete_schedule, schedule_id)

    async def fire_schedule(
        self, schedule_id: str, tick: float, next_tick: float | None, tasks: Sequence[Task]
    ) -> bool:
        """Commit ``tick`` (see :meth:`Backend.fire_schedule`) in one ``BEGIN IMMEDIATE``
        transaction: the guarded ``UPDATE … WHERE next_run_at = :tick`` and the enqueue of
        ``tasks`` commit together or not at all."""
        return await self._write(_ops.fire_schedule, schedule_id, tick, next_tick, list(tasks))

    # -- housekeeping --------------------------------------------------------------------------
    async def purge(
        self,
        *,
        finished_before: float,
        events_before: float,
        failed_before: float | None = None,
        max_events: int | None = None,
    ) -> tuple[int, int]:
        """Delete old terminal tasks (with results), expired results, old events, the oldest
        events beyond ``max_events``, and the records of dead workers (``expires_at <= now``).
        Failed tasks use ``failed_before`` (default ``finished_before``).

        Works in batches of a few thousand rows, one short transaction each, so other processes
        are not locked out. Returns ``(tasks_deleted, events_deleted)``.
        """
        await self._write(_ops.purge_workers, now=self.clock.now())
        tasks_deleted = events_deleted = 0
        more = True
        while more:
            tasks, events, more = await self._write(
                _ops.purge_step,
                finished_before=finished_before,
                events_before=events_before,
                now=self.clock.now(),
                failed_before=failed_before,
            )
            tasks_deleted += tasks
            events_deleted += events
        if max_events is not None:
            cutoff = await self._read(_ops.event_count_cutoff, max_events=max_events)
            more = cutoff is not None
            while more and cutoff is not None:
                deleted, more = await self._write(
                    _ops.purge_events_before, at=cutoff[0], event_id=cutoff[1]
                )
                events_deleted += deleted
        return tasks_deleted, events_deleted

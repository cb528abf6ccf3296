"""The OmniQ side of the benchmark: SQLite (default settings), and the object-store backends of
omniq-obstore (``memory://`` and ``file://``) for the backends-side-by-side table."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (
    PYTHON,
    SIGTERM,
    Collector,
    Latency,
    Processing,
    paced,
    wait_done,
    wait_for_log,
    worker_env,
    worker_process,
)
from bench_tasks import astamp, stamp

from omniq import TaskQueue
from omniq.config import load_settings
from omniq.models import Task, TaskState

BACKENDS = ("sqlite", "memory", "file")
"""``sqlite``: a file per measurement; ``memory``: ``memory://NAME``, one process only (its worker
is embedded); ``file``: ``file:///dir``, a directory per measurement (a separate worker process)."""

_serial = itertools.count()


def _url(path: Path) -> str:
    return f"sqlite:///{path}"  # path is absolute: sqlite:////tmp/...


def store_url(backend: str, workdir: Path, name: str) -> str:
    """A fresh store for one measurement: ``name``.db, a directory ``name``, or a memory store."""
    if backend == "sqlite":
        return _url(workdir / f"{name}.db")
    if backend == "file":
        return f"file://{workdir / name}"  # workdir is absolute: file:///tmp/...
    if backend == "memory":
        return f"memory://bench-{name}-{uuid.uuid4().hex[:12]}"  # process-wide: never reused
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def obstore_problem() -> str | None:
    """Why the object-store backends cannot be measured here (``None``: they can)."""
    try:
        import omniq_obstore.backend  # noqa: F401
    except ImportError as exc:
        return f"omniq-obstore is not importable ({exc})"
    return None


def _client(path: Path) -> TaskQueue:
    """A producer-only client with OmniQ's defaults (``OMNIQ_*`` variables are ignored)."""
    return _client_url(_url(path))


def _client_url(url: str) -> TaskQueue:
    return TaskQueue(settings=load_settings({}, storage_url=url), workers=0)


def _worker_argv(path: Path | str, executor: str, concurrency: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "omniq",
        "worker",
        "--storage",
        path if isinstance(path, str) else _url(path),
        "--import",
        "bench_tasks",
        "--concurrency",
        str(concurrency),
        "--executor",
        executor,
    ]


def enqueue_one_by_one(n: int, workdir: Path, backend: str = "sqlite") -> float:
    """Tasks per second of ``TaskQueue(workers=0).enqueue`` called ``n`` times in a loop."""
    queue = _client_url(store_url(backend, workdir, f"omniq-enqueue-one-{next(_serial)}"))
    try:
        begin = time.perf_counter()
        for _ in range(n):
            queue.enqueue(stamp)
        elapsed = time.perf_counter() - begin
    finally:
        queue.close()
    return n / elapsed


def enqueue_bulk(n: int, workdir: Path, backend: str = "sqlite") -> float:
    """Tasks per second of one ``enqueue_many`` of ``n`` tasks."""
    queue = _client_url(store_url(backend, workdir, f"omniq-enqueue-bulk-{next(_serial)}"))
    try:
        args = [()] * n
        begin = time.perf_counter()
        ids = queue.enqueue_many(stamp, args)
        elapsed = time.perf_counter() - begin
        assert len(ids) == n
    finally:
        queue.close()
    return n / elapsed


def processing(
    n: int,
    workdir: Path,
    *,
    executor: str,
    concurrency: int,
    coroutine: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Processing:
    """Enqueue ``n`` tasks, then start one ``omniq worker`` process and time it through them.

    ``coroutine``: the task is ``async def astamp`` instead of ``def stamp``; ``env``: extra
    ``OMNIQ_*`` variables for the worker (diagnostics).
    """
    tag = f"{executor}-{'coro' if coroutine else 'def'}-{next(_serial)}"
    path = workdir / f"omniq-processing-{tag}.db"
    queue = _client(path)
    try:
        queue.enqueue_many(astamp if coroutine else stamp, [()] * n)
        queue.list_events(limit=1)  # flushes the buffered "enqueued" events before the worker runs
        log_path = workdir / f"omniq-worker-{tag}.log"
        with worker_process(
            _worker_argv(path, executor, concurrency),
            env=worker_env(env),
            log_path=log_path,
            stop_signal=SIGTERM,
        ) as proc:
            spawned = time.time()
            done_at = wait_done(
                lambda: queue.stats()["success"], n, proc, log_path, timeout=timeout
            )
        counts = queue.stats()
    finally:
        queue.close()
    with sqlite3.connect(path) as conn:
        first_start, last_finish = conn.execute(
            "SELECT min(started_at), max(finished_at) FROM omniq_tasks"
        ).fetchone()
    if counts["success"] != n:
        raise RuntimeError(f"OmniQ processing: expected {n} successes, got {counts}")
    return Processing(
        n=n,
        seconds=done_at - first_start,
        spawn_to_done=done_at - spawned,
        extra={
            "store_span": last_finish - first_start,
            "spawn_to_first_start": first_start - spawned,
        },
    )


class _Probe:
    """Reads tasks straight from an object store, as the SQLite runs read the database with
    ``sqlite3``: its own backend instance on its own event loop (in the calling thread), so
    neither the clients' nor the worker's event loop is involved.

    Reading a task from an object store costs a listing of its objects plus reads, so the probe
    reads few while the worker runs: :meth:`estimate` finds how far the worker got through
    ``ids`` (in claim order: the order of enqueueing) by galloping and bisecting from where it
    was, a handful of reads per poll. It is only an estimate (it assumes tasks finish in claim
    order); the caller confirms the end with ``stats()`` and reads every task afterwards.
    """

    def __init__(self, url: str, ids: list[str]) -> None:
        from omniq_obstore import ObjectStoreBackend

        self.ids = ids
        self.front = 0  # ids[:front] are taken as finished
        self.reads = 0
        self._loop = asyncio.new_event_loop()  # not asyncio.run: no signal handlers per call
        self._backend = ObjectStoreBackend.from_url(url)
        self._loop.run_until_complete(self._backend.open())

    def tasks(self, ids: list[str], chunk: int = 500) -> list[Task]:
        """The tasks ``ids`` as stored now (read in chunks of ``chunk``)."""
        out: list[Task] = []
        for i in range(0, len(ids), chunk):
            got = self._loop.run_until_complete(self._backend.get_tasks(ids[i : i + chunk]))
            self.reads += len(got)
            for task_id, task in zip(ids[i : i + chunk], got, strict=True):
                if task is None:
                    raise RuntimeError(f"OmniQ processing: task {task_id} is not in the store")
                out.append(task)
        return out

    def _finished(self, index: int) -> bool:
        [task] = self.tasks([self.ids[index]])
        if task.state.is_terminal and task.state is not TaskState.SUCCESS:
            raise RuntimeError(f"OmniQ processing: task {task.id} ended {task.state.value}")
        return task.state.is_terminal

    def estimate(self) -> int:
        """How many tasks have finished, assuming claim order (O(log progress) reads)."""
        lo, hi, step = self.front, len(self.ids), 1
        while lo < hi:  # gallop: ids[lo], ids[lo + 1], ids[lo + 3], ... until one is unfinished
            i = min(lo + step, hi) - 1
            if not self._finished(i):
                hi = i
                break
            lo, step = i + 1, 2 * step
        while lo < hi:  # bisect between the last finished and the first unfinished seen
            mid = (lo + hi) // 2
            if self._finished(mid):
                lo = mid + 1
            else:
                hi = mid
        self.front = lo
        return lo

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._backend.close())
        finally:
            self._loop.close()


def processing_obstore(
    n: int,
    workdir: Path,
    *,
    backend: str,
    concurrency: int,
    timeout: float = 180,
) -> Processing:
    """Processing of ``n`` ``async def`` no-ops on an object store, queued before the worker
    starts, default ``async`` executor with ``concurrency`` slots.

    ``file``: one ``omniq worker`` process, like SQLite. ``memory``: the store lives in this
    process only, so the worker is embedded: ``TaskQueue(storage_url="memory://…", workers=1,
    max_workers=concurrency)``, started once a producer-only client on the same store has queued
    the tasks.

    Timed from the first task start to the last task finish, both as the worker recorded them
    (``started_at``, ``finished_at``), read from the store afterwards: reading an object store
    while the worker runs is not cheap (``stats()`` reads every task), so the end is found with a
    few reads per poll (:meth:`_Probe.estimate`), confirmed by ``stats()``, and not timed by it.
    """
    if backend not in ("memory", "file"):
        raise ValueError(f"processing_obstore: {backend!r} is not an object-store backend")
    tag = f"{backend}-{next(_serial)}"
    url = store_url(backend, workdir, f"omniq-processing-{tag}")
    queue = _client_url(url)
    probe: _Probe | None = None
    try:
        ids = queue.enqueue_many(astamp, [()] * n)
        queue.list_events(limit=1)  # flushes the buffered "enqueued" events before the worker runs
        probe = _Probe(url, ids)

        def count_done() -> int:
            if probe.estimate() < n:
                return probe.front
            counts = queue.stats()
            if counts["failed"] or counts["cancelled"]:
                raise RuntimeError(f"OmniQ processing ({backend}): {counts}")
            return counts["success"]

        if backend == "file":
            log_path = workdir / f"omniq-worker-{tag}.log"
            with worker_process(
                _worker_argv(url, "async", concurrency),
                env=worker_env(),
                log_path=log_path,
                stop_signal=SIGTERM,
            ) as proc:
                spawned = time.time()
                seen_at = wait_done(count_done, n, proc, log_path, timeout=timeout, fine=0.02)
        else:
            spawned = time.time()
            worker = TaskQueue(
                settings=load_settings({}, storage_url=url, max_workers=concurrency),
                workers=1,
                max_workers=concurrency,
            )
            try:
                seen_at = wait_done(count_done, n, None, None, timeout=timeout, fine=0.02)
            finally:
                worker.close()
        tasks = probe.tasks(ids)
    finally:
        queue.close()
        if probe is not None:
            probe.close()
    if any(t.state is not TaskState.SUCCESS for t in tasks):
        raise RuntimeError(f"OmniQ processing ({backend}): not every task succeeded")
    first_start = min(t.started_at for t in tasks if t.started_at is not None)
    last_finish = max(t.finished_at for t in tasks if t.finished_at is not None)
    return Processing(
        n=n,
        seconds=last_finish - first_start,
        spawn_to_done=last_finish - spawned,
        extra={
            "spawn_to_first_start": first_start - spawned,
            "seen_after_last_finish": seen_at - last_finish,
            "probe_reads": probe.reads - n,  # reads while the worker ran
        },
    )


def latency(
    rate: float,
    n: int,
    warmup: int,
    workdir: Path,
    *,
    executor: str,
    concurrency: int,
    coroutine: bool = False,
    waiters: int = 64,
) -> Latency:
    """Enqueue ``warmup + n`` tasks at ``rate`` per second with one worker process running;
    waiter threads call ``get_result`` on each. The first ``warmup`` tasks are not reported."""
    func = astamp if coroutine else stamp
    path = workdir / "omniq-latency.db"
    log_path = workdir / "omniq-latency-worker.log"
    queue = _client(path)
    collector = Collector()
    try:
        with worker_process(
            _worker_argv(path, executor, concurrency),
            env=worker_env(),
            log_path=log_path,
            stop_signal=SIGTERM,
        ) as proc:
            wait_for_log(proc, log_path, " ready: ")
            queue.get_result(queue.enqueue(func, args=(time.time(),)), timeout=30)

            def wait(index: int, enqueued_at: float, task_id: str) -> None:
                try:
                    started_at = queue.get_result(task_id, timeout=60)
                    collector.add(index, enqueued_at, started_at, time.time())
                except Exception as exc:
                    collector.error(f"{type(exc).__name__}: {exc}")

            with ThreadPoolExecutor(waiters, thread_name_prefix="waiter") as pool:
                ids: list[str] = []

                def send(index: int) -> None:
                    enqueued_at = time.time()
                    task_id = queue.enqueue(func, args=(enqueued_at,))
                    ids.append(task_id)
                    pool.submit(wait, index, enqueued_at, task_id)

                achieved = paced(rate, warmup + n, send)
    finally:
        queue.close()
    if collector.errors:
        raise RuntimeError(f"OmniQ latency: {len(collector.errors)} errors: {collector.errors[:3]}")
    result = collector.latency(warmup)
    result.achieved_rate = achieved
    # Cross-check from the store: claim time (started_at) minus created_at, same tasks.
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT id, started_at - created_at FROM omniq_tasks").fetchall())
    result.extra["store_start"] = [rows[i] for i in ids[warmup:]]
    return result

"""The OmniQ side of the benchmark (SQLite backend, default settings)."""

from __future__ import annotations

import sqlite3
import time
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


def _url(path: Path) -> str:
    return f"sqlite:///{path}"  # path is absolute: sqlite:////tmp/...


def _client(path: Path) -> TaskQueue:
    """A producer-only client with OmniQ's defaults (``OMNIQ_*`` variables are ignored)."""
    return TaskQueue(settings=load_settings({}, storage_url=_url(path)), workers=0)


def _worker_argv(path: Path, executor: str, concurrency: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "omniq",
        "worker",
        "--storage",
        _url(path),
        "--import",
        "bench_tasks",
        "--concurrency",
        str(concurrency),
        "--executor",
        executor,
    ]


def enqueue_one_by_one(n: int, workdir: Path) -> float:
    """Tasks per second of ``TaskQueue(workers=0).enqueue`` called ``n`` times in a loop."""
    queue = _client(workdir / "omniq-enqueue-one.db")
    try:
        begin = time.perf_counter()
        for _ in range(n):
            queue.enqueue(stamp)
        elapsed = time.perf_counter() - begin
    finally:
        queue.close()
    return n / elapsed


def enqueue_bulk(n: int, workdir: Path) -> float:
    """Tasks per second of one ``enqueue_many`` of ``n`` tasks."""
    queue = _client(workdir / "omniq-enqueue-bulk.db")
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
    tag = f"{executor}-{'coro' if coroutine else 'def'}-{len(list(workdir.glob('*.db')))}"
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

"""The Huey side of the benchmark (``SqliteHuey``, ``synchronous=NORMAL``; see bench_tasks)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import (
    PYTHON,
    SIGTERM,
    Collector,
    Latency,
    Processing,
    paced,
    wait_done,
    worker_env,
    worker_process,
)
from bench_tasks import make_huey

# Huey's worker threads poll an empty queue with their own backoff; these flags give them the
# policy of OmniQ's claim loop: first retry after 5 ms, doubling up to 0.5 s (OMNIQ_POLL_INTERVAL).
POLL_FLAGS = ["--delay", "0.005", "--backoff", "2", "--max-delay", "0.5"]


def consumer_argv(
    workers: int, *, worker_type: str = "thread", huey: str = "bench_tasks.huey"
) -> list[str]:
    """``huey_consumer`` for the ``huey`` instance at that import path, with our poll policy."""
    return [
        PYTHON,
        "-m",
        "huey.bin.huey_consumer",
        huey,
        "--workers",
        str(workers),
        "--worker-type",
        worker_type,
        *POLL_FLAGS,
        "--no-periodic",
        "--quiet",  # WARNING level, like OmniQ's default (Huey's default logs every task: INFO)
    ]


def enqueue_one_by_one(n: int, workdir: Path) -> float:
    """Tasks per second of calling the ``@huey.task`` function ``n`` times in a loop."""
    huey, h_stamp = make_huey(str(workdir / "huey-enqueue-one.db"))
    try:
        begin = time.perf_counter()
        for _ in range(n):
            h_stamp()
        elapsed = time.perf_counter() - begin
    finally:
        huey.storage.close()
    return n / elapsed


def enqueue_map(n: int, workdir: Path) -> float:
    """Tasks per second of ``h_stamp.map(...)`` over ``n`` argument tuples: Huey's closest thing
    to a bulk enqueue (it enqueues the tasks one by one, one transaction each)."""
    huey, h_stamp = make_huey(str(workdir / "huey-enqueue-map.db"))
    try:
        args = [()] * n
        begin = time.perf_counter()
        h_stamp.map(args)
        elapsed = time.perf_counter() - begin
        assert huey.pending_count() == n
    finally:
        huey.storage.close()
    return n / elapsed


def _start_times(huey: Any) -> list[float]:
    return [huey.serializer.deserialize(v) for v in huey.all_results().values()]


def processing(n: int, workdir: Path, *, workers: int, timeout: float = 120) -> Processing:
    """Enqueue ``n`` tasks, then start one ``huey_consumer`` process and time it through them."""
    path = workdir / f"huey-processing-{len(list(workdir.glob('huey-processing-*.db')))}.db"
    huey, h_stamp = make_huey(str(path))
    try:
        h_stamp.map([()] * n)
        log_path = path.with_suffix(".log")
        with worker_process(
            consumer_argv(workers),
            env=worker_env({"BENCH_HUEY_DB": str(path)}),
            log_path=log_path,
            stop_signal=SIGTERM,
        ) as proc:
            spawned = time.time()
            done_at = wait_done(huey.result_count, n, proc, log_path, timeout=timeout)
        starts = _start_times(huey)
    finally:
        huey.storage.close()
    if len(starts) != n or huey.pending_count() != 0:
        raise RuntimeError(f"Huey processing: {len(starts)} results for {n} tasks")
    first_start = min(starts)
    return Processing(
        n=n,
        seconds=done_at - first_start,
        spawn_to_done=done_at - spawned,
        extra={"spawn_to_first_start": first_start - spawned},
    )


def latency(
    rate: float, n: int, warmup: int, workdir: Path, *, workers: int, waiters: int = 64
) -> Latency:
    """Enqueue ``warmup + n`` tasks at ``rate`` per second with one consumer process running;
    waiter threads call ``result.get(blocking=True)`` on each. The first ``warmup`` are dropped."""
    path = workdir / "huey-latency.db"
    log_path = workdir / "huey-latency-consumer.log"
    huey, h_stamp = make_huey(str(path))
    collector = Collector()
    try:
        with worker_process(
            consumer_argv(workers),
            env=worker_env({"BENCH_HUEY_DB": str(path)}),
            log_path=log_path,
            stop_signal=SIGTERM,
        ):
            # Ready = it ran a task (Huey prints no "ready" line at WARNING level).
            h_stamp(time.time()).get(blocking=True, timeout=30)

            def wait(index: int, enqueued_at: float, result: Any) -> None:
                try:
                    started_at = result.get(blocking=True, timeout=60)
                    collector.add(index, enqueued_at, started_at, time.time())
                except Exception as exc:
                    collector.error(f"{type(exc).__name__}: {exc}")

            with ThreadPoolExecutor(waiters, thread_name_prefix="waiter") as pool:

                def send(index: int) -> None:
                    enqueued_at = time.time()
                    result = h_stamp(enqueued_at)
                    pool.submit(wait, index, enqueued_at, result)

                achieved = paced(rate, warmup + n, send)
    finally:
        huey.storage.close()
    if collector.errors:
        raise RuntimeError(f"Huey latency: {len(collector.errors)} errors: {collector.errors[:3]}")
    result = collector.latency(warmup)
    result.achieved_rate = achieved
    return result

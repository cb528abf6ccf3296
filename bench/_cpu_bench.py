"""CPU-bound work on the ``process`` executor against the ``thread`` executor.

``n`` tasks that each run about ``work_ms`` of pure-Python arithmetic (they hold the GIL the whole
time) go through one ``omniq worker -e <executor> -c <slots>`` process on a fresh SQLite file.
Threads take turns on the GIL, so the thread executor runs them about one at a time; the process
executor runs one per child, so it scales with cores. The issue's target on this 2-core machine:
processes at least 1.7 times the thread rate. Run it alone with::

    uv run python bench/_cpu_bench.py [N] [WORK_MS]

The worker imports this module (``--import _cpu_bench``) to find :func:`burn`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from _common import PYTHON, SIGTERM, wait_done, wait_for_log, worker_env, worker_process

__all__ = ["burn", "calibrate", "measure_cpu_bound", "measure_huey_cpu_bound"]

BURN = "_cpu_bench:burn"
"""The task's import path, as the worker (with the bench directory on its path) finds it."""


def burn(iterations: int) -> int:
    """The task: ``iterations`` rounds of integer arithmetic in pure Python (holds the GIL)."""
    acc = 0
    for i in range(iterations):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def calibrate(work_ms: float) -> int:
    """How many :func:`burn` iterations take about ``work_ms`` milliseconds here (best of 3)."""
    probe = 200_000
    best = min(_timed_burn(probe) for _ in range(3))
    return max(1, int(probe * (work_ms / 1000.0) / best))


def _timed_burn(iterations: int) -> float:
    began = time.perf_counter()
    burn(iterations)
    return time.perf_counter() - began


def measure_cpu_bound(
    executor: str, n: int = 200, iterations: int = 1_000_000, *, slots: int | None = None
) -> float:
    """Tasks per second for ``n`` CPU-bound tasks on one ``omniq worker -e executor`` process.

    Args:
        executor: ``"process"`` or ``"thread"``.
        n: how many tasks.
        iterations: :func:`burn` iterations per task (see :func:`calibrate`; use the same
            number for every executor compared).
        slots: the executor's pool size; default the CPU count.

    Returns:
        ``n`` divided by the seconds from just before ``enqueue_many`` to all results visible.
        The worker is started (and, for processes, its children warmed by a first round of
        ``slots`` tasks) before the clock starts.

    Raises:
        RuntimeError: not every task succeeded.
    """
    from omniq import TaskQueue
    from omniq.config import load_settings

    slots = slots or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="omniq-cpu-bench-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'cpu.db'}"
        log_path = workdir / "worker.log"
        argv = [PYTHON, "-m", "omniq", "worker", "--storage", url, "--import", "_cpu_bench"]
        queue = TaskQueue(settings=load_settings({}, storage_url=url), workers=0)
        try:
            with worker_process(
                [*argv, "--executor", executor, "--concurrency", str(slots)],
                env=worker_env(),
                log_path=log_path,
                stop_signal=SIGTERM,
            ) as proc:
                wait_for_log(proc, log_path, "ready")
                warm = queue.enqueue_many(BURN, [(1,)] * slots, executor=executor)
                for task_id in warm:
                    queue.get_result(task_id, timeout=120)
                begin = time.time()
                queue.enqueue_many(BURN, [(iterations,)] * n, executor=executor)
                done_at = wait_done(
                    lambda: queue.stats()["success"], n + slots, proc, log_path, timeout=600
                )
            counts = queue.stats()
        finally:
            queue.close()
    if counts["success"] != n + slots:
        raise RuntimeError(f"cpu benchmark ({executor}): expected {n + slots} successes, {counts}")
    return n / (done_at - begin)


def measure_huey_cpu_bound(
    n: int = 200, iterations: int = 1_000_000, *, slots: int | None = None
) -> float:
    """The same measurement for Huey: ``huey_consumer -k process -w slots`` on a ``SqliteHuey``.

    The consumer gets 3 s to start (it prints nothing when ready) and a first round of ``slots``
    tasks warms its processes; then the clock starts, ``n`` tasks are enqueued one by one (Huey
    has no bulk enqueue) and it stops when all results are stored.

    Returns:
        Tasks per second.

    Raises:
        RuntimeError: the consumer exited early.
    """
    from _huey_bench import consumer_argv

    slots = slots or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="huey-cpu-bench-") as tmp:
        db = str(Path(tmp) / "huey-cpu.db")
        os.environ["BENCH_HUEY_DB"] = db
        import _huey_executor_tasks as tasks

        tasks.huey.storage.filename = db
        argv = consumer_argv(slots, worker_type="process", huey="_huey_executor_tasks.huey")
        log_path = Path(tmp) / "consumer.log"
        env = worker_env({"BENCH_HUEY_DB": db})
        with worker_process(argv, env=env, log_path=log_path, stop_signal=SIGTERM) as proc:
            time.sleep(3.0)
            if proc.poll() is not None:
                raise RuntimeError(f"huey consumer exited: {log_path.read_text()}")
            for _ in range(slots):
                tasks.h_burn(1)
            wait_done(lambda: len(tasks.huey.all_results()), slots, proc, log_path, timeout=60)
            begin = time.time()
            for _ in range(n):
                tasks.h_burn(iterations)
            done_at = wait_done(
                lambda: len(tasks.huey.all_results()), n + slots, proc, log_path, timeout=600
            )
        tasks.huey.storage.close()
    return n / (done_at - begin)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    ms = float(sys.argv[2]) if len(sys.argv) > 2 else 50.0
    its = calibrate(ms)
    thread = measure_cpu_bound("thread", count, its)
    process = measure_cpu_bound("process", count, its)
    print(f"thread {thread:.1f} tasks/s, process {process:.1f} tasks/s: {process / thread:.2f}x")
    huey = measure_huey_cpu_bound(count, its)
    print(f"huey_consumer -k process: {huey:.1f} tasks/s")

"""The gevent executor's benchmark: ``n`` tasks that each block in ``time.sleep`` for ``sleep``
seconds, run by one ``omniq worker -e gevent`` process hosting ``n`` greenlets.

The issue's target: 1,000 sleeps of 1 s in under 5 s of wall time (one after another they would take
1,000 s; a thread pool of 32 about 32 s). Run it alone with::

    uv run python bench/_gevent_bench.py [N] [SLEEP]

The worker also imports this module (``--import _gevent_bench``) to find :func:`nap`; importing it
is cheap and does not touch OmniQ.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import PYTHON, SIGTERM, wait_done, wait_for_log, worker_env, worker_process

__all__ = ["measure_gevent_sleeps", "measure_huey_gevent_sleeps", "nap"]

NAP = "_gevent_bench:nap"
"""The task's import path, as the worker (which has the bench directory on its path) finds it."""


def nap(seconds: float) -> None:
    """The task: block in ``time.sleep`` (a greenlet switch once gevent has patched ``time``)."""
    time.sleep(seconds)


def measure_gevent_sleeps(n: int = 1000, sleep: float = 1.0, *, timeout: float = 120.0) -> float:
    """Wall time of ``n`` sleeping tasks on a ``gevent`` worker, first enqueue to last result.

    A fresh SQLite file in a temporary directory; one ``omniq worker -e gevent`` subprocess with
    ``OMNIQ_GEVENT_WORKERS=n`` is started and ready before the clock starts; the tasks are stored
    with one ``enqueue_many``; the clock stops when the producer sees ``n`` successes.

    Args:
        n: how many tasks (and greenlets).
        sleep: seconds each task sleeps.
        timeout: seconds to wait for all results before giving up.

    Returns:
        Seconds from just before ``enqueue_many`` to the moment all ``n`` results were visible.

    Raises:
        RuntimeError: the worker exited early, or not every task succeeded.
        TimeoutError: the tasks did not all finish within ``timeout``.
    """
    from omniq import TaskQueue
    from omniq.config import load_settings

    with tempfile.TemporaryDirectory(prefix="omniq-gevent-bench-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'gevent.db'}"
        log_path = workdir / "worker.log"
        argv = [PYTHON, "-m", "omniq", "worker", "--storage", url, "--import", "_gevent_bench"]
        queue = TaskQueue(settings=load_settings({}, storage_url=url), workers=0)
        try:
            with worker_process(
                [*argv, "--executor", "gevent"],
                env=worker_env({"OMNIQ_GEVENT_WORKERS": str(n)}),
                log_path=log_path,
                stop_signal=SIGTERM,
            ) as proc:
                wait_for_log(proc, log_path, "ready")
                begin = time.time()
                queue.enqueue_many(NAP, [(sleep,)] * n)
                done_at = wait_done(
                    lambda: queue.stats()["success"], n, proc, log_path, timeout=timeout
                )
            counts = queue.stats()
        finally:
            queue.close()
    if counts["success"] != n:
        raise RuntimeError(f"gevent benchmark: expected {n} successes, got {counts}")
    return done_at - begin


def measure_huey_gevent_sleeps(
    n: int = 1000, sleep: float = 1.0, *, timeout: float = 120.0
) -> float:
    """The same measurement for Huey: ``huey_consumer -k greenlet -w n`` on a ``SqliteHuey``.

    The consumer is given 3 s to start (it prints nothing when ready), then the clock starts,
    ``n`` tasks are enqueued one by one (Huey has no bulk enqueue) and the clock stops when ``n``
    results are stored.

    Returns:
        Seconds from the first enqueue to the moment all ``n`` results were visible.

    Raises:
        RuntimeError: the consumer exited early.
        TimeoutError: the tasks did not all finish within ``timeout``.
    """
    import os

    from _huey_bench import consumer_argv

    with tempfile.TemporaryDirectory(prefix="huey-gevent-bench-") as tmp:
        workdir = Path(tmp)
        db = str(workdir / "huey-gevent.db")
        os.environ["BENCH_HUEY_DB"] = db
        import _huey_executor_tasks as tasks

        tasks.huey.storage.filename = db
        argv = consumer_argv(n, worker_type="greenlet", huey="_huey_executor_tasks.huey")
        log_path = workdir / "consumer.log"
        env = worker_env({"BENCH_HUEY_DB": db, "BENCH_HUEY_GEVENT": "1"})
        with worker_process(argv, env=env, log_path=log_path, stop_signal=SIGTERM) as proc:
            time.sleep(3.0)
            if proc.poll() is not None:
                raise RuntimeError(f"huey consumer exited: {log_path.read_text()}")
            begin = time.time()
            for _ in range(n):
                tasks.g_nap(sleep)
            done_at = wait_done(
                lambda: len(tasks.huey.all_results()), n, proc, log_path, timeout=timeout
            )
        tasks.huey.storage.close()
    return done_at - begin


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    wall = measure_gevent_sleeps(count, seconds)
    print(f"{count} x time.sleep({seconds}) on omniq worker -e gevent: {wall:.2f} s wall")
    wall = measure_huey_gevent_sleeps(count, seconds)
    print(f"{count} x time.sleep({seconds}) on huey_consumer -k greenlet: {wall:.2f} s wall")

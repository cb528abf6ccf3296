"""The cost of the event log (issue 6): worker throughput at each ``OMNIQ_EVENT_LEVEL``, and the
nanoseconds of one ``EventLogger.record`` call at ``DISABLED`` and at ``DEBUG``.

Runnable alone (it prints a Markdown section for docs/benchmarks.md)::

    uv run python bench/_events_bench.py               # 5,000 tasks, 5 rounds per level
    uv run python bench/_events_bench.py --tasks 2000 --repeat 3

Throughput: ``n`` no-op tasks enqueued on a fresh SQLite file, then one ``omniq worker`` process
(async executor, 10 slots) started with the level in its environment, timed from the first task
start to all results visible (as bench/run.py's processing rate). Rounds alternate the levels so
drift in the machine's speed spreads over all of them; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import _omniq_bench as omniq_bench  # noqa: E402
import bench_tasks  # noqa: E402
from _common import worker_env  # noqa: E402

from omniq._events import EventLogger  # noqa: E402
from omniq.clock import SystemClock  # noqa: E402
from omniq.models import EventType, Task  # noqa: E402

LEVELS = ("DISABLED", "INFO", "DEBUG")
_serial = itertools.count()


class _NoStore:
    """Just enough of a backend for ``record``: a clock (nothing is flushed)."""

    clock = SystemClock()


def record_ns(level: str, calls: int = 200_000) -> float:
    """Nanoseconds per ``record(task, COMPLETE)`` at ``level``, the best of 5 runs (timeit's
    convention); the buffer is emptied between runs so it never fills (at DEBUG this is the
    cost of building and buffering one event)."""

    async def measure() -> float:
        logger = EventLogger(_NoStore(), level=level, capacity=calls * 2)  # type: ignore[arg-type]
        task = Task(id="t", func="m:f", payload=b"", run_at=0.0, created_at=0.0)
        names = {"record": logger.record, "task": task, "kind": EventType.COMPLETE}
        samples = []
        for _ in range(5):
            logger._buffer.clear()
            seconds = timeit.timeit("record(task, kind)", globals=names, number=calls)
            samples.append(seconds / calls * 1e9)
        return min(samples)

    return asyncio.run(measure())


def call_ns(calls: int = 200_000) -> float:
    """Nanoseconds of a call to an empty method with ``record``'s signature, for reference."""

    class Empty:
        def record(
            self,
            task: object,
            type: object,
            *,
            worker_id: object = None,
            detail: str = "",
            duration: object = None,
            error: object = None,
            queue: object = None,
        ) -> None:
            return None

    names = {"record": Empty().record, "task": object(), "kind": EventType.COMPLETE}
    runs = timeit.repeat("record(task, kind)", globals=names, number=calls, repeat=5)
    return min(runs) / calls * 1e9


def cpu_per_task(n: int, level: str, workdir: Path) -> float:
    """Microseconds of worker CPU time (user + system, from ``wait4``) per task: ``n`` ``async
    def`` no-ops through one ``omniq worker`` at ``level``, stopped with SIGTERM once all are
    done. Robust to other load on the machine, unlike rates."""
    url = omniq_bench.store_url("sqlite", workdir, f"omniq-events-cpu-{level}-{next(_serial)}")
    queue = omniq_bench._client_url(url)
    try:
        queue.enqueue_many(bench_tasks.astamp, [()] * n)
        queue.list_events(limit=1)  # flush the producer's "enqueued" events first
        argv = omniq_bench._worker_argv(url, "async", 10)
        env = worker_env({"OMNIQ_EVENT_LEVEL": level})
        proc = subprocess.Popen(argv, env=env, cwd=BENCH_DIR, stderr=subprocess.DEVNULL)
        try:
            while queue.stats().get("success", 0) < n:
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, _, usage = os.wait4(proc.pid, 0)
    finally:
        queue.close()
    return (usage.ru_utime + usage.ru_stime) / n * 1e6


def throughput(n: int, repeat: int, workdir: Path) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {level: [] for level in LEVELS}
    for _ in range(repeat):
        for level in LEVELS:
            run = omniq_bench.processing(
                n,
                workdir,
                executor="async",
                concurrency=10,
                coroutine=True,
                env={"OMNIQ_EVENT_LEVEL": level},
            )
            rates[level].append(run.rate)
    return rates


def report(
    n: int,
    repeat: int,
    rates: dict[str, list[float]],
    cpu: dict[str, list[float]],
    ns: dict[str, float],
) -> str:
    base = statistics.median(rates["DISABLED"])
    base_cpu = statistics.median(cpu["DISABLED"])
    lines = [
        f"{n:,} `async def` no-op tasks through one `omniq worker` process (async executor, "
        f"10 slots, SQLite), median of {repeat} rounds per level (levels alternate in each "
        "round). Rate: first task start to all results visible; CPU: the worker process's user + "
        "system time per task.",
        "",
        "| worker's `OMNIQ_EVENT_LEVEL` | events per task | tasks/s | vs DISABLED "
        "| worker CPU per task (µs) | vs DISABLED |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    per_task = {"DISABLED": "0", "INFO": "1 (complete)", "DEBUG": "2 (+ executing)"}
    for level in LEVELS:
        rate = statistics.median(rates[level])
        used = statistics.median(cpu[level])
        lines.append(
            f"| {level} | {per_task[level]} | {rate:,.0f} | {rate / base - 1:+.1%} "
            f"| {used:.0f} | {used / base_cpu - 1:+.1%} |"
        )
    lines += [
        "",
        "One `EventLogger.record(task, COMPLETE)` call, best of 5 runs of 200,000:",
        "",
        "| level | ns per call |",
        "| --- | ---: |",
        f"| DISABLED | {ns['DISABLED']:.0f} |",
        f"| DEBUG (event built and buffered) | {ns['DEBUG']:.0f} |",
        f"| (an empty method with the same signature, for reference) | {ns['empty']:.0f} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ns = {"DISABLED": record_ns("DISABLED"), "DEBUG": record_ns("DEBUG"), "empty": call_ns()}
    with tempfile.TemporaryDirectory(prefix="omniq-events-bench-") as tmp:
        rates = throughput(args.tasks, args.repeat, Path(tmp))
        cpu: dict[str, list[float]] = {level: [] for level in LEVELS}
        for _ in range(args.repeat):
            for level in LEVELS:
                cpu[level].append(cpu_per_task(args.tasks, level, Path(tmp)))
    print(report(args.tasks, args.repeat, rates, cpu, ns))


if __name__ == "__main__":
    main()

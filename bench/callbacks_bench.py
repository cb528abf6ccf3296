"""Processing throughput with and without lifecycle callbacks (docs/callbacks.md quotes it).

Enqueues N no-op ``async`` tasks with a producer-only client, then times one embedded worker
(``async`` executor, 10 slots) running them all, in one process::

    uv run python bench/callbacks_bench.py [--tasks 5000] [--repeat 5] [--backend memory|sqlite]

Modes: ``none`` (no callback anywhere: the hot path must cost nothing), ``sync`` (one sync
``on_success`` and one sync ``on_complete``, each run in a thread), ``async`` (the same as
``async def``). Prints the median tasks/s of each mode.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from omniq import AsyncTaskQueue
from omniq.config import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tasks import astamp


def _sync_hook(ctx: object) -> None:
    pass


async def _async_hook(ctx: object) -> None:
    pass


async def one_run(url: str, n: int, mode: str) -> float:
    settings = load_settings({}, storage_url=url, events_enabled=False)
    async with AsyncTaskQueue(settings=settings, workers=0) as producer:
        ids = await producer.enqueue_many(astamp, [(0.0,)] * n, result_ttl=0)
    worker = AsyncTaskQueue(settings=settings, workers=1)
    if mode != "none":
        hook = _sync_hook if mode == "sync" else _async_hook
        worker.on("success", hook)
        worker.on("complete", hook)
    began = time.perf_counter()
    assert worker.worker is not None
    async with worker:
        while worker.worker.counters["succeeded"] < n:  # noqa: ASYNC110 - in-process, cheap
            await asyncio.sleep(0.005)
        took = time.perf_counter() - began
    assert len(ids) == n
    return n / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--modes", default="none,sync,async")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            rates = []
            for i in range(args.repeat):
                if args.backend == "memory":
                    url = f"memory://cb-bench-{uuid.uuid4().hex[:12]}"
                else:
                    url = f"sqlite:///{Path(tmp) / f'{mode}-{i}.db'}"
                rates.append(asyncio.run(one_run(url, args.tasks, mode)))
            print(
                f"{args.backend:7} {mode:6} median {statistics.median(rates):8.0f} tasks/s "
                f"(runs: {', '.join(f'{r:.0f}' for r in rates)})",
                flush=True,
            )


if __name__ == "__main__":
    main()

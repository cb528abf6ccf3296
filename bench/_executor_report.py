"""The executors part of the benchmark run: CPU-bound work (process vs thread executor, and
Huey's process consumer) and blocking sleeps on gevent (OmniQ and Huey's greenlet consumer).

Each figure is measured once per run (they take tens of seconds each); :func:`measure` returns
them and :func:`section` writes the report's "Executors" section.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import _cpu_bench as cpu
import _gevent_bench as gevent

__all__ = ["CPU_TARGET", "GEVENT_TARGET", "measure", "section"]

CPU_TARGET = 1.7
"""Process executor rate / thread executor rate on CPU-bound tasks (issue 4)."""
GEVENT_TARGET = 5.0
"""Seconds of wall time for the gevent sleeps (issue 4: 1,000 x 1 s in under 5 s)."""


def measure(
    args: argparse.Namespace, timed: Callable[[str, Callable[[], Any]], Any]
) -> dict[str, float]:
    """Run every executor measurement once; ``timed(label, fn)`` prints and returns ``fn()``."""
    n, gn, gs = args.cpu_tasks, args.gevent_tasks, args.gevent_sleep
    its = cpu.calibrate(args.cpu_ms)  # once: every executor runs exactly the same work
    print(f"  CPU task: {its:,} iterations (~{args.cpu_ms:g} ms here)", flush=True)
    return {
        "cpu_iterations": float(its),
        "cpu_thread": timed(
            "OmniQ CPU-bound, thread executor", lambda: cpu.measure_cpu_bound("thread", n, its)
        ),
        "cpu_process": timed(
            "OmniQ CPU-bound, process executor", lambda: cpu.measure_cpu_bound("process", n, its)
        ),
        "cpu_huey": timed(
            "Huey CPU-bound, process consumer", lambda: cpu.measure_huey_cpu_bound(n, its)
        ),
        "gevent_omniq": timed(
            "OmniQ gevent sleeps (s)", lambda: gevent.measure_gevent_sleeps(gn, gs)
        ),
        "gevent_huey": timed(
            "Huey greenlet sleeps (s)", lambda: gevent.measure_huey_gevent_sleeps(gn, gs)
        ),
    }


def section(w: Callable[[str], None], ex: dict[str, float], args: argparse.Namespace) -> None:
    """Write the "Executors" section with its two targets."""
    slots = os.cpu_count() or 1
    n, ms, gn, gs = args.cpu_tasks, args.cpu_ms, args.gevent_tasks, args.gevent_sleep
    ratio = ex["cpu_process"] / ex["cpu_thread"]
    verdict = {True: "**PASS**", False: "**FAIL**"}
    w("## Executors\n")
    w("| Measurement | OmniQ | Peer (Huey) | Notes |")
    w("| --- | ---: | ---: | --- |")
    w(
        f"| CPU-bound, `process` executor (tasks/s) | {ex['cpu_process']:,.1f} | "
        f"{ex['cpu_huey']:,.1f} | {n} tasks of ~{ms:g} ms pure-Python arithmetic "
        f"({ex['cpu_iterations']:,.0f} iterations, calibrated once and the same for every "
        f"executor), one worker process with {slots} slots: `omniq worker -e process -c {slots}` / "
        f"`huey_consumer -k process -w {slots}`; enqueue → all results stored. |"
    )
    w(
        f"| CPU-bound, `thread` executor (tasks/s) | {ex['cpu_thread']:,.1f} | — | The same "
        f"tasks on `omniq worker -e thread -c {slots}`: the GIL runs one at a time. |"
    )
    w(
        f"| {gn:,} tasks x `time.sleep({gs:g})` on gevent (s wall) | {ex['gevent_omniq']:.2f} | "
        f"{ex['gevent_huey']:.2f} | `omniq worker -e gevent` with `OMNIQ_GEVENT_WORKERS={gn}` "
        f"(tasks stored by one `enqueue_many`) / `huey_consumer -k greenlet -w {gn}` (enqueued "
        "one by one, inside the timing: Huey has no bulk enqueue); first enqueue → last "
        "result stored. Lower is better. |"
    )
    w("")
    w(
        f"- {verdict[ratio >= CPU_TARGET]} — the process executor reaches at least {CPU_TARGET:g}x "
        f"the thread executor's rate on CPU-bound tasks: {ratio:.2f}x "
        f"({ex['cpu_process']:,.1f} vs {ex['cpu_thread']:,.1f} tasks/s)."
    )
    w(
        f"- {verdict[ex['gevent_omniq'] < GEVENT_TARGET]} — {gn:,} tasks that each block "
        f"{gs:g} s in `time.sleep` finish in under {GEVENT_TARGET:g} s on the gevent executor: "
        f"{ex['gevent_omniq']:.2f} s.\n"
    )

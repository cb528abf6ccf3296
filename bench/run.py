"""OmniQ vs Huey (SqliteHuey) on SQLite: enqueue, processing and latency; writes docs/benchmarks.md.

Also measures OmniQ's object-store backends (omniq-obstore: ``memory://`` and ``file://``) beside
its SQLite backend: enqueue one by one, ``enqueue_many`` and processing (second table).

Run from the repository root::

    uv run --group bench python bench/run.py          # or: uv run nox -s bench
    uv run --group bench python bench/run.py --quick  # smaller, for trying changes (no file written)

Every measurement uses a fresh store (SQLite file, directory or memory store) in a temporary
directory. The hand-written part of docs/benchmarks.md (from the METHOD_MARKER line to the end)
is kept as it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.metadata
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import _executor_report as executor_report  # noqa: E402
import _huey_bench as huey_bench  # noqa: E402
import _omniq_bench as omniq_bench  # noqa: E402
from _common import Latency, Processing, percentile  # noqa: E402

METHOD_MARKER = "<!-- Everything below this line is hand-written; bench/run.py keeps it. -->"
PROCESSING_TARGET = 2.0  # OmniQ processing rate / Huey's
BULK_TARGET = 10.0  # OmniQ enqueue_many rate / its one-by-one rate

T = TypeVar("T")


# -- environment --------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "packages"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes under packages/" if dirty else head


def environment() -> dict[str, str]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "omniq": version("omniq-core"),
        "omniq-sqlite": version("omniq-sqlite"),
        "omniq-obstore": version("omniq-obstore"),
        "obstore": version("obstore"),
        "huey": version("huey"),
        "sqlite": sqlite3.sqlite_version,
        "commit": git_state(),
    }


# -- running ------------------------------------------------------------------------------------
def timed(label: str, fn: Callable[[], T]) -> T:
    begin = time.perf_counter()
    value = fn()
    shown = f"{value:,.0f}/s" if isinstance(value, float) else getattr(value, "summary", "")
    if isinstance(value, float) and label.endswith("(s)"):
        shown = f"{value:.2f} s"
    if isinstance(value, Processing):
        shown = f"{value.rate:,.0f}/s ({value.seconds:.2f} s)"
    print(f"  {label:<62} {shown:<20} [{time.perf_counter() - begin:.1f} s]", flush=True)
    return value


SERIES: dict[str, str] = {
    "omniq_one": "OmniQ enqueue one by one",
    "huey_one": "Huey enqueue one by one",
    "omniq_bulk": "OmniQ enqueue_many",
    "huey_map": "Huey task.map",
    "omniq_proc_coro": "OmniQ processing, async executor, async def task",
    "omniq_proc_async_def": "OmniQ processing, async executor, def task",
    "omniq_proc_thread": "OmniQ processing, thread executor, def task",
    "omniq_proc_no_events": "OmniQ processing, async def task, OMNIQ_EVENTS_ENABLED=false",
    "huey_proc": "Huey processing, thread workers, def task",
    "memory_one": "OmniQ memory:// enqueue one by one",
    "memory_bulk": "OmniQ memory:// enqueue_many",
    "memory_proc": "OmniQ memory:// processing, embedded worker, async def task",
    "file_one": "OmniQ file:// enqueue one by one",
    "file_bulk": "OmniQ file:// enqueue_many",
    "file_proc": "OmniQ file:// processing, async executor, async def task",
}
OBJECT_STORES = ("memory", "file")
SCHEME = {"sqlite": "sqlite:///", "memory": "memory://", "file": "file://"}


def measurements(args: argparse.Namespace, d: Path) -> list[tuple[str, Callable[[], Any]]]:
    """One round: every throughput measurement, OmniQ and Huey interleaved, then the
    object-store backends."""
    n, c = args.tasks, args.concurrency
    proc = functools.partial(omniq_bench.processing, n, d, concurrency=c)
    return [*sqlite_measurements(n, c, d, proc), *obstore_measurements(args, d)]


def obstore_measurements(args: argparse.Namespace, d: Path) -> list[tuple[str, Callable[[], Any]]]:
    """The object-store backends: ``args.object_stores`` (may be empty), ``args.obstore_tasks``."""
    n, c = args.obstore_tasks, args.concurrency
    out: list[tuple[str, Callable[[], Any]]] = []
    for b in args.object_stores:
        out += [
            (f"{b}_one", functools.partial(omniq_bench.enqueue_one_by_one, n, d, b)),
            (f"{b}_bulk", functools.partial(omniq_bench.enqueue_bulk, n, d, b)),
            (
                f"{b}_proc",
                functools.partial(omniq_bench.processing_obstore, n, d, backend=b, concurrency=c),
            ),
        ]
    return out


def sqlite_measurements(
    n: int, c: int, d: Path, proc: Callable[..., Any]
) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("omniq_one", functools.partial(omniq_bench.enqueue_one_by_one, n, d)),
        ("huey_one", functools.partial(huey_bench.enqueue_one_by_one, n, d)),
        ("omniq_bulk", functools.partial(omniq_bench.enqueue_bulk, n, d)),
        ("huey_map", functools.partial(huey_bench.enqueue_map, n, d)),
        ("omniq_proc_coro", functools.partial(proc, executor="async", coroutine=True)),
        ("huey_proc", functools.partial(huey_bench.processing, n, d, workers=c)),
        ("omniq_proc_thread", functools.partial(proc, executor="thread")),
        ("omniq_proc_async_def", functools.partial(proc, executor="async")),
        (
            "omniq_proc_no_events",
            functools.partial(
                proc, executor="async", coroutine=True, env={"OMNIQ_EVENTS_ENABLED": "false"}
            ),
        ),
    ]


def run_all(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    runs: dict[str, list[Any]] = {key: [] for key in SERIES}
    for r in range(args.repeat):
        extra = (
            f" ({args.obstore_tasks:,} on {', '.join(SCHEME[b] for b in args.object_stores)})"
            if args.object_stores
            else ""
        )
        print(
            f"round {r + 1}/{args.repeat}: {args.tasks:,} tasks per measurement{extra}", flush=True
        )
        d = workdir / f"round{r}"
        d.mkdir()
        for key, fn in measurements(args, d):
            runs[key].append(timed(SERIES[key], fn))
    print(
        f"latency: {args.rate:g} tasks/s, {args.latency_tasks:,} tasks (+{args.warmup} warm-up)",
        flush=True,
    )
    d = workdir / "latency"
    d.mkdir()
    c = args.concurrency
    lat_omniq = omniq_bench.latency(
        args.rate,
        args.latency_tasks,
        args.warmup,
        d,
        executor="async",
        concurrency=c,
        coroutine=True,
    )
    print(f"  OmniQ  {latency_summary(lat_omniq)}", flush=True)
    lat_huey = huey_bench.latency(args.rate, args.latency_tasks, args.warmup, d, workers=c)
    print(f"  Huey   {latency_summary(lat_huey)}", flush=True)
    print("executors: CPU-bound and gevent sleeps (once each)", flush=True)
    executors = executor_report.measure(args, timed)
    return {"runs": runs, "latency": {"omniq": lat_omniq, "huey": lat_huey}, "executors": executors}


def latency_summary(lat: Latency) -> str:
    ms = {
        f"{kind} p{p}": percentile(getattr(lat, kind), p) * 1000
        for kind in ("start", "result")
        for p in (50, 99)
    }
    return ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()) + f" @ {lat.achieved_rate:.1f}/s"


# -- report -------------------------------------------------------------------------------------
def med(values: list[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def report(env: dict[str, str], results: dict[str, Any], args: argparse.Namespace) -> str:
    runs = results["runs"]
    rates = {
        k: [v.rate if isinstance(v, Processing) else v for v in vals] for k, vals in runs.items()
    }
    m = {k: med(v) for k, v in rates.items() if v}
    lo, lh = results["latency"]["omniq"], results["latency"]["huey"]

    def pct(lat: Latency, kind: str, p: int) -> float:
        return percentile(getattr(lat, kind), p) * 1000

    n, c = args.tasks, args.concurrency
    huey_worker = f"`huey_consumer -w {c} -k thread`"
    rows = [
        (
            "Enqueue, one by one (tasks/s)",
            m["omniq_one"],
            m["huey_one"],
            "OmniQ: `TaskQueue(workers=0).enqueue` in a loop; Huey: calling the `@huey.task` "
            "function in a loop. One transaction per task for both.",
        ),
        (
            "Enqueue, bulk (tasks/s)",
            m["omniq_bulk"],
            m["huey_map"],
            f"OmniQ: one `enqueue_many` of {n:,} tasks (one transaction). Huey has no bulk "
            f"enqueue: its column is `task.map()` over {n:,} argument tuples, which enqueues them "
            "one by one (one transaction each), i.e. its one-by-one rate.",
        ),
        (
            "Processing, 1 worker process (tasks/s)",
            m["omniq_proc_coro"],
            m["huey_proc"],
            f"OmniQ: `omniq worker --concurrency {c}`, default `async` executor, `async def` "
            f"no-op; Huey: {huey_worker}, `def` no-op. {n:,} tasks queued before the worker "
            "starts; first task start → all results visible in the store.",
        ),
        (
            "Processing, plain `def` task on the async executor (tasks/s)",
            m["omniq_proc_async_def"],
            m["huey_proc"],
            "Same, OmniQ running the `def` no-op on its default executor (which hands plain "
            "functions to a helper thread pool).",
        ),
        (
            "Processing, thread executor (tasks/s)",
            m["omniq_proc_thread"],
            m["huey_proc"],
            f"Like for like with Huey: OmniQ `--executor thread --concurrency {c}`, `def` no-op.",
        ),
    ]
    lat_rows = [
        ("Latency enqueue → start, p50 (ms)", pct(lo, "start", 50), pct(lh, "start", 50)),
        ("Latency enqueue → start, p99 (ms)", pct(lo, "start", 99), pct(lh, "start", 99)),
        ("Latency enqueue → result, p50 (ms)", pct(lo, "result", 50), pct(lh, "result", 50)),
        ("Latency enqueue → result, p99 (ms)", pct(lo, "result", 99), pct(lh, "result", 99)),
    ]
    lat_note = (
        f"{args.rate:g} tasks/s for {args.latency_tasks / args.rate:g} s "
        f"({args.latency_tasks:,} tasks after {args.warmup} warm-up) with one worker process "
        f"already running (OmniQ async executor x{c} with the `async def` task, Huey x{c} "
        "threads). Start = the task's own `time.time()` minus the enqueue time passed as its "
        "argument."
    )
    result_note = (
        "Until a waiter thread's `get_result` (OmniQ) / `result.get(blocking=True)` (Huey) "
        "returns. Both poll the store with their default backoff: OmniQ from 5 ms (x1.5, at most "
        "200 ms), Huey from a fixed 50 ms (x1.15, at most 1 s), which sets Huey's floor."
    )

    out: list[str] = []
    w = out.append
    w("# Benchmarks: OmniQ vs Huey on SQLite, and OmniQ's backends side by side\n")
    w(
        "Generated by `bench/run.py` (`uv run nox -s bench`). Everything above the method "
        "section is rewritten by each run.\n"
    )
    w(f"- Date: {env['date']}")
    w(
        f"- Machine: {env['cpus']} CPUs ({env['cpu']}), {env['os']}, Python {env['python']}, "
        f"SQLite {env['sqlite']}"
    )
    w(
        f"- Versions: omniq {env['omniq']} (omniq-sqlite {env['omniq-sqlite']}, "
        + (
            f"omniq-obstore {env['omniq-obstore']} on obstore {env['obstore']}, "
            if env["omniq-obstore"] != "not installed"
            else "omniq-obstore not installed, "
        )
        + f"commit {env['commit']}), huey {env['huey']}"
    )
    stores = ", ".join(SCHEME[b] for b in args.object_stores)
    w(
        f"- {n:,} no-op tasks per throughput measurement, a fresh SQLite file each"
        + (
            f" ({args.obstore_tasks:,} on the object-store backends {stores}, a fresh store each)"
            if args.object_stores
            else ""
        )
        + f"; throughput figures are the median of {args.repeat} rounds (every round is in the "
        "details below)\n"
    )
    w("| Measurement | OmniQ | Huey | OmniQ ÷ Huey | Notes |")
    w("| --- | ---: | ---: | ---: | --- |")
    for label, o, h, note in rows:
        w(f"| {label} | {o:,.0f} | {h:,.0f} | {o / h:.2f}x | {note} |")
    for i, (label, o, h) in enumerate(lat_rows):
        note = lat_note if i == 0 else (result_note if i == 2 else "")
        w(f"| {label} | {o:.1f} | {h:.1f} | {o / h:.2f}x | {note} |")
    w("")
    w("Rates: higher is better. Latencies: lower is better (below 1x favours OmniQ).\n")

    w("## Targets\n")
    proc = {
        key: m[key] / m["huey_proc"]
        for key in ("omniq_proc_coro", "omniq_proc_async_def", "omniq_proc_thread")
    }
    bulk_ratio = m["omniq_bulk"] / m["omniq_one"]
    w(
        f"- {verdict(proc['omniq_proc_coro'] >= PROCESSING_TARGET)} — OmniQ processes at least "
        f"{PROCESSING_TARGET:g}x Huey's rate with one worker process: "
        f"{proc['omniq_proc_coro']:.2f}x ({m['omniq_proc_coro']:,.0f} vs {m['huey_proc']:,.0f} "
        "tasks/s; default async executor, `async def` task). With a plain `def` task: "
        f"{proc['omniq_proc_async_def']:.2f}x on the async executor "
        f"({verdict(proc['omniq_proc_async_def'] >= PROCESSING_TARGET)}), "
        f"{proc['omniq_proc_thread']:.2f}x on the thread executor "
        f"({verdict(proc['omniq_proc_thread'] >= PROCESSING_TARGET)})."
    )
    w(
        f"- {verdict(bulk_ratio >= BULK_TARGET)} — OmniQ bulk enqueue is at least "
        f"{BULK_TARGET:g}x its one-by-one enqueue: {bulk_ratio:.2f}x "
        f"({m['omniq_bulk']:,.0f} vs {m['omniq_one']:,.0f} tasks/s).\n"
    )

    backends_table(w, m, args)
    executor_report.section(w, results["executors"], args)

    stores_md = " and ".join(f"`{SCHEME[b]}`" for b in args.object_stores)
    w("## Details\n")
    w("Every round (tasks/s):\n")
    w("| Series | " + " | ".join(f"round {i + 1}" for i in range(args.repeat)) + " | median |")
    w("| --- | " + " | ".join("---:" for _ in range(args.repeat)) + " | ---: |")
    for key, label in SERIES.items():
        vals = rates[key]
        if not vals:
            continue
        w(f"| {label} | " + " | ".join(f"{v:,.0f}" for v in vals) + f" | {m[key]:,.0f} |")
    w("")
    w(
        "The `OMNIQ_EVENTS_ENABLED=false` series is a diagnostic (what the event log costs), "
        "not part of the comparison."
        + (
            f" The {stores_md} series ran {args.obstore_tasks:,} tasks each."
            if args.object_stores
            else ""
        )
        + "\n"
    )
    w("Processing runs, medians over the rounds (seconds):\n")
    w("| Series | first start → all visible | spawn → all visible | spawn → first start |")
    w("| --- | ---: | ---: | ---: |")
    for key, label in SERIES.items():
        procs = runs[key]
        if not procs or not isinstance(procs[0], Processing):
            continue
        w(
            f"| {label} | {med([p.seconds for p in procs]):.2f} "
            f"| {med([p.spawn_to_done for p in procs]):.2f} "
            f"| {med([p.extra['spawn_to_first_start'] for p in procs]):.2f} |"
        )
    w("")
    if args.object_stores:
        w(
            f"For the {stores_md} series the end is the last task's `finished_at` (as the "
            "worker stored it), not the moment the benchmark saw it"
            + (
                "; `spawn` is the embedded worker's start for `memory://`"
                if "memory" in args.object_stores
                else ""
            )
            + ".\n"
        )
    store = lo.extra.get("store_start", [])
    w(
        f"Latency runs: achieved {lo.achieved_rate:.1f} (OmniQ) and {lh.achieved_rate:.1f} "
        "(Huey) tasks/s. OmniQ's enqueue → start read from the store instead "
        f"(`started_at - created_at`, i.e. until the claim): p50 "
        f"{percentile(store, 50) * 1000:.1f} ms, p99 {percentile(store, 99) * 1000:.1f} ms.\n"
    )
    return "\n".join(out)


def backends_table(w: Callable[[str], None], m: dict[str, float], args: argparse.Namespace) -> None:
    """The second table: OmniQ on SQLite (figures of the first table) beside the object stores."""
    w("## OmniQ backends side by side\n")
    if not args.object_stores:
        w(f"Not measured in this run: {args.obstore_skipped or 'no object store selected'}.\n")
        return
    n, no, c = args.tasks, args.obstore_tasks, args.concurrency
    cols = ["sqlite", *args.object_stores]
    notes = {
        "one": "`TaskQueue(workers=0).enqueue(stamp)` in a loop (a producer-only client). SQLite: "
        "one transaction per task; object stores: each task is a few objects (its spec, then its "
        "entry in the due index).",
        "bulk": f"One `enqueue_many` of all the tasks ({n:,} on SQLite, {no:,} on the object "
        "stores). SQLite: one transaction; object stores: the tasks' objects are written "
        "concurrently (the batch is not atomic there).",
        "proc": f"Default `async` executor, {c} slots, `async def` no-op, every task queued before "
        "the worker starts. SQLite: first task start → all results visible; object stores: "
        "first task start → last task finish, both as stored by the worker (reading an object "
        f"store while it works is not cheap). SQLite and `file://`: one `omniq worker "
        f"--concurrency {c}` process. `memory://` lives inside one process only (not "
        "cross-process), so its worker is **embedded in the benchmark process**: "
        f'`TaskQueue(storage_url="memory://bench-…", workers=1, max_workers={c})`, started '
        "after a producer-only client on the same store queued the tasks; it shares that "
        "process (and its GIL) with the benchmark's producer client and completion polling.",
    }
    labels = {
        "one": "Enqueue, one by one (tasks/s)",
        "bulk": "Enqueue, bulk `enqueue_many` (tasks/s)",
        "proc": "Processing, 1 worker (tasks/s)",
    }
    sqlite_key = {"one": "omniq_one", "bulk": "omniq_bulk", "proc": "omniq_proc_coro"}
    w("| Measurement | " + " | ".join(f"`{SCHEME[b]}`" for b in cols) + " | Notes |")
    w("| --- | " + " | ".join("---:" for _ in cols) + " | --- |")
    w(
        "| Tasks per measurement | "
        + " | ".join(f"{n if b == 'sqlite' else no:,}" for b in cols)
        + " | SQLite's figures are those of the first table (same run). |"
    )
    for kind, label in labels.items():
        base = m[sqlite_key[kind]]
        cells = [f"{base:,.0f}"]
        for b in args.object_stores:
            v = m[f"{b}_{kind}"]
            cells.append(f"{v:,.0f} ({v / base:.2f}x)")
        w(f"| {label} | " + " | ".join(cells) + f" | {notes[kind]} |")
    w("")
    w(
        "Rates: higher is better; in parentheses, the rate ÷ SQLite's. Medians of the rounds, "
        "like the first table; every round is in the details below.\n"
    )


def kept_method(path: Path) -> str:
    if path.exists():
        text = path.read_text(encoding="utf-8")
        at = text.find(METHOD_MARKER)
        if at >= 0:
            return text[at:]
    return f"{METHOD_MARKER}\n\n## Method\n\nSee `bench/README.md`.\n"


def to_json(value: Any) -> Any:
    if isinstance(value, Processing):
        return {"n": value.n, "seconds": value.seconds, "spawn_to_done": value.spawn_to_done}
    if isinstance(value, Latency):
        return {"start": value.start, "result": value.result, "rate": value.achieved_rate}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def choose_object_stores(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Set ``args.object_stores`` (a tuple) and ``args.obstore_skipped`` (why none, or ``""``)."""
    args.obstore_skipped = ""
    asked = args.object_stores
    if asked is not None and asked.strip().lower() in ("", "none"):
        args.object_stores = ()
        args.obstore_skipped = "skipped with `--object-stores none`"
        return
    wanted = OBJECT_STORES if asked is None else tuple(x.strip() for x in asked.split(","))
    unknown = [b for b in wanted if b not in OBJECT_STORES]
    if unknown:
        parser.error(f"--object-stores: unknown {unknown}; choose from {', '.join(OBJECT_STORES)}")
    problem = omniq_bench.obstore_problem()
    if problem is None:
        args.object_stores = tuple(b for b in OBJECT_STORES if b in wanted)
        return
    if asked is not None:
        parser.error(f"--object-stores {asked}: {problem}")
    args.object_stores = ()
    args.obstore_skipped = problem
    print(f"NOTE: not measuring memory:// and file://: {problem}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks per throughput run")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of throughput runs")
    parser.add_argument("--concurrency", type=int, default=10, help="slots of each worker")
    parser.add_argument("--rate", type=float, default=200.0, help="latency run: tasks/s")
    parser.add_argument("--latency-tasks", type=int, default=2_000, help="latency run: tasks")
    parser.add_argument("--warmup", type=int, default=100, help="latency run: tasks not reported")
    parser.add_argument(
        "--obstore-tasks", type=int, default=2_000, help="tasks per object-store throughput run"
    )
    parser.add_argument(
        "--object-stores",
        default=None,
        help="object-store backends to measure beside SQLite: comma-separated of memory, file; "
        "'none' skips them (default: both, if omniq-obstore is importable)",
    )
    parser.add_argument("--cpu-tasks", type=int, default=200, help="CPU-bound tasks per run")
    parser.add_argument("--cpu-ms", type=float, default=50.0, help="milliseconds per CPU task")
    parser.add_argument("--gevent-tasks", type=int, default=1000, help="gevent sleeping tasks")
    parser.add_argument("--gevent-sleep", type=float, default=1.0, help="seconds each sleeps")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="small run, print only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.repeat, args.latency_tasks, args.warmup = 2_000, 1, 400, 50
        args.obstore_tasks = min(args.obstore_tasks, 500)
        args.cpu_tasks, args.gevent_tasks = 40, 200
    choose_object_stores(parser, args)

    env = environment()
    print(
        f"OmniQ {env['omniq']} vs Huey {env['huey']} on SQLite {env['sqlite']}, "
        f"{env['cpus']} CPUs ({env['cpu']}), Python {env['python']}",
        flush=True,
    )
    begin = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="omniq-bench-"))
    try:
        results = run_all(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    text = report(env, results, args)
    print(f"\ndone in {time.perf_counter() - begin:.0f} s\n")
    if args.quick:
        print(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n" + kept_method(args.out), encoding="utf-8")
    raw = BENCH_DIR / "results" / "latest.json"
    raw.parent.mkdir(exist_ok=True)
    raw.write_text(json.dumps({"env": env, **to_json(results)}), encoding="utf-8")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    print(f"raw samples: {raw.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

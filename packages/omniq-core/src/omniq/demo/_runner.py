"""The demo: a map-reduce over files (one task per file, then one aggregate task that depends
on all of them: a chord), two ``omniq worker`` processes plus embedded workers, a live progress
bar, and a summary of what was computed, who computed it, and the events recorded."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from omniq._canvas import Signature, chord, group
from omniq._options import TaskOptions
from omniq._sync_client import TaskQueue
from omniq.config import Settings, load_settings
from omniq.demo.tasks import aggregate, analyze_file, flaky_fetch, progress_snapshot
from omniq.errors import OmniQError
from omniq.models import WorkerInfo

__all__ = ["demo_files", "run_demo"]

_SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages", ".git"}
_EXTRAS = "demo-extras"
"""The queue of the demo's flaky task and scheduled snapshots (served by the embedded worker)."""
_PROGRESS = "demo-progress"
"""The id of the demo's schedule."""
_EVENTS_READ = 1_000_000
"""At most this many events are read back for the closing event counts."""
_HEARTBEAT = 0.25
"""Seconds between the demo workers' health records, so the summary's counts are fresh."""


def demo_files(directory: Path) -> Iterator[Path]:
    """Every regular file under ``directory`` (skipping caches and installed packages), sorted."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            path = Path(root, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _start_workers(
    url: str, count: int, logs: Path, console: Console
) -> list[subprocess.Popen[str]]:
    procs = []
    for i in range(count):
        with open(logs / f"worker-{i + 1}.log", "w") as stderr:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "omniq",
                        "worker",
                        "--storage",
                        url,
                        "--import",
                        "omniq.demo.tasks",
                        "--executor",
                        "process",
                    ],
                    env={
                        **os.environ,
                        "OMNIQ_WORKER_HEARTBEAT": str(_HEARTBEAT),
                        "OMNIQ_COMPONENT_LOG_LEVELS": '{"worker": "ERROR"}',
                    },
                    stderr=stderr,
                    stdout=subprocess.DEVNULL,
                    text=True,
                )
            )
    deadline = time.monotonic() + 60
    for i, proc in enumerate(procs):
        log = logs / f"worker-{i + 1}.log"
        while "ready" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop_workers(procs)
                raise OmniQError(f"demo worker {i + 1} did not start:\n{log.read_text()}")
            time.sleep(0.02)
    console.print(
        f"[dim]started {count} standalone worker process(es): "
        f"{', '.join(str(p.pid) for p in procs)}[/]"
    )
    return procs


def _stop_workers(procs: list[subprocess.Popen[str]]) -> list[int | None]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=60))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(None)
    return codes


def run_demo(directory: str | None, *, worker_processes: int = 2, keep: bool = False) -> int:
    """Run the demo and print its summary; returns the exit code (0 when every task ran).

    Args:
        directory: where the files are; default: the Python standard library's source directory.
        worker_processes: standalone ``omniq worker`` processes to start beside the embedded ones.
        keep: keep the temporary SQLite file (its path is printed).
    """
    console = Console()
    root = Path(directory or sysconfig.get_paths()["stdlib"]).resolve()
    files = [str(p) for p in demo_files(root)]
    tmp = Path(tempfile.mkdtemp(prefix="omniq-demo-"))
    url = f"sqlite:///{tmp / 'demo.db'}"
    console.print(f"[bold]OmniQ demo[/]: {len(files)} files under {root}")
    console.print(f"[dim]storage: {url}[/]")
    procs = _start_workers(url, worker_processes, tmp, console) if worker_processes else []
    try:
        with TaskQueue(settings=_demo_settings(url), queues=("default", _EXTRAS)) as queue:
            started = time.perf_counter()
            # Map: CPU-bound (hashing, word counting), so the process executor runs them on
            # every core. Reduce: one aggregate task that waits for all of them (a chord) and
            # receives their results in file order.
            per_file = TaskOptions(executor="process", result_ttl=None)
            mapped = group(Signature(analyze_file, (f,), options=per_file) for f in files)
            reduce = Signature(
                aggregate, options=TaskOptions(executor="thread", queue=_EXTRAS, result_ttl=None)
            )
            run = queue.enqueue_graph(chord(mapped, reduce))
            # A flaky call that fails twice, then succeeds on its third run (retries with
            # backoff), and a schedule that snapshots the progress every second.
            flaky_id = queue.enqueue(
                flaky_fetch, args=(2,), retries=3, retry_delay=0.2, executor="thread", queue=_EXTRAS
            )
            queue.add_schedule(
                progress_snapshot,
                every=1,
                args=(url,),
                id=_PROGRESS,
                queue=_EXTRAS,
                executor="thread",
                misfire="skip",
            )
            _follow(queue, len(files), console)
            totals = queue.get_result(run, timeout=300)
            elapsed = time.perf_counter() - started
            extras = _extras(queue, flaky_id)
            workers = _fresh_worker_records(queue, len(files))
            embedded = queue.async_queue.worker.worker_id if queue.async_queue.worker else ""
    finally:
        codes = _stop_workers(procs)
    _summary(console, root, totals, elapsed, workers, embedded, codes)
    _extras_summary(console, extras)
    _events_summary(console, url)
    if keep:
        console.print(
            f"kept {tmp / 'demo.db'}; look inside with: "
            f"omniq tasks list --state failed --storage {url}"
        )
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(c == 0 for c in codes) else 1


def _demo_settings(url: str) -> Settings:
    """The embedded worker: process executor by default, fresh health records, and no warning
    per failed task (the summary lists the files that could not be analyzed)."""
    return load_settings(
        storage_url=url,
        default_worker="process",
        worker_heartbeat=_HEARTBEAT,
        component_log_levels={"worker": "ERROR"},
    )


def _fresh_worker_records(queue: TaskQueue, total: int) -> list[WorkerInfo]:
    """Every worker's health record once their counters account for all ``total`` file tasks (each
    worker writes its record every ``_HEARTBEAT`` seconds), or the latest after 5 s."""
    deadline = time.monotonic() + 5.0
    while True:
        workers = queue.list_workers()
        counted = sum(
            e.succeeded + e.failed + e.cancelled
            for w in workers
            for e in w.executors
            if e.name == "process"  # the file tasks (the extras run on threads)
        )
        if counted >= total or time.monotonic() > deadline:
            return workers
        time.sleep(_HEARTBEAT / 2)


def _extras(queue: TaskQueue, flaky_id: str) -> dict[str, Any]:
    """The flaky task's outcome and the schedule's snapshots; removes the schedule."""
    try:
        attempt = queue.get_result(flaky_id, timeout=30)
    except OmniQError as exc:
        attempt = f"failed: {exc}"
    queue.remove_schedule(_PROGRESS)
    snapshots = []
    for task in queue.list_tasks(queue=_EXTRAS, state="success", limit=100):
        if task.func.endswith(":progress_snapshot"):
            snapshots.append(queue.get_result(task.id, timeout=0))
    return {
        "flaky_attempt": attempt,
        "flaky_events": [e.type.value for e in queue.list_events(task_id=flaky_id)],
        "snapshots": sorted(snapshots, key=lambda s: s["at"]),
    }


def _extras_summary(console: Console, extras: dict[str, Any]) -> None:
    runs = [e for e in extras["flaky_events"] if e == "executing"]
    console.print(
        f"flaky task: succeeded on run {extras['flaky_attempt']} after "
        f"{len(runs) - 1} retries (events: {', '.join(extras['flaky_events'])})"
    )
    done = " → ".join(f"{int(s['finished']):,}" for s in extras["snapshots"])
    console.print(
        f"schedule '{_PROGRESS}' (every 1 s): {len(extras['snapshots'])} snapshot(s) of tasks "
        f"finished: {done or 'none (the run was shorter than a tick)'}"
    )


def _follow(queue: TaskQueue, total: int, console: Console) -> None:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.0f} tasks/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("analyzing files", total=total, rate=0.0)
        start = time.perf_counter()
        done = 0
        while done < total:
            counts = queue.stats(queue="default")
            done = counts["success"] + counts["failed"] + counts["cancelled"]
            rate = done / max(time.perf_counter() - start, 1e-9)
            progress.update(bar, completed=done, rate=rate)
            if done < total:
                time.sleep(0.1)


def _events_summary(console: Console, url: str) -> None:
    """How many events of each type the run recorded (every worker has flushed by now)."""
    with TaskQueue(storage_url=url, workers=0) as queue:
        counts = Counter(e.type.value for e in queue.list_events(limit=_EVENTS_READ))
    shown = ", ".join(f"{name} {n:,}" for name, n in counts.most_common())
    console.print(f"events recorded: {sum(counts.values()):,} ({shown or 'none'})")


def _summary(
    console: Console,
    root: Path,
    totals: dict[str, Any],
    elapsed: float,
    workers: list[WorkerInfo],
    embedded: str,
    codes: list[int | None],
) -> None:
    skipped = totals["skipped"]
    table = Table(title="OmniQ demo summary (map: one task per file, reduce: one aggregate)")
    table.show_header = False
    table.add_row(
        "files", f"{totals['files']:,} ({totals['analyzed']:,} analyzed, {len(skipped):,} skipped)"
    )
    table.add_row("lines", f"{totals['lines']:,}")
    table.add_row("words", f"{totals['words']:,} ({totals['distinct_words']:,} distinct)")
    table.add_row("bytes", f"{totals['bytes']:,}")
    table.add_row("elapsed", f"{elapsed:.2f} s")
    table.add_row("tasks per second", f"{(totals['files'] + 1) / elapsed:,.0f}")
    table.add_row("top ten words", ", ".join(f"{w} ({n:,})" for w, n in totals["top_words"]))
    table.add_row("processes that mapped", f"{len(totals['pids'])}")
    console.print(table)
    per_executor = Table("worker", "kind", "executor", "slots", "tasks", "failed", "mean run")
    for w in workers:
        kind = "embedded" if w.id == embedded else "standalone"
        for e in w.executors:
            if e.started:
                mean = e.mean_run_seconds
                per_executor.add_row(
                    w.id,
                    kind,
                    e.name,
                    str(e.concurrency),
                    f"{e.succeeded + e.failed + e.cancelled:,}",
                    f"{e.failed:,}",
                    "-" if mean is None else f"{mean * 1000:.1f} ms",
                )
    console.print(per_executor)
    if skipped:
        console.print(f"[yellow]{len(skipped)} file(s) skipped[/] (reported by their map task):")
        for path, reason in skipped[:8]:
            shown = path.replace(str(root) + os.sep, "")
            console.print(f"  - {shown}: {reason}", overflow="ellipsis", no_wrap=True)
        if len(skipped) > 8:
            console.print(f"  … and {len(skipped) - 8} more")
    if any(c != 0 for c in codes):
        console.print(f"[red]worker exit codes: {codes}[/]")

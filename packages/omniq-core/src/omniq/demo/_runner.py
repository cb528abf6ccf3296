"""The demo: one task per file, two ``omniq worker`` processes plus embedded workers, a live
progress bar, and a summary of what was computed and who computed it."""

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

from omniq._sync_client import TaskQueue
from omniq.config import Settings, load_settings
from omniq.demo.tasks import analyze_file, flaky_fetch, progress_snapshot
from omniq.errors import OmniQError
from omniq.models import WorkerInfo

__all__ = ["demo_files", "run_demo"]

_SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages", ".git"}
_EXTRAS = "demo-extras"
"""The queue of the demo's flaky task and scheduled snapshots (served by the embedded worker)."""
_PROGRESS = "demo-progress"
"""The id of the demo's schedule."""
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
            # CPU-bound (hashing, word counting): the process executor runs them on every core.
            # retries=0: a file that is not UTF-8 text will not become one on a second try.
            ids = queue.enqueue_many(
                analyze_file,
                [(f,) for f in files],
                result_ttl=None,
                retries=0,
                executor="process",
            )
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
            _follow(queue, len(ids), console)
            elapsed = time.perf_counter() - started
            results, failures = _collect(queue, ids)
            extras = _extras(queue, flaky_id)
            workers = _fresh_worker_records(queue, len(ids))
            embedded = queue.async_queue.worker.worker_id if queue.async_queue.worker else ""
    finally:
        codes = _stop_workers(procs)
    _summary(console, root, results, failures, elapsed, workers, embedded, codes)
    _extras_summary(console, extras)
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


def _collect(queue: TaskQueue, ids: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for task_id in ids:
        try:
            results.append(queue.get_result(task_id, timeout=0))
        except OmniQError as exc:
            failures.append(getattr(exc, "remote_message", str(exc)))
    return results, failures


def _summary(
    console: Console,
    root: Path,
    results: list[dict[str, Any]],
    failures: list[str],
    elapsed: float,
    workers: list[WorkerInfo],
    embedded: str,
    codes: list[int | None],
) -> None:
    words: Counter[str] = Counter()
    for r in results:
        words.update(r["counts"])
    total = len(results) + len(failures)
    table = Table(title="OmniQ demo summary", show_header=False)
    table.add_row("files", f"{total:,} ({len(results):,} analyzed, {len(failures):,} failed)")
    table.add_row("lines", f"{sum(r['lines'] for r in results):,}")
    table.add_row("words", f"{sum(r['words'] for r in results):,}")
    table.add_row("bytes", f"{sum(r['bytes'] for r in results):,}")
    table.add_row("elapsed", f"{elapsed:.2f} s")
    table.add_row("tasks per second", f"{total / elapsed:,.0f}")
    table.add_row("top ten words", ", ".join(f"{w} ({n:,})" for w, n in words.most_common(10)))
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
    if failures:
        console.print(f"[yellow]{len(failures)} file(s) could not be analyzed[/] (failed tasks):")
        for message in failures[:8]:
            console.print(
                f"  - {message.replace(str(root) + os.sep, '')}", overflow="ellipsis", no_wrap=True
            )
        if len(failures) > 8:
            console.print(f"  … and {len(failures) - 8} more (run with --keep to inspect them)")
    if any(c != 0 for c in codes):
        console.print(f"[red]worker exit codes: {codes}[/]")

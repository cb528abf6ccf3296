"""Built-in sub-commands: worker, workers, tasks, stats, plugins, demo."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from omniq._process_role import mark_worker_process
from omniq._setup import create_backend
from omniq.cli._common import run, storage_option
from omniq.cli._dead import dead
from omniq.cli._events import events
from omniq.cli._schedules import schedules
from omniq.client import AsyncTaskQueue
from omniq.config import load_settings
from omniq.logging import configure_logging
from omniq.models import Task, TaskState, WorkerInfo
from omniq.plugins import installed_plugins, scheme_of
from omniq.worker import Worker, import_task_modules, run_worker

__all__ = ["BUILTIN_COMMANDS"]

console = Console()


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.command()
@storage_option
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="Module defining tasks; repeat for several.",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    help="Pool size of the first executor (default its OMNIQ_*_WORKERS setting).",
)
@click.option(
    "--queues", "-q", default="default", show_default=True, help="Comma-separated queues to serve."
)
@click.option(
    "--executor",
    "-e",
    "executors",
    multiple=True,
    metavar="NAME[,NAME…]",
    help=(
        "Executors to host: async, thread, process, gevent; repeat or comma-separate for several. "
        "The first runs tasks that name no executor (default OMNIQ_DEFAULT_WORKER)."
    ),
)
@click.option(
    "--lease",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Lease (visibility timeout) in seconds (default OMNIQ_LEASE_SECONDS).",
)
@click.option("--worker-id", default=None, help="Worker id (default host:pid:random).")
def worker(
    storage_url: str | None,
    imports: tuple[str, ...],
    concurrency: int | None,
    queues: str,
    executors: tuple[str, ...],
    lease: float | None,
    worker_id: str | None,
) -> None:
    """Run a standalone worker until SIGTERM/SIGINT (then drain gracefully)."""
    names = [n.strip() for spec in executors for n in spec.split(",") if n.strip()]
    settings = load_settings(
        storage_url=storage_url, default_worker=names[0] if names else None, lease_seconds=lease
    )
    configure_logging(settings)
    mark_worker_process()  # clients built by the task modules must not start workers of their own
    import_task_modules(imports)
    queue_names = [q.strip() for q in queues.split(",") if q.strip()]
    if not queue_names:
        raise click.BadParameter("give at least one queue name", param_hint="--queues")

    def ready(w: Worker) -> None:
        hosted = ",".join(f"{name}x{e.concurrency}" for name, e in w.executors.items())
        click.echo(
            f"omniq worker {w.worker_id} ready: {settings.resolved_storage_url()} "
            f"queues={','.join(queue_names)} executors={hosted}",
            err=True,
        )

    code = asyncio.run(
        run_worker(
            settings,
            queues=queue_names,
            executors=names or [settings.default_worker],
            concurrency=concurrency,
            worker_id=worker_id,
            on_ready=ready,
        )
    )
    sys.exit(code)


def _duration(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4m05s``, ``2h03m``, ``3d04h``; ``-`` for ``None``."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _mean_run(info: WorkerInfo) -> float | None:
    done = sum(e.succeeded + e.failed + e.cancelled for e in info.executors)
    return sum(e.run_seconds for e in info.executors) / done if done else None


def _no_sqlite_file(storage_url: str | None) -> bool:
    """True when the storage is a SQLite file that does not exist (nothing can be listed, and
    opening it would create it)."""
    url = load_settings(storage_url=storage_url).resolved_storage_url()
    if scheme_of(url) != "sqlite":
        return False
    path = getattr(create_backend(url), "path", None)  # building it opens nothing
    return isinstance(path, Path) and not path.exists()


def _worker_json(info: WorkerInfo) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(info)
    for entry, stats in zip(data["executors"], info.executors, strict=True):
        entry["mean_run_seconds"] = stats.mean_run_seconds
    data["busy"] = info.busy
    return data


def _state_text(info: WorkerInfo) -> str:
    """The state column: ``running``, ``stopping``, with ``(store down)`` while the worker's
    circuit breaker is open or probing."""
    if info.breaker in ("open", "half_open"):
        return f"{info.state.value} (store down)"
    return info.state.value


@click.command()
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON list.")
def workers(storage_url: str | None, as_json: bool) -> None:
    """List live workers: executors and busy slots, running tasks, counters, last heartbeat."""
    if _no_sqlite_file(storage_url):
        found: list[WorkerInfo] = []
        now = 0.0
    else:

        async def fetch(q: AsyncTaskQueue) -> tuple[list[WorkerInfo], float]:
            return await q.list_workers(), q.backend.clock.now()

        found, now = run(fetch, storage_url)
    if as_json:
        click.echo(json.dumps([_worker_json(w) for w in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("no live workers")
        return
    # Eight narrow columns, so the table stays readable in an 80-column terminal; the id is
    # host:pid:random by default (--json has every field).
    table = Table()
    table.add_column("id", no_wrap=True)
    for header in ("state", "queues", "executors busy/slots"):
        table.add_column(header, overflow="fold")
    for header in ("running", "ok/failed", "mean run", "seen/up"):
        table.add_column(header, justify="right", no_wrap=True)
    for w in found:
        table.add_row(
            w.id,
            _state_text(w),
            ",".join(w.queues),
            "\n".join(f"{e.name} {e.busy}/{e.concurrency}" for e in w.executors),
            str(len(w.running)),
            f"{w.counters.get('succeeded', 0)}/{w.counters.get('failed', 0)}",
            _duration(_mean_run(w)),
            f"{_duration(now - w.heartbeat_at)}/{_duration(now - w.started_at)}",
        )
    console.print(table)


@click.group()
def tasks() -> None:
    """List, show and cancel tasks."""


@tasks.command("list")
@storage_option
@click.option("--state", type=click.Choice([s.value for s in TaskState]), default=None)
@click.option("--queue", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def tasks_list(storage_url: str | None, state: str | None, queue: str | None, limit: int) -> None:
    """List tasks, newest first."""

    async def fetch(q: AsyncTaskQueue) -> list[Task]:
        return await q.list_tasks(queue=queue, state=state, limit=limit)

    table = Table("id", "function", "queue", "executor", "state", "attempt", "created", "worker")
    for t in run(fetch, storage_url):
        table.add_row(
            t.id,
            t.func,
            t.queue,
            t.executor or "(default)",
            t.state.value,
            str(t.attempt),
            _when(t.created_at),
            t.worker_id or "-",
        )
    console.print(table)


def _passed_values(task: Task) -> str:
    """What a chain link or chord callback receives as its first argument."""
    ids = task.pass_results or ()
    if not ids:
        return "[] (after an empty group)"
    if task.pass_single:
        return f"the value of {ids[0]}"
    return f"the list of the values of {', '.join(ids)}"


@tasks.command("show")
@storage_option
@click.argument("task_id")
def tasks_show(storage_url: str | None, task_id: str) -> None:
    """Show one task, its error and its result."""

    async def fetch(q: AsyncTaskQueue) -> tuple[Task, str, str]:
        task = await q.get_task(task_id)
        try:
            args, kwargs = q.serializer.loads_call(task.payload)
            call = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        except Exception as exc:  # shown, not raised: show must work on a broken record too
            call = f"(cannot decode: {type(exc).__name__}: {exc})"
        result = "-"
        if task.state is TaskState.SUCCESS:
            try:
                result = repr(await q.get_result(task_id, timeout=0))
            except Exception as exc:
                result = f"({type(exc).__name__}: {exc})"
        return task, call, result

    task, call, result = run(fetch, storage_url)
    table = Table(show_header=False)
    table.add_row("call", f"{task.func}({call[:2000]})")
    for name in (
        "id",
        "func",
        "queue",
        "state",
        "priority",
        "executor",
        "attempt",
        "max_retries",
        "timeout",
        "result_ttl",
        "idempotency_key",
        "worker_id",
    ):
        value = getattr(task, name)
        table.add_row(name, str(value.value if isinstance(value, TaskState) else value))
    if task.depends_on:
        table.add_row("depends_on", "\n".join(task.depends_on))
    if task.pass_results is not None:
        table.add_row("receives", _passed_values(task))
    for name in ("created_at", "run_at", "started_at", "finished_at", "lease_expires_at"):
        table.add_row(name, _when(getattr(task, name)))
    table.add_row("result", result[:2000])
    if task.error is not None:
        table.add_row("error", f"{task.error.type}: {task.error.message}")
        if task.error.traceback:
            table.add_row("traceback", task.error.traceback)
    console.print(table)


@tasks.command("cancel")
@storage_option
@click.argument("task_ids", nargs=-1, required=True)
def tasks_cancel(storage_url: str | None, task_ids: tuple[str, ...]) -> None:
    """Cancel tasks: queued ones never run, running ones are asked to stop."""

    async def cancel(q: AsyncTaskQueue) -> list[tuple[str, str]]:
        outcome = []
        for tid in task_ids:
            if not await q.cancel(tid):
                outcome.append((tid, "already finished"))
            elif (await q.get_task(tid)).state is TaskState.CANCELLED:
                outcome.append((tid, "cancelled"))
            else:
                outcome.append((tid, "cancel requested (running; its worker stops it)"))
        return outcome

    for tid, what in run(cancel, storage_url):
        click.echo(f"{tid}: {what}")


@click.command()
@storage_option
@click.option("--queue", default=None, help="Only this queue.")
def stats(storage_url: str | None, queue: str | None) -> None:
    """Count tasks per state."""

    async def fetch(q: AsyncTaskQueue) -> dict[str, int]:
        return await q.stats(queue=queue)

    counts = run(fetch, storage_url)
    table = Table("state", "tasks")
    for state, n in counts.items():
        table.add_row(state, str(n))
    table.add_row("total", str(sum(counts.values())), style="bold")
    console.print(table)


@click.command()
def plugins() -> None:
    """List installed backends, executors and hook modules."""
    table = Table("group", "name", "distribution", "target", "description")
    for p in installed_plugins():
        table.add_row(p.group, p.name, p.distribution, p.target, p.description)
    console.print(table)


@click.command()
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--workers",
    "worker_processes",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Standalone worker processes to start.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary SQLite file and print its path.")
def demo(directory: str | None, worker_processes: int, keep: bool) -> None:
    """Count lines and words and hash every file under DIRECTORY (default: the standard library)."""
    from omniq.demo import run_demo

    sys.exit(run_demo(directory, worker_processes=worker_processes, keep=keep))


BUILTIN_COMMANDS = [worker, workers, tasks, schedules, dead, events, stats, plugins, demo]

"""``omniq dead``: the dead-letter queue (failed tasks): list, show, requeue, purge."""

from __future__ import annotations

import datetime as dt

import click
from rich.console import Console
from rich.table import Table

from omniq.cli._common import run, storage_option
from omniq.client import AsyncTaskQueue
from omniq.errors import ConfigError
from omniq.models import Task, TaskEvent, TaskState

__all__ = ["dead"]

console = Console()


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def dead() -> None:
    """The dead-letter queue: tasks that failed for good (retries exhausted or not retryable)."""


@dead.command("list")
@storage_option
@click.option("--queue", default=None, help="Only this queue.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def dead_list(storage_url: str | None, queue: str | None, limit: int) -> None:
    """List dead tasks, newest first, with their last error."""

    async def fetch(q: AsyncTaskQueue) -> list[Task]:
        return await q.list_dead(queue=queue, limit=limit)

    table = Table("id", "function", "queue", "runs", "failed at", "error")
    for t in run(fetch, storage_url):
        error = f"{t.error.type}: {t.error.message}" if t.error else "-"
        table.add_row(t.id, t.func, t.queue, str(t.runs_used), _when(t.finished_at), error[:200])
    console.print(table)


@dead.command("show")
@storage_option
@click.argument("task_id")
def dead_show(storage_url: str | None, task_id: str) -> None:
    """Show one dead task: its last error, traceback and history (one event per attempt)."""

    async def fetch(q: AsyncTaskQueue) -> tuple[Task, list[TaskEvent]]:
        return await q.get_task(task_id), await q.list_events(task_id=task_id, limit=1000)

    task, events = run(fetch, storage_url)
    table = Table(show_header=False)
    for name in ("id", "func", "queue", "attempt", "released", "max_retries"):
        table.add_row(name, str(getattr(task, name)))
    table.add_row("state", task.state.value)
    table.add_row("finished_at", _when(task.finished_at))
    if task.error is not None:
        table.add_row("error", f"{task.error.type}: {task.error.message}")
        if task.error.traceback:
            table.add_row("traceback", task.error.traceback)
    console.print(table)
    history = Table("at", "event", "attempt", "worker", "detail")
    for e in events:
        history.add_row(_when(e.at), e.type.value, str(e.attempt), e.worker_id or "-", e.detail)
    console.print(history)
    if task.state is not TaskState.FAILED:
        click.echo(f"note: task {task_id} is {task.state.value}, not dead")


@dead.command("requeue")
@storage_option
@click.argument("task_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Requeue every dead task matching the filters.")
@click.option("--queue", default=None, help="With --all: only this queue.")
@click.option("--func", default=None, help="With --all: only this function ('module:name').")
@click.option(
    "--error-type", default=None, help="With --all: only this last error type (path or name)."
)
def dead_requeue(
    storage_url: str | None,
    task_id: str | None,
    all_: bool,
    queue: str | None,
    func: str | None,
    error_type: str | None,
) -> None:
    """Put dead tasks back in their queue, due now, with a fresh retry budget."""
    if all_ == (task_id is not None):
        raise ConfigError("give either a TASK_ID or --all")
    if task_id is not None and (queue or func or error_type):
        raise ConfigError("--queue, --func and --error-type go with --all")

    async def requeue(q: AsyncTaskQueue) -> int:
        if task_id is not None:
            return 1 if await q.requeue_dead(task_id) else 0
        return await q.requeue_dead_all(queue=queue, func=func, error_type=error_type)

    count = run(requeue, storage_url)
    if task_id is not None and not count:
        click.echo(f"{task_id}: not dead (nothing requeued)")
    else:
        click.echo(f"requeued {count} task(s)")


@dead.command("purge")
@storage_option
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=None,
    help="Only tasks that failed more than this many seconds ago (default: all).",
)
def dead_purge(storage_url: str | None, older_than: float | None) -> None:
    """Delete dead tasks (and their results) for good."""

    async def purge(q: AsyncTaskQueue) -> int:
        return await q.purge_dead(older_than=older_than)

    click.echo(f"purged {run(purge, storage_url)} dead task(s)")

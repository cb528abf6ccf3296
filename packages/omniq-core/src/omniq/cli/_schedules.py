"""``omniq schedules list|show|pause|resume|remove|next``."""

from __future__ import annotations

import datetime as dt

import click
from rich.console import Console
from rich.table import Table

from omniq.cli._common import run, storage_option
from omniq.client import AsyncTaskQueue
from omniq.models import Schedule

__all__ = ["schedules"]

console = Console()


def _when(ts: float | None, zone: str = "UTC") -> str:
    if ts is None:
        return "-"
    from zoneinfo import ZoneInfo

    return dt.datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _rule(s: Schedule) -> str:
    if s.cron is not None:
        return f"cron {s.cron}"
    if s.interval is not None:
        return f"every {s.interval:g}s"
    return f"at {_when(s.at, s.timezone)}"


@click.group()
def schedules() -> None:
    """List and manage schedules (recurring and one-shot tasks)."""


@schedules.command("list")
@storage_option
def schedules_list(storage_url: str | None) -> None:
    """List every schedule."""

    async def fetch(q: AsyncTaskQueue) -> list[Schedule]:
        return await q.list_schedules()

    table = Table("id", "function", "rule", "zone", "queue", "state", "next run", "last run")
    for s in run(fetch, storage_url):
        table.add_row(
            s.id,
            s.func,
            _rule(s),
            s.timezone,
            s.queue,
            "paused" if s.paused else ("done" if s.next_run_at is None else "active"),
            _when(s.next_run_at, s.timezone),
            _when(s.last_run_at, s.timezone),
        )
    console.print(table)


@schedules.command("show")
@storage_option
@click.argument("schedule_id")
def schedules_show(storage_url: str | None, schedule_id: str) -> None:
    """Show one schedule."""

    async def fetch(q: AsyncTaskQueue) -> Schedule:
        return await q.get_schedule(schedule_id)

    s = run(fetch, storage_url)
    table = Table(show_header=False)
    table.add_row("rule", _rule(s))
    for name in (
        "id",
        "func",
        "kind",
        "timezone",
        "queue",
        "executor",
        "priority",
        "jitter",
        "paused",
        "misfire",
        "misfire_limit",
    ):
        value = getattr(s, name)
        table.add_row(name, str(getattr(value, "value", value)))
    for name in ("start_at", "end_at", "next_run_at", "last_run_at"):
        table.add_row(name, _when(getattr(s, name), s.timezone))
    console.print(table)


@schedules.command("pause")
@storage_option
@click.argument("schedule_id")
def schedules_pause(storage_url: str | None, schedule_id: str) -> None:
    """Pause a schedule (it produces nothing until resumed)."""

    async def act(q: AsyncTaskQueue) -> Schedule:
        return await q.pause_schedule(schedule_id)

    run(act, storage_url)
    click.echo(f"{schedule_id}: paused")


@schedules.command("resume")
@storage_option
@click.argument("schedule_id")
def schedules_resume(storage_url: str | None, schedule_id: str) -> None:
    """Resume a paused schedule."""

    async def act(q: AsyncTaskQueue) -> Schedule:
        return await q.resume_schedule(schedule_id)

    s = run(act, storage_url)
    click.echo(f"{schedule_id}: resumed; next run {_when(s.next_run_at, s.timezone)}")


@schedules.command("remove")
@storage_option
@click.argument("schedule_id")
def schedules_remove(storage_url: str | None, schedule_id: str) -> None:
    """Delete a schedule (tasks it already produced are kept)."""

    async def act(q: AsyncTaskQueue) -> bool:
        return await q.remove_schedule(schedule_id)

    if not run(act, storage_url):
        raise click.ClickException(f"no schedule with id {schedule_id!r}")
    click.echo(f"{schedule_id}: removed")


@schedules.command("next")
@storage_option
@click.argument("schedule_id")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True)
def schedules_next(storage_url: str | None, schedule_id: str, count: int) -> None:
    """Print the next N run times (in the schedule's time zone)."""

    async def fetch(q: AsyncTaskQueue) -> list[dt.datetime]:
        return await q.next_runs(schedule_id, count)

    for when in run(fetch, storage_url):
        click.echo(when.isoformat())

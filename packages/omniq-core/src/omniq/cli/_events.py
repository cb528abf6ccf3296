"""``omniq events``: list, follow and query (DuckDB over the sink) the event log."""

from __future__ import annotations

import asyncio
import collections
import csv
import datetime as dt
import json
import re
import sys
import time
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from omniq._events import event_types
from omniq.cli._common import producer, run, storage_option
from omniq.client import AsyncTaskQueue
from omniq.config import load_settings
from omniq.errors import ConfigError
from omniq.models import EventType, TaskEvent

__all__ = ["events", "parse_since"]

console = Console()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DEFAULT_AGE = 86400.0
"""Without --since or --task, events of the last day are listed."""
_PAGE = 1000


def parse_since(text: str, *, now: float) -> float:
    """The time ``--since`` names, in seconds since the epoch.

    Accepts an age (``90`` or ``90s``, ``10m``, ``2h``, ``1d``, ``1w``: that long before ``now``)
    or an ISO 8601 time (``2026-11-29T21:00``, local time unless it has an offset).

    Raises:
        ConfigError: neither form.
    """
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: give an age (90, 10m, 2h, 1d, 1w) or an ISO time "
            "(2026-11-29T21:00, 2026-11-29T21:00+00:00)"
        ) from None
    return (when if when.tzinfo else when.astimezone()).timestamp()


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _json(event: TaskEvent) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(event)
    data["level"] = event.level.value
    return data


def _line(e: TaskEvent) -> str:
    subject = e.task_id or f"worker {e.worker_id or '-'}"
    took = f" {e.duration:.3f}s" if e.duration is not None else ""
    detail = f" {e.detail}" if e.detail else ""
    return (
        f"{_when(e.at)} {e.level.value:<7} {e.type.value:<14} {subject} #{e.attempt}{took}{detail}"
    )


def _table(found: list[TaskEvent]) -> Table:
    """Narrow enough for 80 columns; ``--json`` has every field (queue, worker, error)."""
    table = Table()
    table.add_column("at", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("task", overflow="fold", min_width=12)
    table.add_column("#", justify="right")
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for e in found:
        table.add_row(
            dt.datetime.fromtimestamp(e.at).strftime("%m-%d %H:%M:%S"),
            e.level.value,
            e.type.value,
            e.task_id or f"({e.worker_id or '-'})",
            str(e.attempt),
            "-" if e.duration is None else f"{e.duration:.3f}s",
            e.detail[:120],
        )
    return table


@click.group(invoke_without_command=True)
@storage_option
@click.option("--task", "task_id", default=None, help="Only this task's events.")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="Only events of this type (repeat, or comma-separate: --type error,retry).",
)
@click.option("--since", default=None, help="Only events since an age (10m, 2h) or ISO time.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="JSON: a list, or one object a line.")
@click.pass_context
def events(
    ctx: click.Context,
    storage_url: str | None,
    task_id: str | None,
    types: tuple[str, ...],
    since: str | None,
    limit: int,
    follow: bool,
    as_json: bool,
) -> None:
    """List recorded events: the newest --limit matching, oldest first (of the last day
    unless --since or --task is given); or --follow new ones.

    `omniq events query "SQL"` runs SQL over the analytics sink instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    names = [t for item in types for t in item.split(",") if t.strip()]
    try:
        wanted = event_types([n.strip() for n in names]) if names else None
    except ValueError as exc:
        raise ConfigError(f"--type: {exc}") from None
    start = None if since is None else parse_since(since, now=time.time())
    if follow:
        _follow(storage_url, task_id, wanted, start, as_json)
        return

    if start is None and task_id is None and not follow:
        start = time.time() - _DEFAULT_AGE

    async def fetch(q: AsyncTaskQueue) -> list[TaskEvent]:
        return await _newest(q, task_id=task_id, types=wanted, since=start, limit=limit)

    found = run(fetch, storage_url)
    if as_json:
        click.echo(json.dumps([_json(e) for e in found], indent=2, ensure_ascii=False))
    elif not found:
        click.echo("no events")
    else:
        console.print(_table(found))


async def _newest(
    q: AsyncTaskQueue,
    *,
    task_id: str | None,
    types: frozenset[EventType] | None,
    since: float | None,
    limit: int,
) -> list[TaskEvent]:
    """The newest ``limit`` events matching, oldest first: pages through the matches with the
    keyset cursor, keeping only the last ``limit`` in memory."""
    await q.event_logger.flush()
    kept: collections.deque[TaskEvent] = collections.deque(maxlen=limit)
    cursor: tuple[float | None, str | None] = (since, None)
    while True:
        page = await q.backend.list_events(
            task_id=task_id, types=types, since=cursor[0], after_id=cursor[1], limit=_PAGE
        )
        kept.extend(page)
        if len(page) < _PAGE:
            return list(kept)
        cursor = (page[-1].at, page[-1].id)


def _follow(
    storage_url: str | None,
    task_id: str | None,
    wanted: frozenset[EventType] | None,
    since: float | None,
    as_json: bool,
) -> None:
    async def main() -> None:
        async with producer(storage_url) as q:
            async for event in q.events(task_id=task_id, type=wanted, since=since):
                click.echo(json.dumps(_json(event)) if as_json else _line(event))
                sys.stdout.flush()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


@events.command("query")
@click.argument("sql")
@click.option(
    "--sink",
    "sink_url",
    metavar="URL",
    default=None,
    help="The sink location; default OMNIQ_EVENT_SINK_URL.",
)
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON list of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Print rows as CSV with a header line.")
def events_query(sql: str, sink_url: str | None, as_json: bool, as_csv: bool) -> None:
    """Run SQL (DuckDB) over the events written to the sink: a view named `events`.

    Example: omniq events query "SELECT type, count(*) FROM events GROUP BY type"
    """
    from omniq._analytics import query_events

    if as_json and as_csv:
        raise ConfigError("give --json or --csv, not both")
    url = sink_url or load_settings().event_sink_url
    result = query_events(url, sql)
    if as_json:
        rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        console.print(table)

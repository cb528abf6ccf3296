"""The event log end to end: levels changed at run time, the JSON-lines sink on real stores
(file:// and S3 via moto) queried with DuckDB, ``omniq events`` and a subscriber following a
separate ``omniq worker`` process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import e2e_tasks
import pytest
from click.testing import CliRunner
from moto_s3 import moto_s3

from omniq import AsyncTaskQueue, EventLevel, EventType, TaskQueue
from omniq._analytics import query_events
from omniq._event_sink import EventSink
from omniq._events import EventLogger
from omniq.cli import build_cli
from omniq.cli._events import parse_since
from omniq.clock import ManualClock
from omniq.config import Settings, load_settings
from omniq.errors import ConfigError
from omniq.models import Task, TaskEvent
from omniq_obstore.backend import MemoryBackend

Spawn = Callable[..., subprocess.Popen[str]]


def _task() -> Task:
    return Task(id="t1", func="m:f", payload=b"", run_at=0.0, created_at=0.0, worker_id="w0")


# -- levels ------------------------------------------------------------------------------------
async def test_levels_filter_events_and_change_at_run_time() -> None:
    async with MemoryBackend.from_url("memory://levels", clock=ManualClock()) as backend:
        logger = EventLogger(backend, level="info")
        assert logger.level is EventLevel.INFO and logger.enabled
        for kind in (EventType.ENQUEUED, EventType.EXECUTING, EventType.COMPLETE):
            logger.record(_task(), kind)
        logger.level = "WARNING"
        logger.record(_task(), EventType.COMPLETE)  # INFO: below WARNING now
        logger.record(_task(), EventType.RETRY)
        logger.record(_task(), EventType.ERROR)
        logger.level = EventLevel.DISABLED
        assert not logger.enabled
        for kind in EventType:
            logger.record(_task(), kind)
        logger.level = "debug"
        logger.record(None, EventType.WORKER_STARTED, worker_id="w1", queue="mail")
        await logger.flush()
        stored = await backend.list_events()
    assert [e.type for e in stored] == [
        EventType.COMPLETE,
        EventType.RETRY,
        EventType.ERROR,
        EventType.WORKER_STARTED,
    ]
    worker = stored[-1]
    assert (worker.task_id, worker.worker_id, worker.queue) == (None, "w1", "mail")
    assert stored[0].worker_id == "w0"  # a task's worker by default
    with pytest.raises(ValueError, match=r"unknown event level .loud.*DISABLED"):
        logger.level = "loud"


async def test_disabled_records_nothing_not_even_a_dropped_count() -> None:
    async with MemoryBackend.from_url("memory://disabled", clock=ManualClock()) as backend:
        logger = EventLogger(backend, level="DISABLED", capacity=1)
        seen: list[TaskEvent] = []
        logger.add_listener(seen.append)
        for _ in range(10):
            logger.record(_task(), EventType.ERROR)
        assert (logger._buffer, logger.dropped, seen) == ([], 0, [])


def test_the_sync_client_changes_the_level_of_a_running_queue(settings: Settings) -> None:
    with TaskQueue(settings=settings) as queue:
        assert queue.event_logger.level is EventLevel.DEBUG  # OMNIQ_EVENT_LEVEL's default
        queue.event_logger.level = "ERROR"
        task_id = queue.enqueue(e2e_tasks.add, args=(1, 2))
        assert queue.get_result(task_id, timeout=20) == 3
        assert queue.list_events(task_id=task_id) == []
        queue.event_logger.level = "INFO"
        again = queue.enqueue(e2e_tasks.add, args=(2, 2))
        assert queue.get_result(again, timeout=20) == 4
        [done] = queue.list_events(task_id=again)
        assert done.type is EventType.COMPLETE and done.duration is not None


def test_settings_pick_the_level_and_the_deprecated_switch_still_disables(db_url: str) -> None:
    on = AsyncTaskQueue(
        settings=load_settings({"OMNIQ_EVENT_LEVEL": "warning"}, storage_url=db_url)
    )
    assert on.event_logger.level is EventLevel.WARNING
    off = AsyncTaskQueue(settings=load_settings({"OMNIQ_EVENTS_ENABLED": "0"}, storage_url=db_url))
    assert off.event_logger.level is EventLevel.DISABLED


def test_list_events_filters_by_type_names_and_time(settings: Settings) -> None:
    with TaskQueue(settings=settings) as queue:
        ok = queue.enqueue(e2e_tasks.add, args=(1, 1))
        bad = queue.enqueue(e2e_tasks.boom, args=("x",), retries=0)
        queue.get_result(ok, timeout=20)
        with pytest.raises(Exception, match="x"):
            queue.get_result(bad, timeout=20)
        done = queue.list_events(type=["complete", EventType.ERROR])
        assert {(e.task_id, e.type) for e in done} == {
            (ok, EventType.COMPLETE),
            (bad, EventType.ERROR),
        }
        [error] = queue.list_events(task_id=bad, type="error")
        assert error.error is not None and error.error.message == "x"
        later = max(e.at for e in done) + 1
        assert queue.list_events(since=later) == []
        with pytest.raises(ValueError, match="unknown event type 'finished'"):
            queue.list_events(type="finished")


# -- the sink ----------------------------------------------------------------------------------
def _run_tasks(settings: Settings, ok: int, failing: int) -> None:
    with TaskQueue(settings=settings) as queue:
        ids = [queue.enqueue(e2e_tasks.add, args=(i, i)) for i in range(ok)]
        bad = [queue.enqueue(e2e_tasks.boom, args=("no",), retries=0) for _ in range(failing)]
        for task_id in ids:
            queue.get_result(task_id, timeout=20)
        for task_id in bad:
            with pytest.raises(Exception, match="no"):
                queue.get_result(task_id, timeout=20)


def _counts(rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
    return {str(kind): int(n) for kind, n in rows}


def test_a_file_sink_is_queried_with_duckdb(settings: Settings, tmp_path: Path) -> None:
    sink = (tmp_path / "sink").as_uri()
    _run_tasks(load_settings({}, **_args(settings), event_sink_url=sink), ok=5, failing=2)
    result = query_events(
        sink, "SELECT type, count(*) FROM events WHERE task_id IS NOT NULL GROUP BY type"
    )
    assert _counts(result.rows) == {"enqueued": 7, "executing": 7, "complete": 5, "error": 2}
    [(slowest, level, error)] = query_events(
        sink,
        "SELECT max(duration), any_value(level), any_value(error_message) FROM events "
        "WHERE type = 'error'",
    ).rows
    assert slowest >= 0 and level == "ERROR" and error == "no"
    files = list((tmp_path / "sink" / "events").glob("date=*/hour=*/*.jsonl"))
    assert files and result.files == len(files)
    first = json.loads(files[0].read_text().splitlines()[0])
    assert set(first) >= {"id", "task_id", "type", "level", "at", "time", "duration"}

    runner = CliRunner()
    cli = build_cli()
    out = runner.invoke(
        cli,
        ["events", "query", "--sink", sink, "--json", "SELECT count(*) AS n FROM events"],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["n"] == sum(_counts(result.rows).values()) + 2  # + worker
    out = runner.invoke(cli, ["events", "query", "--sink", sink, "--csv", "SELECT 1 AS one"])
    assert out.output.splitlines() == ["one", "1"]


def test_an_s3_sink_is_downloaded_and_queried(settings: Settings) -> None:
    with moto_s3("omniq-events") as endpoint:
        sink = f"s3://omniq-events/analytics?endpoint={endpoint}&allow_http=true"
        _run_tasks(load_settings({}, **_args(settings), event_sink_url=sink), ok=3, failing=1)
        rows = query_events(
            sink, "SELECT type, count(*) FROM events WHERE type IN ('complete', 'error') GROUP BY 1"
        ).rows
    assert _counts(rows) == {"complete": 3, "error": 1}


def test_query_without_a_sink_or_with_bad_sql_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OMNIQ_EVENT_SINK_URL"):
        query_events(None, "SELECT 1")
    with pytest.raises(ConfigError, match="not a directory"):  # a typo'd sink says so
        query_events((tmp_path / "typo").as_uri(), "SELECT 1")
    with pytest.raises(ConfigError, match="no SQL given"):
        query_events(tmp_path.as_uri(), "   ")
    (tmp_path / "none").mkdir()
    empty = (tmp_path / "none").as_uri()  # a sink nothing was written to yet
    assert query_events(empty, "SELECT count(*) FROM events").rows == [(0,)]
    with pytest.raises(ConfigError, match="query failed"):
        query_events(empty, "SELECT nope FROM events")


class FailingSink(EventSink):
    """Fault injection: a sink whose store refuses every write."""

    def __init__(self) -> None:
        self.url = "memory://failing"

    async def write(self, events: Sequence[TaskEvent]) -> None:
        raise OSError("injected: bucket gone")


async def test_a_failing_sink_is_counted_and_the_store_still_gets_every_event() -> None:
    async with MemoryBackend.from_url("memory://sinkfail", clock=ManualClock()) as backend:
        logger = EventLogger(backend, sink=FailingSink())
        logger.record(_task(), EventType.COMPLETE)
        await logger.flush()
        logger.record(_task(), EventType.ERROR)
        await logger.stop()
        assert logger.sink_failures == 2 and logger.dropped == 0
        assert len(await backend.list_events()) == 2


def test_a_sink_url_without_a_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="OMNIQ_EVENT_SINK_URL"):
        load_settings({"OMNIQ_EVENT_SINK_URL": "/var/events"})


def _args(settings: Settings) -> dict[str, Any]:
    return {
        "storage_url": settings.storage_url,
        "lease_seconds": settings.lease_seconds,
        "poll_interval": settings.poll_interval,
        "shutdown_grace": settings.shutdown_grace,
    }


# -- omniq events ------------------------------------------------------------------------------
def test_since_accepts_ages_and_iso_times() -> None:
    assert parse_since("90", now=1000.0) == 910.0
    assert parse_since("10m", now=1000.0) == 400.0
    assert parse_since("2h", now=10_000.0) == 2800.0
    assert parse_since("2026-11-29T21:00:00+00:00", now=0) == 1795986000.0
    with pytest.raises(ConfigError, match="--since 'yesterday'"):
        parse_since("yesterday", now=0)


def test_omniq_events_lists_filters_and_prints_json(settings: Settings, db_url: str) -> None:
    _run_tasks(settings, ok=2, failing=1)
    runner, cli = CliRunner(), build_cli()
    out = runner.invoke(cli, ["events", "--storage", db_url, "--type", "error,complete", "--json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert sorted(e["type"] for e in listed) == ["complete", "complete", "error"]
    assert {e["level"] for e in listed} == {"INFO", "ERROR"}
    out = runner.invoke(cli, ["events", "--storage", db_url, "--limit", "1", "--json"])
    [last] = json.loads(out.output)
    assert last["type"] == "worker_stopped" and last["task_id"] is None
    out = runner.invoke(cli, ["events", "--storage", db_url, "--type", "error"])
    assert out.exit_code == 0 and "error" in out.output
    out = runner.invoke(cli, ["events", "--storage", db_url, "--type", "bogus"])
    assert out.exit_code != 0 and "unknown event type 'bogus'" in str(out.exception)


# -- subscription across processes ------------------------------------------------------------
@pytest.mark.slow
def test_a_subscriber_sees_events_of_a_separate_worker_process(
    settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    spawn_worker(db_url)
    with TaskQueue(settings=settings, workers=0) as queue:
        got: list[TaskEvent] = []
        ready = threading.Event()

        def follow() -> None:
            for event in queue.events(type=["executing", "complete", "worker_started"]):
                got.append(event)
                ready.set()
                if event.type is EventType.COMPLETE:
                    return

        task_id = queue.enqueue(e2e_tasks.add, args=(20, 22))
        follower = threading.Thread(target=follow)
        follower.start()
        assert queue.get_result(task_id, timeout=20) == 42
        follower.join(30)
        assert not follower.is_alive()
    kinds = [(e.type, e.task_id) for e in got]
    assert (EventType.EXECUTING, task_id) in kinds and kinds[-1] == (EventType.COMPLETE, task_id)
    assert len({e.id for e in got}) == len(got)
    worker_ids = {e.worker_id for e in got}
    assert len(worker_ids) == 1 and worker_ids != {None}  # all from the worker process


@pytest.mark.slow
def test_omniq_events_follow_prints_events_of_another_process(
    settings: Settings, db_url: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "omniq", "events", "--storage", db_url]
    command += ["--follow", "--json", "--type", "complete", "--since", "10m"]
    with open(tmp_path / "follow.log", "w") as stderr:
        follower = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: list[str] = []
    assert follower.stdout is not None
    reader = threading.Thread(target=lambda: lines.append(follower.stdout.readline()))
    reader.start()
    try:
        with TaskQueue(settings=settings) as queue:
            task_id = queue.enqueue(e2e_tasks.add, args=(1, 1))
            assert queue.get_result(task_id, timeout=20) == 2
        reader.join(30)
        assert lines, (tmp_path / "follow.log").read_text()
        assert json.loads(lines[0])["task_id"] == task_id
    finally:
        follower.kill()
        follower.wait()
        reader.join()
        follower.stdout.close()

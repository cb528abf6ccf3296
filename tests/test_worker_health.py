"""Worker health records with real SQLite files and real ``omniq worker`` processes.

Each worker registers when it starts, refreshes its record every ``OMNIQ_WORKER_HEARTBEAT``
seconds, says ``stopping`` while it drains, removes its record on a clean stop, and a killed one
disappears once its record expires (three heartbeats). Nothing here asserts on durations: every
wait polls for a state with a generous deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import health_tasks
import pytest

from omniq import AsyncTaskQueue, TaskQueue
from omniq._setup import create_backend
from omniq.config import Settings, load_settings
from omniq.errors import BackendError, TaskFailedError
from omniq.models import WorkerInfo, WorkerState
from omniq_sqlite._queries import MIGRATIONS

pytestmark = pytest.mark.slow

Spawn = Callable[..., subprocess.Popen[str]]
T = TypeVar("T")

HEARTBEAT = "0.5"
"""Records expire 1.5 s after a worker's last heartbeat: long enough for a loaded machine."""


def poll(fetch: Callable[[], T], until: Callable[[T], bool], what: str, timeout: float = 30) -> T:
    """Call ``fetch`` until ``until(value)`` holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(0.05)


def cli_workers(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omniq", "workers", "--storage", url, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def workers_json(url: str) -> list[dict[str, Any]]:
    proc = cli_workers(url, "--json")
    assert proc.returncode == 0, proc.stderr
    listed: list[dict[str, Any]] = json.loads(proc.stdout)
    return listed


def spawn(
    spawn_worker: Spawn, url: str, *extra: str, heartbeat: str = HEARTBEAT
) -> subprocess.Popen[str]:
    return spawn_worker(
        url,
        "--import",
        "health_tasks",
        "--executor",
        "thread",
        *extra,
        extra_env={"OMNIQ_WORKER_HEARTBEAT": heartbeat},
    )


def of_pid(workers: list[WorkerInfo], pid: int) -> WorkerInfo | None:
    return next((w for w in workers if w.pid == pid), None)


def test_a_standalone_worker_is_listed_with_its_pid_executors_and_capacity(
    db_url: str, spawn_worker: Spawn
) -> None:
    proc = spawn(spawn_worker, db_url, "-e", "async", "-c", "3", "--queues", "default,mail")
    [listed] = workers_json(db_url)  # registered before it said "ready"
    assert listed["pid"] == proc.pid
    assert listed["host"] == socket.gethostname()
    assert listed["id"].startswith(f"{listed['host']}:{proc.pid}:")
    assert listed["state"] == "running"
    assert listed["queues"] == ["default", "mail"]
    assert [(e["name"], e["concurrency"], e["busy"]) for e in listed["executors"]] == [
        ("thread", 3, 0),
        ("async", 10, 0),  # OMNIQ_ASYNC_WORKERS' default
    ]
    assert listed["capacity"] == 13
    assert listed["running"] == []
    assert listed["counters"] == {
        "claimed": 0,
        "succeeded": 0,
        "failed": 0,
        "retried": 0,
        "cancelled": 0,
        "lost": 0,
    }
    assert listed["started_at"] <= listed["heartbeat_at"] < listed["expires_at"]
    assert listed["expires_at"] == pytest.approx(listed["heartbeat_at"] + 3 * float(HEARTBEAT))
    assert listed["version"]
    # the record is refreshed at every heartbeat
    first_beat = listed["heartbeat_at"]
    poll(
        lambda: workers_json(db_url),
        lambda ws: len(ws) == 1 and ws[0]["heartbeat_at"] > first_beat,
        "a newer heartbeat",
    )
    table = cli_workers(db_url)
    assert table.returncode == 0, table.stderr
    assert listed["id"] in table.stdout
    assert f"{listed['host']}:{proc.pid}" in table.stdout
    assert "thread 0/3" in table.stdout and "async 0/10" in table.stdout


def test_a_running_task_is_listed_then_the_worker_stops_and_disappears(
    settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    proc = spawn(spawn_worker, db_url, "-c", "2")
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(health_tasks.hold, args=(str(started), str(release)))
        busy = poll(
            lambda: of_pid(queue.list_workers(), proc.pid),
            lambda w: w is not None and w.running == (task_id,),
            "the task listed as running",
        )
        assert busy is not None
        [thread] = busy.executors
        assert (thread.name, thread.busy, thread.concurrency) == ("thread", 1, 2)
        assert busy.busy == 1 and busy.counters["claimed"] == 1
        [as_json] = workers_json(db_url)
        assert as_json["running"] == [task_id] and as_json["busy"] == 1

        proc.send_signal(signal.SIGTERM)  # drains: the task keeps running meanwhile
        stopping = poll(
            lambda: of_pid(queue.list_workers(), proc.pid),
            lambda w: w is not None and w.state is WorkerState.STOPPING,
            "the record to say stopping",
        )
        assert stopping is not None and stopping.running == (task_id,)
        release.write_text("go")
        assert proc.wait(timeout=30) == 0
        assert queue.get_result(task_id, timeout=10) == "released"
        assert queue.list_workers() == []  # removed on the clean stop, not left to expire


def test_a_killed_worker_disappears_once_its_record_expires_and_purge_deletes_it(
    settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    proc = spawn(spawn_worker, db_url, heartbeat="0.2")  # expires 0.6 s after its last beat
    db = Path(db_url.removeprefix("sqlite:///"))
    with TaskQueue(settings=settings, workers=0) as queue:
        [alive] = queue.list_workers()
        assert alive.pid == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        poll(queue.list_workers, lambda ws: ws == [], "the dead worker's record to expire")

        async def purge() -> None:
            async with create_backend(db_url) as backend:
                await backend.purge(finished_before=0, events_before=0)

        asyncio.run(purge())
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM omniq_workers").fetchone() == (0,)


def test_counters_and_mean_run_time_per_executor(
    settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    proc = spawn(spawn_worker, db_url, "-e", "async")
    with TaskQueue(settings=settings, workers=0) as queue:
        ok = [queue.enqueue(health_tasks.nap, args=(0.1,), executor="thread") for _ in range(3)]
        bad = queue.enqueue(health_tasks.fail, args=("no",), retries=0, executor="thread")
        assert [queue.get_result(i, timeout=30) for i in ok] == [0.1] * 3
        with pytest.raises(TaskFailedError):
            queue.get_result(bad, timeout=30)
        info = poll(
            lambda: of_pid(queue.list_workers(), proc.pid),
            lambda w: w is not None and w.counters["succeeded"] + w.counters["failed"] == 4,
            "the counters of four finished tasks",
        )
    assert info is not None
    assert {k: info.counters[k] for k in ("claimed", "succeeded", "failed")} == {
        "claimed": 4,
        "succeeded": 3,
        "failed": 1,
    }
    thread, idle = info.executors
    assert (thread.name, thread.started, thread.succeeded, thread.failed) == ("thread", 4, 3, 1)
    assert (thread.busy, thread.cancelled) == (0, 0)
    assert thread.mean_run_seconds == pytest.approx(thread.run_seconds / 4)
    assert thread.mean_run_seconds is not None and thread.mean_run_seconds >= 0.3 / 4  # 3 naps
    assert (idle.name, idle.started, idle.mean_run_seconds) == ("async", 0, None)
    [as_json] = workers_json(db_url)
    by_name = {e["name"]: e for e in as_json["executors"]}
    assert by_name["thread"]["mean_run_seconds"] == pytest.approx(thread.mean_run_seconds)
    assert by_name["async"]["mean_run_seconds"] is None


async def test_embedded_workers_are_listed_by_both_clients(settings: Settings) -> None:
    async with AsyncTaskQueue(settings=settings) as queue:
        assert queue.worker is not None
        [me] = await queue.list_workers()
        assert (me.id, me.pid, me.state) == (queue.worker.worker_id, os.getpid(), "running")
        sync = await asyncio.to_thread(TaskQueue, settings=settings)
        try:
            ids = {w.id for w in await asyncio.to_thread(sync.list_workers)}
            assert sync.async_queue.worker is not None
            assert ids == {me.id, sync.async_queue.worker.worker_id}
        finally:
            await asyncio.to_thread(sync.close)
        assert [w.id for w in await queue.list_workers()] == [me.id]


async def test_a_failing_store_does_not_break_the_worker(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        {}, storage_url=db_url, poll_interval=0.05, lease_seconds=2.0, worker_heartbeat=0.05
    )
    queue = AsyncTaskQueue(settings=settings)
    writes = {"failed": 0}
    real_put = queue.backend.put_worker

    async def broken(info: WorkerInfo) -> None:
        writes["failed"] += 1
        raise BackendError("injected: database is locked")

    monkeypatch.setattr(queue.backend, "put_worker", broken)
    async with queue:  # registering fails: the worker starts anyway
        task_id = await queue.enqueue(health_tasks.nap, args=(0,), executor="thread")
        assert await queue.get_result(task_id, timeout=20) == 0
        assert await queue.list_workers() == []
        while writes["failed"] < 3:  # it keeps trying at each beat
            await asyncio.sleep(0.02)
        monkeypatch.setattr(queue.backend, "put_worker", real_put)
        deadline = time.monotonic() + 20
        while not await queue.list_workers():
            assert time.monotonic() < deadline, "the record never came back"
            await asyncio.sleep(0.02)
        [me] = await queue.list_workers()
        assert me.counters["succeeded"] == 1


def test_the_cli_does_not_create_a_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    url = f"sqlite:///{missing}"
    assert workers_json(url) == []
    table = cli_workers(url)
    assert table.returncode == 0 and "no live workers" in table.stdout
    assert not missing.exists()


async def test_a_version_1_database_is_migrated_to_hold_workers(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    initial = (
        resources.files("omniq_sqlite").joinpath("migrations/0001_initial.sql").read_text("utf-8")
    )
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(initial)
        conn.execute(
            "CREATE TABLE omniq_schema_version (version INTEGER NOT NULL PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at REAL NOT NULL) STRICT"
        )
        conn.execute("INSERT INTO omniq_schema_version VALUES (1, 'initial', 0)")
        conn.commit()
    settings = load_settings({}, storage_url=f"sqlite:///{db}", poll_interval=0.05)
    async with AsyncTaskQueue(settings=settings) as queue:
        [me] = await queue.list_workers()
        assert queue.worker is not None and me.id == queue.worker.worker_id
    with closing(sqlite3.connect(db)) as conn:
        versions = conn.execute("SELECT version, name FROM omniq_schema_version").fetchall()
    assert versions[:3] == [(1, "initial"), (2, "workers"), (3, "schedules")]
    assert versions == [(m.version, m.name) for m in MIGRATIONS]  # every later one too

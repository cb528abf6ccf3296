"""Real ``omniq worker -e gevent`` processes on SQLite, file:// and moto s3:// stores.

Nothing here asserts on elapsed time: concurrency is proven by overlapping (start, end)
intervals recorded by the tasks, heartbeats by leases that never expire (the test process acts
as a second janitor and would recover any lease the worker failed to extend).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent_tasks
import pytest

from omniq import AsyncTaskQueue, TaskCancelledError, TaskFailedError, TaskQueue, TaskState
from omniq._setup import create_backend

pytestmark = pytest.mark.slow

HELPERS = Path(__file__).resolve().parents[3] / "tests" / "helpers"

PATCHED = {
    "socket": True,
    "time": True,
    "select": True,
    "selectors": True,
    "ssl": True,
    "threading": False,  # real OS threads for aiosqlite (see omniq_gevent._monkey)
    "queue": False,
}


def wait_for_text(path: Path, prefix: str, timeout: float = 30.0) -> str:
    """The text of ``path`` once it starts with ``prefix``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()).startswith(prefix):
            return text
        time.sleep(0.02)
    raise AssertionError(f"{path} never started with {prefix!r}")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that contain one common instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = running = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += step
        best = max(best, running)
    return best


def assert_clean_log(log: str) -> None:
    """No monkey-patching warning from gevent or from the executor, no lost lease."""
    lowered = log.lower()
    assert "monkeypatchwarning" not in lowered, log
    assert "monkey-patching" not in lowered, log
    assert "imported before gevent" not in lowered, log
    assert "lease lost" not in lowered and "stopped heartbeating" not in lowered, log
    assert "event loop was blocked" not in lowered, log
    assert "traceback" not in lowered, log


def test_task_outcomes_on_each_store(url: str, workers: Any, tmp_path: Path) -> None:
    # A short lease: a running task learns of its cancellation at the next heartbeat (lease / 3).
    worker = workers.spawn(url, "-e", "gevent", "--lease", "2")
    marker = tmp_path / "victim"
    with TaskQueue(storage_url=url, workers=0) as queue:
        added = queue.enqueue(gevent_tasks.add, args=(2, 40))
        failing = queue.enqueue(gevent_tasks.boom, args=("no such key",), retries=0)
        hanging = queue.enqueue(gevent_tasks.stuck, args=(60.0,), timeout=0.5, retries=0)
        swallowed = queue.enqueue(
            gevent_tasks.swallows_timeout, args=(60.0,), timeout=0.5, retries=0
        )
        inside = queue.enqueue(gevent_tasks.environment)
        coroutine = queue.enqueue(gevent_tasks.coroutine_sum, args=([1, 2, 3],))
        victim = queue.enqueue(gevent_tasks.until_killed, args=(str(marker),), retries=0)

        assert queue.get_result(added, timeout=30) == 42

        with pytest.raises(TaskFailedError) as failed:
            queue.get_result(failing, timeout=30)
        assert failed.value.remote_type == "builtins.KeyError"
        assert "no such key" in failed.value.remote_message

        with pytest.raises(TaskFailedError) as timed_out:
            queue.get_result(hanging, timeout=30)
        assert timed_out.value.remote_type == "omniq.errors.TaskTimeoutError"
        with pytest.raises(TaskFailedError) as returned_late:  # caught its Timeout: still late
            queue.get_result(swallowed, timeout=30)
        assert returned_late.value.remote_type == "omniq.errors.TaskTimeoutError"

        env = queue.get_result(inside, timeout=30)
        assert env["patched"] == PATCHED
        assert env["imported_before_patch"] == []
        assert env["in_greenlet"] is True
        assert env["task_id"] == inside
        assert env["pid"] == worker.proc.pid

        assert queue.get_result(coroutine, timeout=30) == {"sum": 6, "task_id": coroutine}

        wait_for_text(marker, "started")
        assert queue.cancel(victim) is True
        with pytest.raises(TaskCancelledError):
            queue.get_result(victim, timeout=30)
        assert queue.get_task(victim).state is TaskState.CANCELLED
        # The greenlet was killed where it slept: its finally ran with GreenletExit.
        assert wait_for_text(marker, "stopped") == "stopped: GreenletExit"
        assert queue.get_task(hanging).attempt == 1
    assert worker.stop() == 0  # SIGTERM drains and exits cleanly under gevent too
    assert_clean_log(worker.log.read_text())


def test_sleeping_greenlets_run_concurrently(db_url: str, workers: Any) -> None:
    worker = workers.spawn(db_url, "-e", "gevent", env={"OMNIQ_GEVENT_WORKERS": "200"})
    with TaskQueue(storage_url=db_url, workers=0) as queue:
        ids = queue.enqueue_many(gevent_tasks.nap, [(0.5,)] * 200)
        intervals = [tuple(queue.get_result(i, timeout=60)) for i in ids]
    assert len(intervals) == 200
    # One after another, no two would overlap; a thread pool of 8 would reach 8.
    assert max_overlap(intervals) >= 100  # type: ignore[arg-type]
    assert worker.stop() == 0
    assert_clean_log(worker.log.read_text())


async def test_heartbeats_keep_flowing_while_1000_greenlets_sleep(
    db_url: str, workers: Any
) -> None:
    """1,000 tasks sleep three lease periods each; the worker must extend their leases the
    whole time. The test recovers expired leases itself (a second janitor): had the event loop
    stalled for a lease period, a task would be requeued here and run again (attempt 2)."""
    lease = 2.0
    worker = workers.spawn(
        db_url, "-e", "gevent", "--lease", str(lease), env={"OMNIQ_GEVENT_WORKERS": "1000"}
    )
    recovered: list[str] = []
    async with (
        AsyncTaskQueue(storage_url=db_url, workers=0) as queue,
        create_backend(db_url) as janitor,
    ):
        ids = await queue.enqueue_many(gevent_tasks.nap, [(3 * lease,)] * 1000, executor="gevent")
        while True:
            recovered += [t.id for t in await janitor.requeue_expired()]
            counts = await queue.stats()
            if counts.get("success", 0) + counts.get("failed", 0) >= len(ids):
                break
            await asyncio.sleep(0.1)
        tasks = await queue.list_tasks(limit=2000)
        intervals = [await queue.get_result(i, timeout=0) for i in ids]
    assert recovered == []
    assert len(tasks) == 1000
    assert {t.state for t in tasks} == {TaskState.SUCCESS}
    assert {t.attempt for t in tasks} == {1}
    assert max_overlap([tuple(i) for i in intervals]) >= 500  # type: ignore[misc]
    assert worker.stop() == 0
    assert_clean_log(worker.log.read_text())


@pytest.mark.parametrize(
    ("via", "args", "env"),
    [
        ("script", ["-e", "gevent"], {}),
        ("module", ["--executor", "gevent"], {}),
        ("script", ["-e", "async,gevent"], {}),
        ("script", [], {"OMNIQ_DEFAULT_WORKER": "gevent"}),
    ],
    ids=["omniq -e gevent", "python -m omniq --executor gevent", "-e async,gevent", "env default"],
)
def test_every_way_to_start_patches_before_any_import(
    db_url: str, workers: Any, via: str, args: list[str], env: dict[str, str]
) -> None:
    worker = workers.spawn(db_url, *args, env=env, via=via)
    with TaskQueue(storage_url=db_url, workers=0) as queue:
        inside = queue.enqueue(gevent_tasks.environment, executor="gevent")
        env_seen = queue.get_result(inside, timeout=30)
        default = queue.enqueue(gevent_tasks.coroutine_sum, args=([4, 5],))
        assert queue.get_result(default, timeout=30)["sum"] == 9
    assert env_seen["patched"] == PATCHED
    assert env_seen["imported_before_patch"] == []
    assert env_seen["in_greenlet"] is True
    assert worker.stop() == 0
    assert_clean_log(worker.log.read_text())


EMBEDDED = """
import omniq_gevent

omniq_gevent.monkey_patch()

import asyncio, json, sys

import gevent_tasks
from omniq import AsyncTaskQueue


async def main(url):
    async with AsyncTaskQueue(storage_url=url, worker_type="gevent") as queue:
        ids = await queue.enqueue_many(gevent_tasks.nap, [(0.3,)] * 50)
        spans = [await queue.get_result(i, timeout=30) for i in ids]
        env = await queue.get_result(await queue.enqueue(gevent_tasks.environment), timeout=30)
    print(json.dumps({"spans": spans, "env": env}))


asyncio.run(main(sys.argv[1]))
"""


EMBEDDED_SYNC = """
import omniq_gevent

omniq_gevent.monkey_patch()

import json, sys

import gevent_tasks
from omniq import TaskQueue

with TaskQueue(storage_url=sys.argv[1], worker_type="gevent") as queue:
    ids = queue.enqueue_many(gevent_tasks.nap, [(0.3,)] * 50)
    spans = [queue.get_result(i, timeout=30) for i in ids]
    env = queue.get_result(queue.enqueue(gevent_tasks.environment), timeout=30)
print(json.dumps({"spans": spans, "env": env}))
"""


@pytest.mark.parametrize("program", [EMBEDDED, EMBEDDED_SYNC], ids=["async-client", "sync-client"])
def test_an_embedded_worker_after_monkey_patch(db_url: str, program: str) -> None:
    """A program that calls ``omniq_gevent.monkey_patch()`` first can host the executor in the
    embedded worker of an ``AsyncTaskQueue`` whose loop it creates afterwards, or of a
    ``TaskQueue`` (whose portal thread creates its own loop)."""
    out = subprocess.run(
        [sys.executable, "-c", program, db_url],
        env={**os.environ, "PYTHONPATH": str(HELPERS), "OMNIQ_GEVENT_WORKERS": "50"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert_clean_log(out.stderr)
    seen = json.loads(out.stdout)
    assert max_overlap([tuple(span) for span in seen["spans"]]) >= 25  # type: ignore[misc]
    assert seen["env"]["in_greenlet"] is True
    assert seen["env"]["imported_before_patch"] == []
    assert seen["env"]["patched"] == PATCHED

"""The worker's circuit breaker against real SQLite files: a store outage while tasks flow.

Two ways of taking the store away: a wrapper that makes every call the worker's loops make fail
(precise, in-process), and another process holding ``BEGIN EXCLUSIVE`` on the file while a real
``omniq worker`` runs. Nothing asserts on durations: every wait polls for a state.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import e2e_tasks
import pytest

from omniq import AsyncTaskQueue, TaskQueue, TaskState
from omniq.config import Settings, load_settings
from omniq.errors import BackendError
from omniq.models import EventType
from omniq.worker._breaker import BreakerState

Spawn = Callable[..., subprocess.Popen[str]]

WORKER_CALLS = (
    "finish_and_claim",
    "finish",
    "extend_leases",
    "requeue_expired",
    "purge",
    "put_worker",
)


class Outage:
    """Makes every backend call the worker's loops make fail while ``down`` (the client's own
    reads and enqueues keep working)."""

    def __init__(self, backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        self.failed = 0
        for name in WORKER_CALLS:
            monkeypatch.setattr(backend, name, self._wrap(getattr(backend, name)))

    def _wrap(self, real: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.failed += 1
                raise BackendError("injected: disk I/O error")
            return await real(*args, **kwargs)

        return call


async def until(check: Callable[[], Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_outage_opens_the_breaker_keeps_outcomes_and_loses_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = load_settings(
        {},
        storage_url=db_url,
        lease_seconds=30.0,  # no lease expires during the outage: each task runs once
        poll_interval=0.05,
        worker_heartbeat=0.2,
        breaker_threshold=3,
        breaker_max_backoff=0.2,
        async_workers=4,
    )
    async with AsyncTaskQueue(settings=settings) as queue:
        worker = queue.worker
        assert worker is not None
        outage = Outage(queue.backend, monkeypatch)
        marker = tmp_path / "started"
        first = [await queue.enqueue(e2e_tasks.slow, args=(0.5, str(marker)))]
        first += [await queue.enqueue(e2e_tasks.slow, args=(0.5,)) for _ in range(3)]
        await until(marker.exists, "the first task to start")
        outage.down = True
        await until(lambda: worker._breaker.state is not BreakerState.CLOSED, "breaker open")
        # Tasks enqueued during the outage are not claimed; running ones finish and their
        # outcomes wait in memory.
        later = [await queue.enqueue(e2e_tasks.add, args=(i, i)) for i in range(6)]
        await until(lambda: len(worker._outcomes) >= 1, "an outcome kept in memory")
        assert worker.health_info().breaker in ("open", "half_open")
        for task in await queue.backend.get_tasks(later):
            assert task is not None and task.state is TaskState.PENDING
        outage.down = False

        assert [await queue.get_result(i, timeout=30) for i in later] == [0, 2, 4, 6, 8, 10]
        for task_id in first:
            assert (await queue.get_result(task_id, timeout=30))["attempt"] == 1
        await until(lambda: worker._breaker.state is BreakerState.CLOSED, "breaker closed")
        assert worker._breaker.opened >= 1
        assert outage.failed >= 3
        events = await queue.list_events(limit=1000)
        breaker_events = [e for e in events if e.type.value.startswith("circuit_")]
        assert [e.type for e in breaker_events][:2] == [
            EventType.CIRCUIT_OPENED,  # recorded while the store was down, stored once back
            EventType.CIRCUIT_CLOSED,
        ]
        assert "injected: disk I/O error" in breaker_events[0].detail
        assert all(e.task_id is None and e.worker_id == worker.worker_id for e in breaker_events)
        for task_id in first + later:
            types = [e.type for e in events if e.task_id == task_id]
            assert types.count(EventType.COMPLETE) == 1, (task_id, types)
            assert types.count(EventType.EXECUTING) == 1, (task_id, types)

        async def recorded() -> bool:
            (info,) = await queue.list_workers()
            return info.breaker == "closed" and info.breaker_opened >= 1

        deadline = time.monotonic() + 30
        while not await recorded():
            assert time.monotonic() < deadline, "health record never showed the outage"
            await asyncio.sleep(0.05)


async def test_stop_while_the_breaker_is_open_gives_up_promptly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = AsyncTaskQueue(settings=settings)
    await queue.open()
    worker = queue.worker
    assert worker is not None
    task_id = await queue.enqueue(e2e_tasks.slow, args=(0.3,))
    while (await queue.get_task(task_id)).state is not TaskState.RUNNING:
        await asyncio.sleep(0.01)
    outage = Outage(queue.backend, monkeypatch)
    outage.down = True
    await until(lambda: worker._breaker.state is not BreakerState.CLOSED, "breaker open")
    started = time.monotonic()
    await queue.close(grace=1)
    assert time.monotonic() - started < 20
    async with AsyncTaskQueue(settings=settings, workers=0) as reader:
        task = await reader.get_task(task_id)
    assert task.state in (TaskState.RUNNING, TaskState.PENDING)  # recovered after expiry


@pytest.mark.slow
def test_a_worker_process_rides_out_an_exclusive_lock_on_the_file(
    tmp_path: Path, spawn_worker: Spawn
) -> None:
    path = tmp_path / "omniq.db"
    # Calls give up after 50 ms of waiting for the lock, so failures come quickly.
    url = f"sqlite:///{path}?busy_timeout=50"
    worker = spawn_worker(
        url,
        "--executor",
        "thread",
        "-c",
        "4",
        extra_env={
            "OMNIQ_BREAKER_THRESHOLD": "2",
            "OMNIQ_BREAKER_MAX_BACKOFF": "0.5",
            "OMNIQ_WORKER_HEARTBEAT": "0.5",
            "OMNIQ_LEASE_SECONDS": "30",
        },
    )
    log = tmp_path / "worker-0.log"
    settings = load_settings({}, storage_url=f"sqlite:///{path}")
    with TaskQueue(settings=settings, workers=0) as queue:
        ids = queue.enqueue_many(e2e_tasks.slow, [(0.2,) for _ in range(40)])
        # Hold the write lock while tasks are due and running.
        with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as lock:
            lock.execute("BEGIN EXCLUSIVE")
            deadline = time.monotonic() + 30
            while "circuit breaker open" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            time.sleep(2.0)  # stay down through a few failed probes
            lock.execute("COMMIT")
        assert worker.poll() is None  # it kept running
        results = [queue.get_result(i, timeout=60) for i in ids]
        assert all(r["attempt"] == 1 for r in results)
        assert {queue.get_task(i).state for i in ids} == {TaskState.SUCCESS}
        deadline = time.monotonic() + 30
        while True:
            events = queue.list_events(limit=10_000)
            completes = [e.task_id for e in events if e.type is EventType.COMPLETE]
            if len(completes) >= len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert sorted(completes) == sorted(ids)  # every task completed exactly once
    deadline = time.monotonic() + 30
    while True:
        proc = subprocess.run(
            [sys.executable, "-m", "omniq", "workers", "--storage", url, "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        (record,) = json.loads(proc.stdout)
        if record["breaker"] == "closed" and record["breaker_opened"] >= 1:
            break
        assert time.monotonic() < deadline, record
        time.sleep(0.1)
    assert "circuit breaker closed" in log.read_text()

"""Schedules end to end: the client API, persistence, several schedulers, the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import e2e_tasks
import pytest

from omniq import AsyncTaskQueue, TaskQueue
from omniq._ids import tick_task_id
from omniq.backend import Backend, TaskQuery
from omniq.clock import ManualClock
from omniq.config import Settings, load_settings
from omniq.errors import ConfigError, ScheduleNotFoundError
from omniq.models import ScheduleKind, TaskState
from omniq.schedules import Scheduler

HELPERS = str(Path(__file__).parent / "helpers")
START = 1_900_000_020.0  # a whole minute


def producer(url: str, clock: ManualClock) -> AsyncTaskQueue:
    return AsyncTaskQueue(storage_url=url, workers=0, clock=clock)


async def all_tasks(backend: Backend) -> list[str]:
    return sorted(t.id for t in await backend.list_tasks(TaskQuery(limit=10_000)))


@pytest.mark.asyncio
async def test_add_list_pause_resume_remove_and_next_runs(db_url: str) -> None:
    clock = ManualClock(START)
    async with producer(db_url, clock) as q:
        s = await q.add_schedule(e2e_tasks.add, every=dt.timedelta(minutes=5), args=(1, 2))
        assert s.id == "e2e_tasks:add" and s.kind is ScheduleKind.INTERVAL
        assert s.interval == 300.0 and s.next_run_at is not None and s.next_run_at > START
        c = await q.add_schedule(
            "e2e_tasks:echo", cron="30 9 * * *", id="daily", timezone="Europe/Paris", args=("x",)
        )
        assert [x.id for x in await q.list_schedules()] == ["daily", "e2e_tasks:add"]
        runs = await q.next_runs("daily", n=3)
        assert len(runs) == 3 and all(r.tzinfo == ZoneInfo("Europe/Paris") for r in runs)
        assert runs[0].timestamp() == c.next_run_at
        assert all((r.hour, r.minute) == (9, 30) for r in runs)
        assert (await q.pause_schedule("daily")).paused is True
        assert (await q.get_schedule("daily")).paused is True
        assert (await q.resume_schedule("daily")).paused is False
        assert await q.remove_schedule("daily") is True
        assert await q.remove_schedule("daily") is False
        with pytest.raises(ScheduleNotFoundError):
            await q.next_runs("daily")
        assert [x.id for x in await q.list_schedules()] == ["e2e_tasks:add"]


@pytest.mark.asyncio
async def test_add_schedule_rejects_bad_definitions(db_url: str) -> None:
    clock = ManualClock(START)
    async with producer(db_url, clock) as q:
        with pytest.raises(ConfigError, match="exactly one"):
            await q.add_schedule(e2e_tasks.add, cron="* * * * *", every=5)
        with pytest.raises(ConfigError, match="exactly one"):
            await q.add_schedule(e2e_tasks.add)
        with pytest.raises(ConfigError, match="naive"):
            await q.add_schedule(e2e_tasks.add, at=dt.datetime(2030, 1, 1))
        with pytest.raises(ConfigError, match="naive"):
            await q.add_schedule(e2e_tasks.add, every=5, start_at=dt.datetime(2030, 1, 1))
        with pytest.raises(ConfigError, match="cron"):
            await q.add_schedule(e2e_tasks.add, cron="not a cron")
        with pytest.raises(ConfigError, match="misfire"):
            await q.add_schedule(e2e_tasks.add, every=5, misfire="sometimes")
        with pytest.raises(ConfigError, match="import"):
            await q.add_schedule(lambda: None, every=5)
        assert await q.list_schedules() == []


@pytest.mark.asyncio
async def test_re_adding_keeps_the_next_run_unless_the_timing_changes(db_url: str) -> None:
    clock = ManualClock(START)
    async with producer(db_url, clock) as q:
        first = await q.add_schedule(e2e_tasks.add, every=60, args=(1, 2), id="s")
        clock.advance(30)
        same = await q.add_schedule(e2e_tasks.add, every=60, args=(5, 6), id="s", queue="q2")
        assert same.next_run_at == first.next_run_at and same.queue == "q2"
        await q.pause_schedule("s")
        changed = await q.add_schedule(e2e_tasks.add, every=7, args=(1, 2), id="s")
        assert changed.interval == 7.0 and changed.paused is True
        assert changed.next_run_at is not None and changed.next_run_at > clock.now()


@pytest.mark.asyncio
async def test_schedules_survive_a_restart_and_fire(db_url: str) -> None:
    clock = ManualClock(START)
    async with producer(db_url, clock) as q:
        s = await q.add_schedule(e2e_tasks.add, every=60, args=(1, 2), id="persist")
    assert s.next_run_at is not None
    clock.set(s.next_run_at)
    async with producer(db_url, clock) as q2:
        assert [x.id for x in await q2.list_schedules()] == ["persist"]
        assert await Scheduler(q2.backend).run_due() == s.next_run_at + 60
        [task] = await q2.list_tasks()
        assert task.id == tick_task_id("persist", s.next_run_at)
        assert task.func == "e2e_tasks:add" and task.state is TaskState.PENDING
        assert q2.serializer.loads_call(task.payload) == ((1, 2), {})
        stored = await q2.get_schedule("persist")
        assert stored.last_run_at == s.next_run_at


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["sqlite", "memory", "file"])
async def test_three_schedulers_one_task_per_tick(kind: str, tmp_path: Path, db_url: str) -> None:
    url = {
        "sqlite": db_url,
        "memory": f"memory://sched-{tmp_path.name}",
        "file": f"file://{tmp_path / 'store'}",
    }[kind]
    clock = ManualClock(START)
    queues = [producer(url, clock) for _ in range(3)]
    for q in queues:
        await q.open()
    try:
        s = await queues[0].add_schedule(e2e_tasks.add, every=60, args=(1, 2), id="tick")
        assert s.next_run_at == START + 60
        schedulers = [Scheduler(q.backend) for q in queues]
        for _ in range(6):
            clock.advance(60)
            await asyncio.gather(*(sch.run_due() for sch in schedulers))
        # A pause of 5 minutes (nobody ran), then catch-up per misfire policy (run_once).
        clock.advance(300)
        await asyncio.gather(*(sch.run_due() for sch in schedulers))
        expected = [tick_task_id("tick", START + 60 * k) for k in range(1, 7)]
        expected.append(tick_task_id("tick", START + 660))
        assert await all_tasks(queues[0].backend) == sorted(expected)
        assert sum(sch.fired for sch in schedulers) == 7
    finally:
        for q in queues:
            await q.close()


@pytest.mark.asyncio
async def test_run_all_catches_up_every_missed_tick(db_url: str) -> None:
    clock = ManualClock(START)
    async with producer(db_url, clock) as q:
        await q.add_schedule(e2e_tasks.add, every=60, args=(1, 2), id="all", misfire="run_all")
        clock.advance(60 * 4)
        await Scheduler(q.backend).run_due()
        expected = sorted(tick_task_id("all", START + 60 * k) for k in range(1, 5))
        assert await all_tasks(q.backend) == expected
        assert (await q.get_schedule("all")).next_run_at == START + 300


@pytest.mark.asyncio
async def test_a_paused_schedule_produces_nothing(db_url: str) -> None:
    clock = ManualClock(START)
    async with producer(db_url, clock) as q:
        await q.add_schedule(e2e_tasks.add, every=60, args=(1, 2), id="p")
        await q.pause_schedule("p")
        clock.advance(600)
        assert await Scheduler(q.backend).run_due() is None
        assert await all_tasks(q.backend) == []


@pytest.mark.asyncio
async def test_a_one_shot_schedule_fires_once(db_url: str) -> None:
    clock = ManualClock(START)
    async with producer(db_url, clock) as q:
        when = dt.datetime.fromtimestamp(START + 90, dt.UTC)
        s = await q.add_schedule(e2e_tasks.add, at=when, args=(1, 2), id="once")
        assert s.next_run_at == START + 90
        clock.advance(100)
        sch = Scheduler(q.backend)
        await sch.run_due()
        await sch.run_due()
        assert await all_tasks(q.backend) == [tick_task_id("once", START + 90)]
        assert (await q.get_schedule("once")).next_run_at is None
        assert await q.next_runs("once") == []


def test_embedded_workers_run_a_schedule_for_real(settings: Settings, db_url: str) -> None:
    """Two sync clients with embedded workers (real clock): one task per tick, all run."""
    with TaskQueue(settings=settings) as a, TaskQueue(settings=settings) as b:
        a.add_schedule(e2e_tasks.add, every=0.2, args=(2, 3), id="fast")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = a.list_tasks(state="success")
            if len(done) >= 3:
                break
            time.sleep(0.05)
        a.remove_schedule("fast")
        tasks = a.list_tasks(limit=1000)
        assert len(done) >= 3
        ticks = sorted(t.run_at for t in tasks)
        assert len(set(ticks)) == len(ticks)  # never two tasks for one tick
        assert all(a.get_result(t.id, timeout=5) == 5 for t in done)
        assert b.list_schedules() == []


def test_scheduler_can_be_switched_off(db_url: str) -> None:
    s = load_settings({"OMNIQ_SCHEDULER_ENABLED": "false"}, storage_url=db_url)
    with TaskQueue(settings=s) as q:
        assert q.async_queue.worker is not None and q.async_queue.worker.scheduler is None


def omniq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omniq", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": HELPERS, "COLUMNS": "200"},
    )


def test_cli_schedules(settings: Settings, db_url: str) -> None:
    with TaskQueue(settings=settings, workers=0) as q:
        q.add_schedule(e2e_tasks.add, cron="0 8 * * 1-5", args=(1, 2), id="weekday")
    listing = omniq("schedules", "list", "--storage", db_url)
    assert listing.returncode == 0, listing.stderr
    assert "weekday" in listing.stdout and "cron 0 8 * * 1-5" in listing.stdout
    nxt = omniq("schedules", "next", "weekday", "-n", "3", "--storage", db_url)
    lines = nxt.stdout.split()
    assert nxt.returncode == 0 and len(lines) == 3
    assert all(dt.datetime.fromisoformat(x).hour == 8 for x in lines)
    assert omniq("schedules", "pause", "weekday", "--storage", db_url).returncode == 0
    shown = omniq("schedules", "show", "weekday", "--storage", db_url)
    assert "paused" in shown.stdout and "True" in shown.stdout
    assert "resumed" in omniq("schedules", "resume", "weekday", "--storage", db_url).stdout
    assert omniq("schedules", "remove", "weekday", "--storage", db_url).returncode == 0
    missing = omniq("schedules", "show", "weekday", "--storage", db_url)
    assert missing.returncode == 2 and "no schedule with id 'weekday'" in missing.stderr

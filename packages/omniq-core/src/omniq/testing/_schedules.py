"""Conformance: schedules (upsert, read, list, delete) and the exactly-once tick commit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from omniq._ids import tick_task_id
from omniq.backend import Backend, TaskQuery
from omniq.clock import ManualClock
from omniq.models import MisfirePolicy, Schedule, ScheduleKind, TaskState
from omniq.schedules import Scheduler, TaskDefaults, build_tick_tasks
from omniq.testing._fixtures import NOOP_PAYLOAD, OpenBackend
from omniq.testing._support import requires

__all__ = ["ScheduleConformance", "make_schedule"]


def make_schedule(clock: ManualClock, schedule_id: str = "every-minute", **fields: Any) -> Schedule:
    """An interval schedule (60 s) due one minute from now, with non-default fields."""
    base: dict[str, Any] = {
        "id": schedule_id,
        "func": "omniq.testing.tasks:echo",
        "payload": NOOP_PAYLOAD,
        "kind": ScheduleKind.INTERVAL,
        "interval": 60.0,
        "timezone": "Europe/Paris",
        "next_run_at": clock.now() + 60.0,
        "queue": "reports",
        "priority": 3,
        "misfire": MisfirePolicy.RUN_ALL,
        "misfire_limit": 7,
    }
    base.update(fields)
    return Schedule(**base)


def _tasks(schedule: Schedule, tick: float, now: float) -> list[Any]:
    return build_tick_tasks(schedule, [tick], now=now, defaults=TaskDefaults())


class ScheduleConformance:
    """Schedules: definitions are stored whole; each tick is committed exactly once."""

    @pytest.mark.asyncio
    async def test_schedules_upsert_get_list_delete(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        b = make_schedule(omniq_clock, "b")
        a = make_schedule(omniq_clock, "a", kind=ScheduleKind.CRON, cron="0 * * * *", paused=True)
        await omniq_backend.put_schedule(b)
        await omniq_backend.put_schedule(a)
        assert await omniq_backend.get_schedules(["a", "missing", "b"]) == [a, None, b]
        assert await omniq_backend.list_schedules() == [a, b]
        changed = make_schedule(omniq_clock, "b", interval=5.0, next_run_at=None)
        await omniq_backend.put_schedule(changed)
        assert await omniq_backend.get_schedules(["b"]) == [changed]
        assert await omniq_backend.delete_schedule("b") is True
        assert await omniq_backend.delete_schedule("b") is False
        assert await omniq_backend.list_schedules() == [a]
        assert await omniq_backend.get_schedules([]) == []

    @pytest.mark.asyncio
    async def test_fire_schedule_advances_and_enqueues(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        schedule = make_schedule(omniq_clock)
        tick = schedule.next_run_at
        assert tick is not None
        await omniq_backend.put_schedule(schedule)
        omniq_clock.advance(60.0)
        tasks = _tasks(schedule, tick, omniq_clock.now())
        assert await omniq_backend.fire_schedule(schedule.id, tick, tick + 60.0, tasks) is True
        [stored] = await omniq_backend.get_schedules([schedule.id])
        assert stored is not None
        assert (stored.next_run_at, stored.last_run_at) == (tick + 60.0, tick)
        [task] = await omniq_backend.get_tasks([tasks[0].id])
        assert task is not None and task.state is TaskState.PENDING
        assert task.queue == "reports" and task.priority == 3

    @pytest.mark.asyncio
    async def test_a_stale_tick_is_refused(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        schedule = make_schedule(omniq_clock)
        tick = schedule.next_run_at
        assert tick is not None
        await omniq_backend.put_schedule(schedule)
        omniq_clock.advance(60.0)
        now = omniq_clock.now()
        assert await omniq_backend.fire_schedule(
            schedule.id, tick, tick + 60.0, _tasks(schedule, tick, now)
        )
        again = _tasks(schedule, tick + 1.0, now)  # other ids: must not be enqueued
        assert not await omniq_backend.fire_schedule(schedule.id, tick, tick + 60.0, again)
        assert not await omniq_backend.fire_schedule(schedule.id, tick - 60.0, tick, again)
        assert not await omniq_backend.fire_schedule("missing", tick, tick + 60.0, again)
        assert await omniq_backend.get_tasks([again[0].id]) == [None]
        [stored] = await omniq_backend.get_schedules([schedule.id])
        assert stored is not None and stored.next_run_at == tick + 60.0

    @pytest.mark.asyncio
    async def test_a_paused_schedule_does_not_fire(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        schedule = make_schedule(omniq_clock, paused=True)
        tick = schedule.next_run_at
        assert tick is not None
        await omniq_backend.put_schedule(schedule)
        omniq_clock.advance(60.0)
        tasks = _tasks(schedule, tick, omniq_clock.now())
        assert not await omniq_backend.fire_schedule(schedule.id, tick, tick + 60.0, tasks)
        assert await omniq_backend.get_tasks([tasks[0].id]) == [None]

    @pytest.mark.asyncio
    async def test_eight_concurrent_fires_of_one_tick_commit_once(
        self, omniq_open_backend: OpenBackend, omniq_clock: ManualClock
    ) -> None:
        backends = [await omniq_open_backend() for _ in range(4)]
        schedule = make_schedule(omniq_clock)
        tick = schedule.next_run_at
        assert tick is not None
        await backends[0].put_schedule(schedule)
        omniq_clock.advance(60.0)
        tasks = _tasks(schedule, tick, omniq_clock.now())
        won = await asyncio.gather(
            *(
                backends[i % len(backends)].fire_schedule(schedule.id, tick, tick + 60.0, tasks)
                for i in range(8)
            )
        )
        assert sorted(won) == [False] * 7 + [True]
        listed = await backends[0].list_tasks(TaskQuery())
        assert [t.id for t in listed] == [tasks[0].id]

    @pytest.mark.asyncio
    async def test_tick_task_ids_are_deterministic_and_time_ordered(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        schedule = make_schedule(omniq_clock)
        now = omniq_clock.now()
        first = tick_task_id(schedule.id, now)
        assert first == tick_task_id(schedule.id, now)
        assert first != tick_task_id("other", now)
        assert first < tick_task_id(schedule.id, now + 1.0)
        # Enqueueing a tick's task twice stores it once.
        [task] = _tasks(schedule, now, now)
        assert task.id == first
        await omniq_backend.enqueue([task])
        await omniq_backend.enqueue(_tasks(schedule, now, now))
        assert [t.id for t in await omniq_backend.list_tasks(TaskQuery())] == [first]

    @pytest.mark.asyncio
    async def test_three_schedulers_make_one_task_per_tick(
        self, omniq_open_backend: OpenBackend, omniq_clock: ManualClock
    ) -> None:
        backends = [await omniq_open_backend() for _ in range(3)]
        schedule = make_schedule(omniq_clock, start_at=omniq_clock.now())
        await backends[0].put_schedule(schedule)
        schedulers = [Scheduler(b) for b in backends]
        expected = []
        for _ in range(5):
            omniq_clock.advance(60.0)
            expected.append(tick_task_id(schedule.id, omniq_clock.now()))
            await asyncio.gather(*(s.run_due() for s in schedulers))
        assert sum(s.fired for s in schedulers) == 5
        listed = await backends[0].list_tasks(TaskQuery())
        assert sorted(t.id for t in listed) == sorted(expected)
        [stored] = await backends[0].get_schedules([schedule.id])
        assert stored is not None and stored.next_run_at == omniq_clock.now() + 60.0

    @pytest.mark.asyncio
    async def test_schedulers_in_several_processes_commit_each_tick_once(
        self, omniq_backend: Backend, backend_url: str, omniq_clock: ManualClock
    ) -> None:
        requires(omniq_backend, "cross_process")
        first, count = 1_000_000.0, 40
        schedule = make_schedule(omniq_clock, "multi", interval=1.0, next_run_at=first)
        await omniq_backend.put_schedule(schedule)
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "omniq.testing._ticker",
                backend_url,
                schedule.id,
                str(first + count),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(3)
        ]
        outputs = await asyncio.gather(*(p.communicate() for p in procs))
        errors = "\n".join(err.decode() for _, err in outputs)
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        won = Counter(float(x) for out, _ in outputs for x in out.decode().split())
        assert sorted(won) == [first + k for k in range(count)]
        assert max(won.values()) == 1, "a tick was committed by two processes"
        listed = await omniq_backend.list_tasks(TaskQuery(limit=1000))
        assert sorted(t.id for t in listed) == sorted(
            tick_task_id(schedule.id, first + k) for k in range(count)
        )

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("cron", "day_start", "expected_utc"),
        [
            # 02:30 does not exist in Berlin on 2024-03-31: one run, right after the gap (03:00
            # CEST = 01:00 UTC); the day after, 02:30 CEST = 00:30 UTC.
            (
                "30 2 * * *",
                "2024-03-30T12:00:00+00:00",
                ["2024-03-31T01:00:00+00:00", "2024-04-01T00:30:00+00:00"],
            ),
            # 02:30 happens twice in Berlin on 2024-10-27: one run, at the first (CEST, 00:30
            # UTC); the day after, 02:30 CET = 01:30 UTC.
            (
                "30 2 * * *",
                "2024-10-26T12:00:00+00:00",
                ["2024-10-27T00:30:00+00:00", "2024-10-28T01:30:00+00:00"],
            ),
        ],
        ids=["spring-gap", "autumn-overlap"],
    )
    async def test_daylight_saving_ticks_fire_once_with_three_schedulers(
        self,
        omniq_open_backend: OpenBackend,
        omniq_clock: ManualClock,
        cron: str,
        day_start: str,
        expected_utc: list[str],
    ) -> None:
        from datetime import datetime

        from omniq.schedules import next_fire_after

        omniq_clock.set(datetime.fromisoformat(day_start).timestamp())
        backends = [await omniq_open_backend() for _ in range(3)]
        schedule = make_schedule(
            omniq_clock,
            schedule_id="nightly",
            kind=ScheduleKind.CRON,
            cron=cron,
            interval=None,
            timezone="Europe/Berlin",
            misfire=MisfirePolicy.RUN_ONCE,
        )
        schedule.next_run_at = next_fire_after(schedule, omniq_clock.now())
        await backends[0].put_schedule(schedule)
        schedulers = [Scheduler(b) for b in backends]
        for _ in range(40 * 4):  # 40 hours in steps of 15 minutes
            omniq_clock.advance(900.0)
            await asyncio.gather(*(s.run_due() for s in schedulers))
        ticks = [datetime.fromisoformat(t).timestamp() for t in expected_utc]
        listed = await backends[0].list_tasks(TaskQuery())
        assert sorted(t.id for t in listed) == sorted(tick_task_id("nightly", t) for t in ticks)
        assert sum(s.fired for s in schedulers) == len(ticks)

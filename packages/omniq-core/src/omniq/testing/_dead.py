"""Conformance: retries with backoff and the dead-letter queue (``Backend.requeue``, purge's
``failed_before``), at the store and through both clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from omniq.backend import Backend, TaskQuery
from omniq.clock import ManualClock
from omniq.errors import LeaseLostError, TaskFailedError
from omniq.models import ErrorInfo, EventType, Task, TaskState
from omniq.testing import tasks
from omniq.testing._fixtures import MakeTask
from omniq.testing._support import claim, outcome

__all__ = ["DeadLetterConformance"]

BOOM = ErrorInfo(type="builtins.ValueError", message="boom")


async def _dead(backend: Backend, make: MakeTask, **fields: Any) -> Task:
    """A task that ran once and failed for good (now, by the backend's clock)."""
    task = make(**fields)
    await backend.enqueue([task])
    [run] = await claim(backend, limit=1, queues=(task.queue,))
    assert run.id == task.id
    now = backend.clock.now()
    await backend.finish([outcome(run, TaskState.FAILED, error=BOOM, finished_at=now)])
    [got] = await backend.get_tasks([task.id])
    assert got is not None and got.state is TaskState.FAILED
    return got


async def _wait_for(
    client: Any, task_id: str, check: Callable[[Task], bool], timeout: float = 20.0
) -> Task:
    deadline = time.monotonic() + timeout
    while True:
        task: Task = await client.call("get_task", task_id)
        if check(task):
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} never got there; last seen: {task}")
        await asyncio.sleep(0.02)


async def _event_kinds(
    client: Any, task_id: str, *, until: EventType, timeout: float = 20.0
) -> list[EventType]:
    """The task's event types once one of type ``until`` was recorded (the worker records an
    outcome's event right after storing it, so a reader may see the state first)."""
    deadline = time.monotonic() + timeout
    while True:
        events = await client.call("list_events", task_id=task_id, limit=1000)
        kinds = [e.type for e in events]
        if until in kinds or time.monotonic() > deadline:
            return kinds
        await asyncio.sleep(0.02)


class DeadLetterConformance:
    """``requeue`` puts only failed tasks back, with the attempt kept and a fresh retry budget;
    purge keeps failed tasks until ``failed_before``; retries back off as configured."""

    @pytest.mark.asyncio
    async def test_requeue_puts_only_failed_tasks_back_with_a_fresh_budget(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        dead = await _dead(omniq_backend, omniq_make_task, max_retries=2)
        done = omniq_make_task()
        queued = omniq_make_task()
        await omniq_backend.enqueue([done])
        [run] = await claim(omniq_backend)
        await omniq_backend.finish([outcome(run, result=b"ok")])
        await omniq_backend.enqueue([queued])
        omniq_clock.advance(5)
        now = omniq_clock.now()
        got = await omniq_backend.requeue(
            [dead.id, done.id, queued.id, "unknown", dead.id], now=now
        )
        assert [t.id for t in got] == [dead.id]
        [back] = got
        assert back.state is TaskState.PENDING
        assert back.run_at == now and back.error is None and back.finished_at is None
        assert back.attempt == dead.attempt == 1  # fencing tokens never repeat
        assert back.released == back.attempt and back.runs_used == 0
        [stored] = await omniq_backend.get_tasks([dead.id])
        assert stored is not None and stored.state is TaskState.PENDING and stored.runs_used == 0
        others = await omniq_backend.get_tasks([done.id, queued.id])
        assert [t.state if t else None for t in others] == [TaskState.SUCCESS, TaskState.PENDING]
        # idempotent: a second requeue finds nothing failed
        assert await omniq_backend.requeue([dead.id], now=now) == []
        # claimable again, with the next attempt number
        claimed = {t.id: t for t in await claim(omniq_backend, limit=10, worker_id="w2")}
        assert set(claimed) == {dead.id, queued.id}
        again = claimed[dead.id]
        assert [again.id, again.attempt, again.runs_used] == [dead.id, 2, 1]

    @pytest.mark.asyncio
    async def test_a_stale_outcome_cannot_touch_a_requeued_task(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        dead = await _dead(omniq_backend, omniq_make_task)
        [back] = await omniq_backend.requeue([dead.id])
        with pytest.raises(LeaseLostError):
            await omniq_backend.extend_leases([(dead.id, dead.attempt)], lease=30)
        with pytest.raises(LeaseLostError):
            await omniq_backend.finish([outcome(dead, result=b"late")])
        [after] = await omniq_backend.get_tasks([dead.id])
        assert after is not None and after.state is TaskState.PENDING
        [run] = await claim(omniq_backend)
        assert run.attempt == back.attempt + 1
        await omniq_backend.finish([outcome(run, result=b"ok")])
        [ok] = await omniq_backend.get_results([dead.id])
        assert ok is not None and ok.data == b"ok"

    @pytest.mark.asyncio
    async def test_purge_keeps_failed_tasks_until_failed_before(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        start = omniq_clock.now()
        ok, dead = omniq_make_task(), omniq_make_task()
        await omniq_backend.enqueue([ok, dead])
        runs = {t.id: t for t in await claim(omniq_backend)}
        await omniq_backend.finish(
            [
                outcome(runs[ok.id], result=b"o", finished_at=start),
                outcome(runs[dead.id], TaskState.FAILED, error=BOOM, finished_at=start),
            ]
        )
        tasks_deleted, _ = await omniq_backend.purge(
            finished_before=start + 10, events_before=start, failed_before=start - 10
        )
        assert tasks_deleted == 1
        left = await omniq_backend.list_tasks(TaskQuery())
        assert [t.id for t in left] == [dead.id]
        tasks_deleted, _ = await omniq_backend.purge(
            finished_before=start - 10, events_before=start, failed_before=start + 10
        )
        assert tasks_deleted == 1
        assert await omniq_backend.list_tasks(TaskQuery()) == []

    @pytest.mark.asyncio
    async def test_purge_without_failed_before_treats_failed_like_the_rest(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        dead = await _dead(omniq_backend, omniq_make_task)
        assert dead.finished_at is not None
        deleted, _ = await omniq_backend.purge(
            finished_before=dead.finished_at + 1, events_before=0.0
        )
        assert deleted == 1

    @pytest.mark.asyncio
    async def test_retries_back_off_then_the_task_is_dead_then_requeued_and_succeeds(
        self, omniq_make_client: Callable[..., Any], omniq_clock: ManualClock, tmp_path: Path
    ) -> None:
        client = await omniq_make_client()
        flag, runs = tmp_path / "flag", tmp_path / "runs"
        task_id = await client.call(
            "enqueue",
            tasks.fail_until,
            args=(str(flag), str(runs)),
            retries=3,
            retry_delay=10,
            retry_backoff=2,
            retry_max_delay=1000,
            retry_jitter=False,
        )
        delays: list[float] = []
        for run in range(1, 4):

            def retrying(t: Task, run: int = run) -> bool:
                return t.state is TaskState.SCHEDULED and t.attempt == run

            task = await _wait_for(client, task_id, retrying)
            delays.append(task.run_at - omniq_clock.now())  # the clock stands still meanwhile
            omniq_clock.advance(task.run_at - omniq_clock.now())
        assert delays == pytest.approx([10.0, 20.0, 40.0])
        dead = await _wait_for(client, task_id, lambda t: t.state is TaskState.FAILED)
        assert dead.attempt == 4 and runs.read_text() == "4"
        assert dead.error is not None and dead.error.type == "builtins.ValueError"
        with pytest.raises(TaskFailedError):
            await client.call("get_result", task_id, timeout=0)
        assert task_id in [t.id for t in await client.call("list_dead")]
        kinds = await _event_kinds(client, task_id, until=EventType.ERROR)
        assert [k for k in kinds if k in (EventType.RETRY, EventType.ERROR)] == [
            EventType.RETRY
        ] * 3 + [EventType.ERROR]
        flag.write_text("go")
        assert await client.call("requeue_dead", task_id) is True
        assert await client.call("requeue_dead", task_id) is False
        assert await client.call("get_result", task_id, timeout=20) == 5
        assert (await client.call("get_task", task_id)).attempt == 5
        kinds = await _event_kinds(client, task_id, until=EventType.COMPLETE)
        assert kinds[-3:] == [EventType.REQUEUED, EventType.EXECUTING, EventType.COMPLETE]
        assert task_id not in [t.id for t in await client.call("list_dead")]

    @pytest.mark.asyncio
    async def test_requeue_all_and_purge_dead_through_the_client(
        self,
        omniq_make_client: Callable[..., Any],
        omniq_backend: Backend,
        omniq_make_task: MakeTask,
        omniq_clock: ManualClock,
    ) -> None:
        client = await omniq_make_client()  # its worker serves "default" only
        for q in ("a", "a", "b"):
            await _dead(omniq_backend, omniq_make_task, queue=q)
        assert len(await client.call("list_dead")) == 3
        assert len(await client.call("list_dead", queue="a")) == 2
        assert await client.call("requeue_dead_all", queue="b", error_type="KeyError") == 0
        assert await client.call("requeue_dead_all", queue="b", error_type="ValueError") == 1
        [b] = await client.call("list_tasks", queue="b")
        assert b.state is TaskState.PENDING and b.runs_used == 0
        omniq_clock.advance(100)
        assert await client.call("purge_dead", older_than=1000) == 0
        assert await client.call("purge_dead", older_than=50) == 2
        assert await client.call("list_dead") == []
        assert len(await client.call("list_tasks")) == 1

"""Task graphs end to end: a 1,000-task fan-in surviving a killed worker, and waiting for
other tasks from inside a task without deadlocking a full worker."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

import graph_tasks
import msgspec
import pytest

from omniq import AsyncTaskQueue, TaskFailedError, TaskQueue, TaskState, chord, group, signature
from omniq.config import Settings, load_settings

Spawn = Callable[..., subprocess.Popen[str]]


@pytest.mark.slow
def test_fan_out_of_1000_into_one_aggregate_survives_a_killed_worker(
    settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    workers = [
        spawn_worker(db_url, "--lease", "1", "--executor", "thread", "--import", "graph_tasks")
        for _ in range(2)
    ]
    with TaskQueue(settings=settings, workers=0) as queue:
        run = queue.enqueue_graph(
            chord(
                group(signature(graph_tasks.square, i, 0.02) for i in range(1000)),
                signature(graph_tasks.total),
            )
        )
        victim = f":{workers[0].pid}:"
        deadline = time.monotonic() + 60
        held: list[str] = []
        while not held and time.monotonic() < deadline:
            time.sleep(0.02)
            if queue.stats()["success"] >= 300:  # mid-way: kill while it holds tasks
                running = queue.list_tasks(state="running", limit=1000)
                held = [t.id for t in running if victim in (t.worker_id or "")]
        assert held, "the first worker never held tasks mid-way"
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        result = queue.get_result(run, timeout=120)
        assert result == {"count": 1000, "sum": sum(i * i for i in range(1000))}
        [aggregate] = run.result_ids
        task = queue.get_task(aggregate)
        assert task.state is TaskState.SUCCESS and task.attempt == 1
        assert queue.stats()["success"] == 1001
        reruns = 0
        for task_id in held:  # ran again elsewhere, or had stored its outcome in time
            task = queue.get_task(task_id)
            assert task.state is TaskState.SUCCESS
            assert task.attempt == 2 or victim in (task.worker_id or "")
            reruns += task.attempt == 2
        assert reruns > 0


@pytest.mark.asyncio
async def test_an_async_task_awaiting_children_lends_its_slot(db_url: str) -> None:
    settings = load_settings({}, storage_url=db_url, poll_interval=0.05, async_workers=1)
    async with AsyncTaskQueue(settings=settings) as queue:
        graph_tasks.QUEUE = queue
        parent = await queue.enqueue(graph_tasks.fan_out_and_wait, args=(3,))
        assert await queue.get_result(parent, timeout=30) == [0, 2, 4]


@pytest.mark.parametrize(("threads", "outcome"), [(1, "deadlock"), (2, [0, 2, 4, 6])])
def test_a_blocking_wait_without_a_free_slot_raises(
    db_url: str, threads: int, outcome: object
) -> None:
    settings = load_settings(
        {}, storage_url=db_url, poll_interval=0.05, default_worker="thread", max_workers=threads
    )
    with TaskQueue(settings=settings, max_workers=threads) as queue:
        graph_tasks.QUEUE = queue
        # 4 children for 1 slot left: they run one after the other while the parent waits
        parent = queue.enqueue(graph_tasks.wait_blocking, args=(4,), executor="thread")
        if outcome == "deadlock":
            with pytest.raises(TaskFailedError, match="every thread slot of its worker") as caught:
                queue.get_result(parent, timeout=30)
            assert caught.value.remote_type == "omniq.errors.WaitDeadlockError"
        else:
            assert queue.get_result(parent, timeout=30) == outcome


def test_a_blocking_wait_goes_ahead_when_another_worker_can_run_the_awaited_tasks(
    db_url: str, spawn_worker: Spawn
) -> None:
    spawn_worker(db_url, "--queues", "other", "--import", "graph_tasks")
    settings = load_settings(
        {}, storage_url=db_url, poll_interval=0.05, default_worker="thread", max_workers=1
    )
    with TaskQueue(settings=settings, max_workers=1) as queue:
        graph_tasks.QUEUE = queue
        parent = queue.enqueue(graph_tasks.wait_blocking_on, args=("other", 3), executor="thread")
        assert queue.get_result(parent, timeout=30) == [0, 2, 4]


@pytest.mark.asyncio
async def test_the_sweep_reaches_a_lost_settle_behind_many_waiting_tasks(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omniq._ids import new_id
    from omniq.models import Task
    from omniq.worker import _dependents

    monkeypatch.setattr(_dependents, "_SWEEP_LIMIT", 5)
    settings = load_settings({}, storage_url=db_url, poll_interval=0.05)
    # A parent that succeeded and a child nobody settled (its settle was lost to a crash),
    # older than every task below.
    parent = Task(id=new_id(), func="graph_tasks:square", payload=b"", run_at=0, created_at=0)
    parent = msgspec.structs.replace(parent, state=TaskState.SUCCESS, finished_at=1.0)
    lost = Task(
        id=new_id(),
        func="graph_tasks:square",
        payload=b"",
        run_at=0,
        created_at=0,
        state=TaskState.WAITING,
        depends_on=(parent.id,),
    )
    async with AsyncTaskQueue(settings=settings) as queue:
        await queue.backend.enqueue([parent, lost])
        blocker = await queue.enqueue(graph_tasks.square, args=(1,), queue="nobody")
        for i in range(12):  # newer tasks that rightly wait (their parent never runs)
            await queue.enqueue(graph_tasks.square, args=(i,), depends_on=[blocker])
        assert queue.worker is not None
        for _ in range(4):  # 13 waiting tasks, 5 per sweep: the oldest is reached by sweep 3
            await queue.worker._sweep_waiting()
        [found] = await queue.backend.get_tasks([lost.id])
        assert found is not None and found.state is not TaskState.WAITING

"""The obstore backend against the Backend protocol, on memory://, file:// and s3:// (moto).

Mirrors omniq-sqlite's test_sqlite_backend.py; time is driven by ManualClock.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from omniq.backend import Outcome, TaskQuery
from omniq.clock import ManualClock
from omniq.errors import LeaseLostError
from omniq.models import ErrorInfo, EventType, Task, TaskEvent, TaskState
from omniq_obstore.backend import ObjectStoreBackend

MakeTask = Callable[..., Task]
B = ObjectStoreBackend

CANCEL = ErrorInfo(type="omniq.errors.TaskCancelledError", message="cancelled by test")


async def claim(b: B, limit: int = 100, **kw: Any) -> list[Task]:
    kw.setdefault("queues", ["default"])
    kw.setdefault("worker_id", "w1")
    kw.setdefault("lease", 30.0)
    return await b.claim(limit=limit, **kw)


def done(task: Task, state: str = "success", at: float = 0.0, **kw: Any) -> Outcome:
    return Outcome(
        task_id=task.id, attempt=task.attempt, state=TaskState(state), finished_at=at, **kw
    )


# -- enqueue / get ----------------------------------------------------------------------------
async def test_round_trip_of_every_field(backend: B, make_task: MakeTask) -> None:
    full = make_task(
        func_bytes=b"\x80dill",
        payload=bytes(range(256)),
        queue="q-full",
        priority=-3,
        executor="thread",
        state=TaskState.SCHEDULED,
        run_at=1_800_000_123.25,
        created_at=1_800_000_000.5,
        attempt=2,
        max_retries=5,
        retry_delay=1.5,
        timeout=30.0,
        result_ttl=0.0,
        idempotency_key="key-full",
        worker_id="worker-9",
        lease_expires_at=1_800_000_200.0,
        started_at=1_800_000_100.0,
        finished_at=1_800_000_150.0,
        error=ErrorInfo(type="builtins.ValueError", message="boom", traceback="Traceback…"),
        cancel_requested=True,
        headers={"trace": "abc", "ünï": "çødé 🚀"},
    )
    minimal = make_task()
    assert await backend.enqueue([full, minimal]) == [full, minimal]
    assert await backend.get_tasks([minimal.id, "nope", full.id]) == [minimal, None, full]


async def test_idempotent_by_id_and_by_key(backend: B, make_task: MakeTask) -> None:
    first = make_task(idempotency_key="k1")
    assert await backend.enqueue([first]) == [first]
    same_id = make_task(id=first.id, payload=b"other")
    same_key = make_task(idempotency_key="k1")
    new = make_task(idempotency_key="k2")
    dup_in_batch = make_task(idempotency_key="k2")
    got = await backend.enqueue([same_id, new, same_key, dup_in_batch, new])
    assert got == [first, new, first, new, new]
    assert await backend.get_tasks([same_key.id, dup_in_batch.id]) == [None, None]
    assert await backend.count_tasks(TaskQuery()) == {TaskState.PENDING: 2}


async def test_each_task_is_checked_before_anything_is_written(
    backend: B, make_task: MakeTask
) -> None:
    good = make_task()
    for bad in (make_task(priority="high"), make_task(priority=1 << 64)):
        with pytest.raises(ValueError, match="priority"):
            await backend.enqueue([good, bad])
    assert await backend.get_tasks([good.id]) == [None]
    assert not backend.capabilities.atomic_batches  # a store failure mid-batch is not undone


async def test_enqueue_many(backend: B, make_task: MakeTask, kind: str) -> None:
    n = 300 if kind == "s3" else 3000
    tasks = [make_task() for _ in range(n)]
    assert await backend.enqueue(tasks) == tasks
    again = await backend.enqueue([*tasks[:10], make_task()])
    assert again[:10] == tasks[:10]
    assert await backend.count_tasks(TaskQuery()) == {TaskState.PENDING: n + 1}


async def test_unicode_and_one_mebibyte_payload(backend: B, make_task: MakeTask) -> None:
    task = make_task(
        id="ид-задачи/../#1 ✓",
        func="пакет.модуль:функция",
        queue="очередь-🚀/.. #%",
        executor="экзекутор",
        payload=os.urandom(1 << 20),
        headers={"名前": "値 ✓"},
        idempotency_key="ключ-𝄞" * 200,
    )
    await backend.enqueue([task])
    [got] = await claim(backend, queues=["очередь-🚀/.. #%"], executors={"экзекутор": 1})
    assert (got.id, got.payload, got.func, got.headers) == (
        task.id,
        task.payload,
        task.func,
        task.headers,
    )
    assert await backend.enqueue([make_task(idempotency_key="ключ-𝄞" * 200)]) == [got]
    await backend.finish([done(got, result=task.payload)])
    [result] = await backend.get_results([task.id])
    assert result is not None
    assert result.data == task.payload
    assert [t.id for t in await backend.list_tasks(TaskQuery())] == [task.id]


# -- claim ------------------------------------------------------------------------------------
async def test_claim_sets_lease_fields(backend: B, make_task: MakeTask, clock: ManualClock) -> None:
    task = make_task()
    await backend.enqueue([task])
    [got] = await claim(backend, worker_id="w7", lease=12.5)
    assert got.state == TaskState.RUNNING
    assert got.attempt == 1
    assert got.worker_id == "w7"
    assert (got.started_at, got.lease_expires_at) == (clock.now(), clock.now() + 12.5)
    assert await backend.get_tasks([task.id]) == [got]
    assert await claim(backend) == []


async def test_priority_then_fifo(backend: B, make_task: MakeTask, clock: ManualClock) -> None:
    now = clock.now()
    specs = [(0, now - 5), (5, now), (0, now - 9), (5, now - 1), (1, now), (0, now - 9)]
    tasks = [make_task(priority=p, run_at=r) for p, r in specs]
    tasks.append(make_task(priority=-(1 << 63), run_at=-1.5))  # extremes still order
    await backend.enqueue(tasks)
    expected = sorted(tasks, key=lambda t: (-t.priority, t.run_at, t.id))
    first = await claim(backend, limit=4)
    rest = [t for _ in range(4) for t in await claim(backend, limit=1)]
    assert [t.id for t in first + rest] == [t.id for t in expected]


async def test_claim_over_several_queues_keeps_global_order(
    backend: B, make_task: MakeTask
) -> None:
    queues = [f"q{i}" for i in range(4)]
    tasks = [make_task(queue=queues[i % 4], priority=i % 3) for i in range(30)]
    other = make_task(queue="elsewhere", priority=9)
    await backend.enqueue([*tasks, other])
    got = await claim(backend, limit=10, queues=queues)
    expected = sorted(tasks, key=lambda t: (-t.priority, t.run_at, t.id))[:10]
    assert [t.id for t in got] == [t.id for t in expected]


async def test_delayed_task_is_claimable_only_when_due(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    task = make_task(state=TaskState.SCHEDULED, run_at=clock.now() + 3600)
    await backend.enqueue([task])
    assert await claim(backend) == []
    clock.advance(3599.5)
    assert await claim(backend) == []
    assert (await backend.get_tasks([task.id]))[0] == task  # a delay holds no lease
    clock.advance(0.5)
    assert [t.id for t in await claim(backend)] == [task.id]


async def test_claim_exclusive_across_eight_instances(
    url: str, make_task: MakeTask, clock: ManualClock, kind: str
) -> None:
    backends = [ObjectStoreBackend.from_url(url, clock=clock) for _ in range(8)]
    await asyncio.gather(*(b.open() for b in backends))
    try:
        tasks = [make_task() for _ in range(150 if kind == "s3" else 600)]
        await backends[0].enqueue(tasks)

        async def drain(b: B, n: int) -> list[str]:
            ids: list[str] = []
            while got := await claim(b, limit=5, worker_id=f"w{n}"):
                ids += [t.id for t in got]
            return ids

        results = await asyncio.gather(*(drain(b, n) for n, b in enumerate(backends)))
    finally:
        await asyncio.gather(*(b.close() for b in backends))
    counts = Counter(i for ids in results for i in ids)
    assert set(counts) == {t.id for t in tasks}
    assert set(counts.values()) == {1}
    assert sum(1 for ids in results if ids) > 1  # they really competed


# -- leases, fencing, recovery ----------------------------------------------------------------
async def test_expired_lease_is_requeued_and_claimed_again(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    task = make_task(max_retries=1)
    await backend.enqueue([task])
    [run1] = await claim(backend, worker_id="dead", lease=10)
    clock.advance(10)
    assert await backend.requeue_expired() == []  # expires_at < now, strictly
    clock.advance(0.001)
    [requeued] = await backend.requeue_expired()
    assert requeued.state == TaskState.PENDING
    assert requeued.attempt == 1
    assert requeued.lease_expires_at is None
    assert requeued.worker_id == "dead"
    assert requeued.error is not None
    assert requeued.error.type == "omniq.errors.WorkerLostError"
    assert "worker dead stopped heartbeating; lease expired at 2027-" in requeued.error.message
    assert await backend.get_tasks([task.id]) == [requeued]
    assert await backend.requeue_expired() == []  # recovered once
    [run2] = await claim(backend, worker_id="alive")
    assert (run2.attempt, run2.worker_id) == (2, "alive")
    with pytest.raises(LeaseLostError) as info:
        await backend.finish([done(run1)])
    assert info.value.task_ids == (task.id,)
    assert (await backend.get_tasks([task.id]))[0] == run2  # the stale outcome wrote nothing


async def test_expired_lease_without_retries_left_fails(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    task = make_task(max_retries=0)
    await backend.enqueue([task])
    await claim(backend, worker_id="gone", lease=5)
    clock.advance(60)
    [failed] = await backend.requeue_expired()
    assert failed.state == TaskState.FAILED
    assert failed.finished_at == clock.now()
    assert failed.error is not None
    assert "worker gone stopped heartbeating" in failed.error.message
    assert await claim(backend) == []


async def test_fencing_of_finish_and_extend(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    a, b = make_task(max_retries=3), make_task()
    await backend.enqueue([a, b])
    [a1, b1] = await claim(backend, lease=10)
    clock.advance(11)
    await backend.extend_leases([(b1.id, b1.attempt)], lease=10)  # b stays ours
    [_] = await backend.requeue_expired()  # a is recovered
    [a2] = await claim(backend, worker_id="w2", lease=10)
    with pytest.raises(LeaseLostError) as info:
        await backend.extend_leases([(a1.id, a1.attempt), (b1.id, b1.attempt)], lease=100)
    assert info.value.task_ids == (a.id,)
    [a_now, b_now] = await backend.get_tasks([a.id, b.id])
    assert a_now == a2
    assert b_now is not None
    assert b_now.lease_expires_at == clock.now() + 100
    never = Outcome(task_id=b.id, attempt=7, state=TaskState.SUCCESS, finished_at=0.0)
    with pytest.raises(LeaseLostError) as info:
        await backend.finish([done(a1, "failed"), done(b1, result=b"ok"), never])
    assert info.value.task_ids == (a.id, b.id)
    [a_now, b_now] = await backend.get_tasks([a.id, b.id])
    assert a_now == a2
    assert b_now is not None
    assert b_now.state == TaskState.SUCCESS
    assert b_now.lease_expires_at is None
    assert [r.data if r else None for r in await backend.get_results([a.id, b.id])] == [None, b"ok"]
    await backend.finish([done(b1, result=b"ok")])  # the same outcome again is not stale


async def test_retry_outcome_schedules_without_lease(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    task = make_task(max_retries=2)
    await backend.enqueue([task])
    [run] = await claim(backend)
    error = ErrorInfo(type="builtins.OSError", message="flaky", traceback="tb")
    retry_at = clock.now() + 30
    await backend.finish([done(run, "scheduled", at=clock.now(), error=error, retry_at=retry_at)])
    [now] = await backend.get_tasks([task.id])
    assert now is not None
    assert now.state == TaskState.SCHEDULED
    assert (now.run_at, now.error, now.lease_expires_at, now.finished_at) == (
        retry_at,
        error,
        None,
        None,
    )
    assert await claim(backend) == []
    clock.advance(30)
    [run2] = await claim(backend)
    assert (run2.attempt, run2.error) == (2, error)
    with pytest.raises(ValueError, match="needs retry_at"):
        await backend.finish([done(run2, "scheduled")])
    with pytest.raises(ValueError, match="not final"):
        await backend.finish([done(run2, "running")])


async def test_release_returns_task_without_counting_attempt(
    backend: B, make_task: MakeTask
) -> None:
    task = make_task()
    await backend.enqueue([task])
    [run] = await claim(backend)
    assert await backend.release([(task.id, 7), ("unknown", 1)]) == []  # stale pairs skipped
    assert await backend.release([(task.id, run.attempt)]) == [task.id]
    assert await backend.release([(task.id, run.attempt)]) == []  # only once
    [now] = await backend.get_tasks([task.id])
    assert now is not None
    assert (now.state, now.attempt, now.released, now.lease_expires_at) == (
        TaskState.PENDING,
        1,
        1,
        None,
    )
    [again] = await claim(backend)
    assert (again.attempt, again.runs_used) == (2, 1)  # a fresh fencing token, no retry used
    with pytest.raises(LeaseLostError):  # the releasing worker's token is dead for good
        await backend.finish([done(run)])


async def test_cancel(backend: B, make_task: MakeTask, clock: ManualClock) -> None:
    running, pending, waiting, finished, delayed = (make_task() for _ in range(5))
    waiting.state = TaskState.WAITING
    delayed.state, delayed.run_at = TaskState.SCHEDULED, clock.now() + 60
    await backend.enqueue([finished])
    [fin] = await claim(backend)
    await backend.finish([done(fin)])
    await backend.enqueue([running])
    [run] = await claim(backend)
    await backend.enqueue([pending, waiting, delayed])
    clock.advance(1)
    ids = [finished.id, "missing", running.id, pending.id, waiting.id, delayed.id]
    got = await backend.cancel(ids, error=CANCEL)
    assert [t.id for t in got] == [i for i in ids if i != "missing"]
    fin_now, run_now, *queued = got
    assert fin_now.state == TaskState.SUCCESS
    assert fin_now.error is None
    assert run_now.state == TaskState.RUNNING
    assert run_now.cancel_requested
    for t in queued:
        assert (t.state, t.error, t.finished_at) == (TaskState.CANCELLED, CANCEL, clock.now())
    assert await backend.get_tasks([t.id for t in queued]) == queued
    assert await backend.extend_leases([(run.id, run.attempt)], lease=10) == [run.id]
    clock.advance(120)
    assert await claim(backend) == []  # cancelled tasks never run
    assert await backend.cancel([pending.id], error=CANCEL) == [queued[0]]  # already final


async def test_a_cancelled_task_is_never_retried(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    task = make_task(max_retries=5)
    await backend.enqueue([task])
    [run] = await claim(backend)
    await backend.cancel([task.id], error=CANCEL)
    error = ErrorInfo(type="builtins.OSError", message="flaky")
    await backend.finish([done(run, "scheduled", at=clock.now(), error=error, retry_at=0.0)])
    [now] = await backend.get_tasks([task.id])
    assert now is not None
    assert (now.state, now.error) == (TaskState.CANCELLED, error)
    assert await claim(backend) == []


async def test_cancel_and_claim_racing_never_both_win(
    url: str, make_task: MakeTask, clock: ManualClock, kind: str
) -> None:
    backends = [ObjectStoreBackend.from_url(url, clock=clock) for _ in range(4)]
    await asyncio.gather(*(b.open() for b in backends))
    try:
        tasks = [make_task() for _ in range(20 if kind == "s3" else 60)]
        await backends[0].enqueue(tasks)
        ids = [t.id for t in tasks]
        claimed, cancelled = await asyncio.gather(
            asyncio.gather(
                *(claim(b, limit=7, worker_id=f"w{i}") for i, b in enumerate(backends[:2]))
            ),
            asyncio.gather(
                *(b.cancel(ids[i::2], error=CANCEL) for i, b in enumerate(backends[2:]))
            ),
        )
        now = {t.id: t for t in await backends[0].list_tasks(TaskQuery(limit=1000))}
    finally:
        await asyncio.gather(*(b.close() for b in backends))
    taken = {t.id for ts in claimed for t in ts}
    for task_id, t in now.items():
        if task_id in taken:  # claimed first: running, its worker learns of the cancel
            assert (t.state, t.cancel_requested) == (TaskState.RUNNING, True)
        else:
            assert t.state == TaskState.CANCELLED
    assert {t.id for ts in cancelled for t in ts} == set(ids)


# -- results, listing, events -----------------------------------------------------------------
async def test_results_honour_expiry(backend: B, make_task: MakeTask, clock: ManualClock) -> None:
    short, forever, none, failed = make_task(), make_task(), make_task(), make_task()
    await backend.enqueue([short, forever, none, failed])
    runs = await claim(backend)
    ends = {short.id: clock.now() + 10, forever.id: None}
    await backend.finish(
        [
            done(
                t,
                "failed" if t.id == failed.id else "success",
                result=None if t.id in (none.id, failed.id) else b"v",
                result_expires_at=ends.get(t.id),
            )
            for t in runs
        ]
    )
    got = await backend.get_results([short.id, forever.id, none.id, failed.id, "unknown"])
    assert [r.data if r else None for r in got] == [b"v", b"v", None, None, None]
    assert got[0] is not None
    assert (got[0].stored_at, got[0].expires_at) == (clock.now(), clock.now() + 10)
    clock.advance(10)
    assert [r is None for r in await backend.get_results([short.id, forever.id])] == [True, False]


async def test_list_and_count(backend: B, make_task: MakeTask) -> None:
    a = [make_task(queue="a") for _ in range(5)]
    b = [make_task(queue="b") for _ in range(3)]
    await backend.enqueue(a + b)
    await claim(backend, limit=2, queues=["a"], worker_id="w1")
    await claim(backend, limit=1, queues=["b"], worker_id="w2")
    everything = await backend.list_tasks(TaskQuery())
    assert [t.id for t in everything] == [t.id for t in reversed(a + b)]  # newest first
    page1 = await backend.list_tasks(TaskQuery(limit=3))
    page2 = await backend.list_tasks(TaskQuery(limit=3, before_id=page1[-1].id))
    assert [t.id for t in page1 + page2] == [t.id for t in everything[:6]]
    running_a = TaskQuery(states=(TaskState.RUNNING,), queues=("a",))
    assert {t.id for t in await backend.list_tasks(running_a)} == {a[0].id, a[1].id}
    assert [t.id for t in await backend.list_tasks(TaskQuery(worker_id="w2"))] == [b[0].id]
    assert await backend.count_tasks(TaskQuery()) == {TaskState.PENDING: 5, TaskState.RUNNING: 3}
    assert await backend.count_tasks(TaskQuery(queues=("b",))) == {
        TaskState.PENDING: 2,
        TaskState.RUNNING: 1,
    }
    assert await backend.count_tasks(TaskQuery(states=(TaskState.FAILED,))) == {}
    assert await backend.count_by_worker(TaskQuery()) == {"w1": 2, "w2": 1}
    assert await backend.count_by_worker(TaskQuery(queues=("a",))) == {"w1": 2}


async def test_events(backend: B, clock: ManualClock) -> None:
    def ev(i: int, task: str, at: float) -> TaskEvent:
        return TaskEvent(id=f"e{i:03d}", task_id=task, type=EventType.ENQUEUED, at=at, detail="ü")

    now = clock.now()
    events = [ev(1, "t1", now + 2), ev(2, "t2", now), ev(3, "t1", now + 1), ev(4, "t1", now + 1)]
    await backend.append_events(events)
    await backend.append_events([ev(1, "t1", now + 2), ev(5, "t2", now + 3)])  # e001 ignored
    await backend.append_events([ev(6, "t3", now + 7200)])  # another hour directory
    await backend.append_events([])
    assert [e.id for e in await backend.list_events()] == [
        "e002",
        "e003",
        "e004",
        "e001",
        "e005",
        "e006",
    ]
    assert await backend.list_events(task_id="t1", limit=2) == [events[2], events[3]]
    assert [e.id for e in await backend.list_events(limit=2)] == ["e002", "e003"]
    assert await backend.list_events(limit=0) == []


async def test_lost_lease_error_still_reports_cancel_requests_of_valid_leases(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    a, b = make_task(max_retries=3), make_task()
    await backend.enqueue([a, b])
    [a1, b1] = await claim(backend, lease=10)
    await backend.cancel([b.id], error=ErrorInfo(type="x.Cancelled", message="stop"))
    clock.advance(11)
    await backend.extend_leases([(b1.id, b1.attempt)], lease=10)
    await backend.requeue_expired()  # a's lease is gone
    with pytest.raises(LeaseLostError) as info:
        await backend.extend_leases([(a1.id, a1.attempt), (b1.id, b1.attempt)], lease=10)
    assert info.value.task_ids == (a.id,)
    assert info.value.cancel_requested == (b.id,)


async def test_expired_or_released_task_whose_cancel_was_requested_is_cancelled(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    expiring, releasing = make_task(max_retries=5), make_task(max_retries=5)
    await backend.enqueue([expiring, releasing])
    [e1, r1] = await claim(backend, lease=10)
    stop = ErrorInfo(type="x.Cancelled", message="stop")
    await backend.cancel([e1.id, r1.id], error=stop)
    assert await backend.release([(r1.id, r1.attempt)]) == [r1.id]
    clock.advance(11)
    [expired] = await backend.requeue_expired()
    [released] = await backend.get_tasks([r1.id])
    assert expired.state == TaskState.CANCELLED
    assert released is not None
    assert (released.state, released.error, released.released) == (TaskState.CANCELLED, stop, 1)
    assert await claim(backend) == []


async def test_finish_and_claim_stores_outcomes_and_claims(backend: B, make_task: MakeTask) -> None:
    first, second, third = make_task(), make_task(), make_task()
    await backend.enqueue([first])
    [run1] = await claim(backend)
    await backend.enqueue([second, third])
    stale_outcome = Outcome(
        task_id=run1.id, attempt=run1.attempt + 1, state=TaskState.SUCCESS, finished_at=0.0
    )
    stale, claimed = await backend.finish_and_claim(
        [done(run1, result=b"one"), stale_outcome],
        queues=["default"],
        worker_id="w1",
        limit=1,
        lease=30,
    )
    assert stale == [run1.id]  # the second outcome for run1 carried a wrong token
    assert [t.id for t in claimed] == [second.id]
    [r1] = await backend.get_results([run1.id])
    assert r1 is not None
    assert r1.data == b"one"
    assert await backend.finish_and_claim(
        [done(claimed[0])], queues=["default"], worker_id="w1", limit=0, lease=30
    ) == ([], [])
    stale, only_claim = await backend.finish_and_claim(
        [], queues=["default"], worker_id="w1", limit=5, lease=30
    )
    assert (stale, [t.id for t in only_claim]) == ([], [third.id])


async def test_wide_claims_and_batches(backend: B, make_task: MakeTask) -> None:
    """More concurrent store calls than the backend's bound (64), nested, must not deadlock."""
    tasks = [make_task() for _ in range(200)]
    await backend.enqueue(tasks)
    got = await claim(backend, limit=150)
    assert len(got) == 150
    await backend.finish([done(t, result=b"r") for t in got])
    rest = await claim(backend, limit=150)
    assert len(rest) == 50
    assert await backend.release([(t.id, t.attempt) for t in rest]) == [t.id for t in rest]
    assert await backend.count_tasks(TaskQuery()) == {TaskState.SUCCESS: 150, TaskState.PENDING: 50}

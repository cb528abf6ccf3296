"""Purge, bad data and crash repair: tests that look at the objects themselves."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from omniq.backend import Outcome, TaskQuery
from omniq.clock import ManualClock
from omniq.models import ErrorInfo, EventType, Task, TaskEvent, TaskState
from omniq_obstore import _keys as K
from omniq_obstore import _records as R
from omniq_obstore.backend import ObjectStoreBackend

from .conftest import Raw
from .test_backend import claim, done

MakeTask = Callable[..., Task]
B = ObjectStoreBackend


async def test_purge(backend: B, make_task: MakeTask, clock: ManualClock, raw: Raw) -> None:
    t0 = clock.now()
    old, recent, running, pending, expiring = (make_task() for _ in range(5))
    old.idempotency_key = "old-key"
    await backend.enqueue([old, recent, running, expiring])
    run_old, run_recent, _, run_exp = await claim(backend)
    await backend.finish(
        [
            done(run_old, at=t0, result=b"kept forever"),
            done(run_recent, at=t0 + 100, result=b"x", result_expires_at=t0 + 5),
            done(run_exp, at=t0 + 100, result=b"y", result_expires_at=t0 + 500),
        ]
    )
    await backend.enqueue([pending])
    old_events = [
        TaskEvent(id=f"e{i:03d}", task_id="t", type=EventType.COMPLETE, at=t0) for i in range(50)
    ]
    await backend.append_events(old_events[:30])
    await backend.append_events(old_events[30:])
    straddling = [
        TaskEvent(id="s1", task_id="t", type=EventType.COMPLETE, at=t0),
        TaskEvent(id="s2", task_id="t", type=EventType.COMPLETE, at=t0 + 1),
    ]
    await backend.append_events(straddling)  # the old part of a batch goes, the rest stays
    clock.advance(5)
    assert await backend.purge(finished_before=t0 + 4, events_before=t0 + 0.5) == (1, 51)
    got = await backend.get_tasks([old.id, recent.id, running.id, pending.id])
    assert [t is None for t in got] == [True, False, False, False]
    assert raw.keys(K.task_prefix(K.component(old.id))) == []
    assert raw.keys("keys/") == []  # the key is free again
    [r_recent, r_expiring] = await backend.get_results([recent.id, expiring.id])
    assert r_recent is None  # expired, and deleted:
    assert r_expiring is not None
    assert r_expiring.data == b"y"
    assert not [k for k in raw.keys("tasks/") if k.startswith(f"tasks/{recent.id}/result-")]
    assert [e.id for e in await backend.list_events()] == ["s2"]
    reborn = make_task(idempotency_key="old-key")
    assert await backend.enqueue([reborn]) == [reborn]


async def test_corrupt_spec_fails_that_task_alone(
    backend: B, make_task: MakeTask, raw: Raw
) -> None:
    good1, bad, good2 = make_task(), make_task(), make_task()
    await backend.enqueue([good1, bad, good2])
    raw.put(K.task_key(bad.id, "spec"), b"\xc1 not msgpack")
    listed = await backend.list_tasks(TaskQuery())  # a listing shows it, salvaged
    assert [t.id for t in listed] == [good2.id, bad.id, good1.id]
    assert listed[1].state == TaskState.FAILED
    claimed = await claim(backend)
    assert [t.id for t in claimed] == [good1.id, good2.id]
    [failed] = await backend.get_tasks([bad.id])
    assert failed is not None
    assert failed.state == TaskState.FAILED
    assert failed.error is not None
    assert failed.error.type == "omniq.errors.DeserializationError"
    assert f"stored task {bad.id!r} cannot be decoded: spec" in failed.error.message
    assert await claim(backend) == []
    assert await backend.count_tasks(TaskQuery()) == {TaskState.RUNNING: 2, TaskState.FAILED: 1}


async def test_corrupt_markers_do_not_break_reads(
    backend: B, make_task: MakeTask, raw: Raw, clock: ManualClock
) -> None:
    a, b = make_task(), make_task()
    await backend.enqueue([a, b])
    [ra, rb] = await claim(backend)
    raw.put(K.task_key(a.id, "claim", 1), b"garbage")
    raw.put(K.task_key(b.id, "lease", 1), b"garbage")  # a bad heartbeat: the claim's lease holds
    [ga, gb] = await backend.get_tasks([a.id, b.id])
    assert ga is not None
    assert (ga.state, ga.func) == (TaskState.FAILED, a.func)
    assert gb == rb
    await backend.append_events([TaskEvent(id="ok", task_id="t", type=EventType.ENQUEUED, at=1.0)])
    raw.put(K.event_key(0.5, 0.5, 1, "bad"), b"garbage")
    assert [e.id for e in await backend.list_events()] == ["ok"]
    clock.advance(60)
    assert {t.id for t in await backend.requeue_expired()} == {a.id, b.id}
    with pytest.raises(Exception, match="lease lost"):
        await backend.finish([done(ra)])


async def test_purge_restores_index_entries_a_crash_left_out(
    backend: B, make_task: MakeTask, raw: Raw, clock: ManualClock
) -> None:
    queued, running = make_task(), make_task(max_retries=1)
    await backend.enqueue([running])
    [run] = await claim(backend, lease=10)
    await backend.enqueue([queued])
    for key in raw.keys("due/") + raw.keys("running/"):
        raw.delete(key)  # as if each writer died right after its commit object
    assert await claim(backend) == []
    clock.advance(11)
    assert await backend.requeue_expired() == []
    await backend.purge(finished_before=0.0, events_before=0.0)
    assert [t.id for t in await claim(backend)] == [queued.id]
    [recovered] = await backend.requeue_expired()
    assert (recovered.id, recovered.state) == (run.id, TaskState.PENDING)


async def test_purge_tombstones_a_queued_task_with_a_cancel_marker(
    backend: B, make_task: MakeTask, raw: Raw
) -> None:
    task = make_task()
    await backend.enqueue([task])
    mark = R.CancelMark(at=0.0, error=ErrorInfo(type="x", message="y"))
    raw.put(K.task_key(task.id, "cancel"), R.encode(mark))  # the canceller died here
    await backend.purge(finished_before=0.0, events_before=0.0)
    [now] = await backend.get_tasks([task.id])
    assert now is not None
    assert now.state == TaskState.CANCELLED
    assert await claim(backend) == []


async def test_a_claim_of_a_purged_task_is_dropped(
    backend: B, make_task: MakeTask, raw: Raw
) -> None:
    task = make_task()
    await backend.enqueue([task])
    raw.delete(K.task_key(task.id, "spec"))
    assert await claim(backend) == []
    assert raw.keys("due/") == []
    assert await backend.get_tasks([task.id]) == [None]
    await backend.purge(finished_before=0.0, events_before=0.0)
    assert raw.keys("tasks/") == []


async def test_an_unknown_attempt_is_stale_everywhere(backend: B, make_task: MakeTask) -> None:
    task = make_task()
    await backend.enqueue([task])
    with pytest.raises(Exception, match="lease lost"):
        await backend.extend_leases([(task.id, 1), ("nope", 1)], lease=5)
    assert await backend.release([(task.id, 1), (task.id, 0)]) == []
    never = Outcome(task_id=task.id, attempt=1, state=TaskState.SUCCESS, finished_at=0.0)
    with pytest.raises(Exception, match="lease lost"):
        await backend.finish([never])
    assert [t.id for t in await claim(backend)] == [task.id]

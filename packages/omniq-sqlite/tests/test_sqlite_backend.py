"""The SQLite backend against the Backend protocol: real files, time driven by ManualClock."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from omniq.backend import Outcome, TaskQuery
from omniq.clock import ManualClock
from omniq.errors import BackendError, ConfigError, LeaseLostError
from omniq.models import ErrorInfo, EventType, Task, TaskEvent, TaskState
from omniq_sqlite import SPEC, _schema
from omniq_sqlite._queries import MIGRATIONS
from omniq_sqlite.backend import SQLiteBackend

MakeTask = Callable[..., Task]
RawDB = Callable[..., list[Any]]

CANCEL = ErrorInfo(type="omniq.errors.TaskCancelledError", message="cancelled by test")


async def claim(b: SQLiteBackend, limit: int = 100, **kw: Any) -> list[Task]:
    kw.setdefault("queues", ["default"])
    kw.setdefault("worker_id", "w1")
    kw.setdefault("lease", 30.0)
    return await b.claim(limit=limit, **kw)


def done(task: Task, state: str = "success", at: float = 0.0, **kw: Any) -> Outcome:
    return Outcome(
        task_id=task.id, attempt=task.attempt, state=TaskState(state), finished_at=at, **kw
    )


# -- URI and lifecycle ------------------------------------------------------------------------
def test_spec_points_to_the_class_and_capabilities() -> None:
    assert SPEC.load() is SQLiteBackend
    caps = SQLiteBackend.capabilities
    assert (caps.cross_process, caps.durable, caps.priority) == (True, True, True)
    assert (caps.notify, caps.network, caps.transactional_enqueue) == (False, False, False)


def test_from_url_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert SQLiteBackend.from_url("sqlite:///data/q.db").path == tmp_path / "data" / "q.db"
    absolute = SQLiteBackend.from_url(f"sqlite:///{tmp_path}/abs.db")  # "/" + "/tmp/…"
    assert absolute.path == tmp_path / "abs.db"
    assert SQLiteBackend.from_url("sqlite:///my%20queue.db").path == tmp_path / "my queue.db"
    b = SQLiteBackend.from_url("sqlite:///q.db?busy_timeout=5000&synchronous=full")
    assert (b._busy_timeout_ms, b._synchronous) == (5000, "FULL")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgres:///q.db", "not a SQLite URI"),
        ("sqlite:q.db", "not a SQLite URI"),
        ("sqlite://host/q.db", "names a host"),
        ("sqlite://", "names no database file"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///q.db?timeout=3&cache=x", "unknown SQLite URI option(s) cache, timeout"),
        ("sqlite:///q.db?busy_timeout=soon", "busy_timeout must be an integer"),
        ("sqlite:///q.db?busy_timeout=-1", "busy_timeout must be an integer"),
        ("sqlite:///q.db?synchronous=maybe", "synchronous must be one of"),
        ("sqlite:///q.db?busy_timeout=1&busy_timeout=2", "more than once"),
        ("sqlite:///q.db#frag", "fragment"),
    ],
)
def test_from_url_rejects_bad_uris(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SQLiteBackend.from_url(url)


async def test_open_creates_parent_dirs_and_close_is_idempotent(tmp_path: Path) -> None:
    b = SQLiteBackend.from_url(f"sqlite:///{tmp_path}/a/b/c/q.db")
    with pytest.raises(BackendError, match="not open"):
        await b.get_tasks(["x"])
    await b.open()
    await b.open()  # no-op
    assert (tmp_path / "a" / "b" / "c" / "q.db").is_file()
    await b.close()
    await b.close()
    async with b:  # reopen
        assert await b.get_tasks(["x"]) == [None]


async def test_schema_is_migrated_once_and_newer_schema_is_refused(
    db_path: Path, raw_db: RawDB
) -> None:
    for _ in range(2):
        async with SQLiteBackend(db_path):
            pass
    recorded = raw_db("SELECT version, name FROM omniq_schema_version")
    assert recorded == [(m.version, m.name) for m in MIGRATIONS]  # each once, in order
    assert recorded[:5] == [
        (1, "initial"),
        (2, "workers"),
        (3, "schedules"),
        (4, "dependencies"),
        (5, "events"),
    ]
    assert raw_db("PRAGMA journal_mode") == [("wal",)]
    raw_db("INSERT INTO omniq_schema_version VALUES (99, 'future', 0)")
    with pytest.raises(BackendError, match="schema version 99, newer"):
        await SQLiteBackend(db_path).open()


async def test_events_migration_keeps_old_events_and_missing_versions_are_applied(
    db_path: Path, raw_db: RawDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file made before issue 6 (migrations 1-3 only), holding one event.
    monkeypatch.setattr(_schema, "MIGRATIONS", MIGRATIONS[:3])
    async with SQLiteBackend(db_path):
        pass
    raw_db(
        "INSERT INTO omniq_events (id, task_id, type, at, queue, worker_id, attempt, detail) "
        "VALUES ('e1', 't1', 'complete', 5.0, 'q', 'w', 1, 'old')"
    )
    monkeypatch.setattr(_schema, "MIGRATIONS", MIGRATIONS)
    async with SQLiteBackend(db_path) as backend:
        assert await backend.list_events() == [
            TaskEvent(
                id="e1",
                task_id="t1",
                type=EventType.COMPLETE,
                at=5.0,
                queue="q",
                worker_id="w",
                attempt=1,
                detail="old",
            )
        ]
        worker_event = TaskEvent(id="e2", type=EventType.WORKER_STARTED, at=6.0, duration=None)
        await backend.append_events([worker_event])
        assert (await backend.list_events())[-1] == worker_event
    versions = [v for (v,) in raw_db("SELECT version FROM omniq_schema_version")]
    assert versions == [m.version for m in MIGRATIONS]  # every version missing was applied


# -- enqueue / get ----------------------------------------------------------------------------
async def test_round_trip_of_every_field(backend: SQLiteBackend, make_task: MakeTask) -> None:
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


async def test_idempotent_by_id_and_by_key(backend: SQLiteBackend, make_task: MakeTask) -> None:
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


async def test_enqueue_batch_is_all_or_nothing(backend: SQLiteBackend, make_task: MakeTask) -> None:
    good = make_task()
    bad = make_task(priority="high")  # a text priority: refused by the STRICT table
    with pytest.raises(BackendError, match="priority"):
        await backend.enqueue([good, bad])
    assert await backend.get_tasks([good.id]) == [None]


async def test_enqueue_ten_thousand(backend: SQLiteBackend, make_task: MakeTask) -> None:
    tasks = [make_task() for _ in range(10_000)]
    assert await backend.enqueue(tasks) == tasks
    again = await backend.enqueue([*tasks[:10], make_task()])
    assert again[:10] == tasks[:10]
    assert await backend.count_tasks(TaskQuery()) == {TaskState.PENDING: 10_001}


async def test_unicode_and_one_mebibyte_payload(
    backend: SQLiteBackend, make_task: MakeTask
) -> None:
    task = make_task(
        func="пакет.модуль:функция",
        queue="очередь-🚀",
        payload=os.urandom(1 << 20),
        headers={"名前": "値 ✓"},
        idempotency_key="ключ-𝄞",
    )
    await backend.enqueue([task])
    [got] = await claim(backend, queues=["очередь-🚀"])
    assert (got.payload, got.func, got.headers) == (task.payload, task.func, task.headers)
    assert await backend.enqueue([make_task(idempotency_key="ключ-𝄞")]) == [got]


# -- claim ------------------------------------------------------------------------------------
async def test_claim_sets_lease_fields(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
) -> None:
    task = make_task()
    await backend.enqueue([task])
    [got] = await claim(backend, worker_id="w7", lease=12.5)
    assert got.state == TaskState.RUNNING
    assert got.attempt == 1
    assert got.worker_id == "w7"
    assert (got.started_at, got.lease_expires_at) == (clock.now(), clock.now() + 12.5)
    assert await backend.get_tasks([task.id]) == [got]
    assert await claim(backend) == []


async def test_priority_then_fifo(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
) -> None:
    now = clock.now()
    specs = [(0, now - 5), (5, now), (0, now - 9), (5, now - 1), (1, now), (0, now - 9)]
    tasks = [make_task(priority=p, run_at=r) for p, r in specs]
    await backend.enqueue(tasks)
    expected = sorted(tasks, key=lambda t: (-t.priority, t.run_at, t.id))
    first = await claim(backend, limit=4)
    rest = [t for _ in range(3) for t in await claim(backend, limit=1)]
    assert [t.id for t in first + rest] == [t.id for t in expected]


@pytest.mark.parametrize("n_queues", [2, 70])  # UNION of per-queue claims; json_each beyond 64
async def test_claim_over_several_queues_keeps_global_order(
    backend: SQLiteBackend, make_task: MakeTask, n_queues: int
) -> None:
    queues = [f"q{i}" for i in range(n_queues)]
    tasks = [make_task(queue=queues[i % n_queues], priority=i % 3) for i in range(30)]
    other = make_task(queue="elsewhere", priority=9)
    await backend.enqueue([*tasks, other])
    got = await claim(backend, limit=10, queues=queues)
    expected = sorted(tasks, key=lambda t: (-t.priority, t.run_at, t.id))[:10]
    assert [t.id for t in got] == [t.id for t in expected]


async def test_delayed_task_is_claimable_only_when_due(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
) -> None:
    task = make_task(state=TaskState.SCHEDULED, run_at=clock.now() + 3600)
    await backend.enqueue([task])
    assert await claim(backend) == []
    clock.advance(3599.5)
    assert await claim(backend) == []
    assert (await backend.get_tasks([task.id]))[0] == task  # a delay holds no lease
    clock.advance(0.5)
    assert [t.id for t in await claim(backend)] == [task.id]


async def test_claim_exclusive_across_eight_connections(
    db_path: Path, make_task: MakeTask, clock: ManualClock
) -> None:
    backends = [SQLiteBackend(db_path, clock=clock) for _ in range(8)]
    await asyncio.gather(*(b.open() for b in backends))
    try:
        tasks = [make_task() for _ in range(2000)]
        await backends[0].enqueue(tasks)

        async def drain(b: SQLiteBackend, n: int) -> list[str]:
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
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
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
    [run2] = await claim(backend, worker_id="alive")
    assert (run2.attempt, run2.worker_id) == (2, "alive")
    with pytest.raises(LeaseLostError) as info:
        await backend.finish([done(run1)])
    assert info.value.task_ids == (task.id,)
    assert (await backend.get_tasks([task.id]))[0] == run2  # the stale outcome wrote nothing


async def test_expired_lease_without_retries_left_fails(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
) -> None:
    task = make_task(max_retries=0)
    await backend.enqueue([task])
    await claim(backend, worker_id="gone", lease=5)
    clock.advance(60)
    [failed] = await backend.requeue_expired()
    assert failed.state == TaskState.FAILED
    assert failed.finished_at == clock.now()
    assert failed.error is not None
    assert failed.error.type == "omniq.errors.WorkerLostError"
    assert "worker gone stopped heartbeating" in failed.error.message
    assert await claim(backend) == []


async def test_fencing_of_finish_and_extend(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
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
    with pytest.raises(LeaseLostError) as info:
        await backend.finish([done(a1, "failed"), done(b1, result=b"ok")])
    assert info.value.task_ids == (a.id,)
    [a_now, b_now] = await backend.get_tasks([a.id, b.id])
    assert a_now == a2
    assert b_now is not None
    assert b_now.state == TaskState.SUCCESS
    assert b_now.lease_expires_at is None
    assert [r.data if r else None for r in await backend.get_results([a.id, b.id])] == [None, b"ok"]


async def test_retry_outcome_schedules_without_lease(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
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
    assert run2.attempt == 2
    with pytest.raises(ValueError, match="needs retry_at"):
        await backend.finish([done(run2, "scheduled")])
    with pytest.raises(ValueError, match="not final"):
        await backend.finish([done(run2, "running")])


async def test_release_returns_task_without_counting_attempt(
    backend: SQLiteBackend, make_task: MakeTask
) -> None:
    task = make_task()
    await backend.enqueue([task])
    [run] = await claim(backend)
    assert await backend.release([(task.id, 7), ("unknown", 1)]) == []  # stale pairs skipped
    assert await backend.release([(task.id, run.attempt)]) == [task.id]
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


async def test_cancel(backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock) -> None:
    running, pending, waiting, finished = (make_task() for _ in range(4))
    waiting.state = TaskState.WAITING
    await backend.enqueue([finished])
    [fin] = await claim(backend)
    await backend.finish([done(fin)])
    await backend.enqueue([running])
    [run] = await claim(backend)
    await backend.enqueue([pending, waiting])
    clock.advance(1)
    got = await backend.cancel(
        [finished.id, "missing", running.id, pending.id, waiting.id], error=CANCEL
    )
    assert [t.id for t in got] == [finished.id, running.id, pending.id, waiting.id]
    fin_now, run_now, pending_now, waiting_now = got
    assert fin_now.state == TaskState.SUCCESS
    assert fin_now.error is None
    assert run_now.state == TaskState.RUNNING
    assert run_now.cancel_requested
    for t in (pending_now, waiting_now):
        assert (t.state, t.error, t.finished_at) == (TaskState.CANCELLED, CANCEL, clock.now())
    assert await backend.extend_leases([(run.id, run.attempt)], lease=10) == [run.id]
    assert await claim(backend) == []


# -- results, listing, events, purge ----------------------------------------------------------
async def test_results_honour_expiry(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
) -> None:
    short, forever, none = make_task(), make_task(), make_task()
    await backend.enqueue([short, forever, none])
    runs = await claim(backend)
    ends = {short.id: clock.now() + 10, forever.id: None}
    await backend.finish(
        [
            done(t, result=b"v" if t.id != none.id else None, result_expires_at=ends.get(t.id))
            for t in runs
        ]
    )
    got = await backend.get_results([short.id, forever.id, none.id])
    assert [r.data if r else None for r in got] == [b"v", b"v", None]
    assert got[0] is not None
    assert (got[0].stored_at, got[0].expires_at) == (
        clock.now(),
        clock.now() + 10,
    )
    clock.advance(10)
    assert [r is None for r in await backend.get_results([short.id, forever.id])] == [True, False]


async def test_list_and_count(backend: SQLiteBackend, make_task: MakeTask) -> None:
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


async def test_events(backend: SQLiteBackend, clock: ManualClock) -> None:
    def ev(i: int, task: str, at: float) -> TaskEvent:
        return TaskEvent(id=f"e{i:03d}", task_id=task, type=EventType.ENQUEUED, at=at, detail="ü")

    now = clock.now()
    events = [ev(1, "t1", now + 2), ev(2, "t2", now), ev(3, "t1", now + 1), ev(4, "t1", now + 1)]
    await backend.append_events(events)
    await backend.append_events([ev(1, "t1", now + 2), ev(5, "t2", now + 3)])  # e001 ignored
    assert [e.id for e in await backend.list_events()] == ["e002", "e003", "e004", "e001", "e005"]
    assert await backend.list_events(task_id="t1", limit=2) == [events[2], events[3]]


async def test_purge(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock, raw_db: RawDB
) -> None:
    t0 = clock.now()
    old, recent, running, pending = (make_task() for _ in range(4))
    await backend.enqueue([old, recent, running])
    run_old, run_recent, _ = await claim(backend)
    await backend.finish(
        [
            done(run_old, at=t0, result=b"kept forever"),
            done(run_recent, at=t0 + 100, result=b"x", result_expires_at=t0 + 5),
        ]
    )
    await backend.enqueue([pending])
    # More old events than one purge batch (5000), so purge loops.
    events = [
        TaskEvent(id=f"e{i:05d}", task_id="t", type=EventType.COMPLETE, at=t0 + (i >= 6001))
        for i in range(6011)
    ]
    await backend.append_events(events)
    clock.advance(5)
    deleted = await backend.purge(finished_before=t0 + 4, events_before=t0 + 0.5)
    assert deleted == (1, 6001)
    got = await backend.get_tasks([old.id, recent.id, running.id, pending.id])
    assert [t is None for t in got] == [True, False, False, False]
    assert raw_db("SELECT count(*) FROM omniq_results") == [(0,)]  # old's, and the expired one
    assert [e.id for e in await backend.list_events(limit=100)] == [e.id for e in events[6001:]]


# -- bad data ---------------------------------------------------------------------------------
async def test_corrupt_row_fails_alone(
    backend: SQLiteBackend, make_task: MakeTask, raw_db: RawDB
) -> None:
    good1, bad, good2 = make_task(), make_task(headers={"a": "b"}), make_task()
    await backend.enqueue([good1, bad, good2])
    raw_db("UPDATE omniq_tasks SET headers = '{not json' WHERE id = ?", (bad.id,))
    listed = await backend.list_tasks(TaskQuery())  # a listing shows it, salvaged
    assert [t.id for t in listed] == [good2.id, bad.id, good1.id]
    assert listed[1].error is not None
    assert "headers" in listed[1].error.message
    claimed = await claim(backend)
    assert [t.id for t in claimed] == [good1.id, good2.id]
    [failed] = await backend.get_tasks([bad.id])
    assert failed is not None
    assert failed.state == TaskState.FAILED
    assert failed.headers == {}
    assert failed.error is not None
    assert failed.error.type == "omniq.errors.DeserializationError"
    assert f"stored task {bad.id!r} cannot be decoded: headers" in failed.error.message
    assert raw_db("SELECT state FROM omniq_tasks WHERE id = ?", (bad.id,)) == [("failed",)]


async def test_invalid_state_text_does_not_break_reads(
    backend: SQLiteBackend, make_task: MakeTask, raw_db: RawDB
) -> None:
    good, bad = make_task(), make_task()
    await backend.enqueue([good, bad])
    with pytest.raises(sqlite3.IntegrityError):  # the schema refuses it…
        raw_db("UPDATE omniq_tasks SET state = 'bogus' WHERE id = ?", (bad.id,))
    raw_db("PRAGMA ignore_check_constraints = ON")  # …unless forced
    raw_db("UPDATE omniq_tasks SET state = 'bogus' WHERE id = ?", (bad.id,))
    [g, b] = await backend.get_tasks([good.id, bad.id])
    assert g == good
    assert b is not None
    assert b.state == TaskState.FAILED
    assert b.error is not None
    assert "unknown state 'bogus'" in b.error.message
    assert len(await backend.list_tasks(TaskQuery())) == 2
    assert await backend.count_tasks(TaskQuery()) == {TaskState.PENDING: 1}
    assert [t.id for t in await claim(backend)] == [good.id]


def test_sqlite_file_is_readable_with_plain_sqlite3(db_path: Path) -> None:
    async def make() -> None:
        async with SQLiteBackend(db_path):
            pass

    asyncio.run(make())
    with closing(sqlite3.connect(db_path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"omniq_tasks", "omniq_results", "omniq_events", "omniq_schema_version"} <= tables


async def test_lost_lease_error_still_reports_cancel_requests_of_valid_leases(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
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
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
) -> None:
    expiring, releasing = make_task(max_retries=5), make_task(max_retries=5)
    await backend.enqueue([expiring, releasing])
    [e1, r1] = await claim(backend, lease=10)
    await backend.cancel([e1.id, r1.id], error=ErrorInfo(type="x.Cancelled", message="stop"))
    assert await backend.release([(r1.id, r1.attempt)]) == [r1.id]
    clock.advance(11)
    [expired] = await backend.requeue_expired()
    [released] = await backend.get_tasks([r1.id])
    assert expired.state == TaskState.CANCELLED
    assert released is not None
    assert released.state == TaskState.CANCELLED
    assert await claim(backend) == []


async def test_finish_and_claim_stores_outcomes_and_claims_in_one_round(
    backend: SQLiteBackend, make_task: MakeTask, clock: ManualClock
) -> None:
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
    # outcomes only (limit 0), and a claim only (no outcomes)
    assert await backend.finish_and_claim(
        [done(claimed[0])], queues=["default"], worker_id="w1", limit=0, lease=30
    ) == ([], [])
    stale, only_claim = await backend.finish_and_claim(
        [], queues=["default"], worker_id="w1", limit=5, lease=30
    )
    assert (stale, [t.id for t in only_claim]) == ([], [third.id])

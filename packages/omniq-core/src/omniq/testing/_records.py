"""Conformance: idempotency, results and TTL, cancellation, listing, events, purge, payloads."""

from __future__ import annotations

import pytest

from omniq.backend import Backend, TaskQuery
from omniq.clock import ManualClock
from omniq.models import ErrorInfo, EventType, TaskEvent, TaskState
from omniq.testing._fixtures import MakeTask
from omniq.testing._support import claim, outcome, requires

__all__ = ["RecordConformance"]

CANCEL = ErrorInfo(type="omniq.errors.TaskCancelledError", message="cancelled by request")


class RecordConformance:
    """Idempotency, invariant 7 (one TTL meaning) at the store, cancellation, invariant 8
    (bounded storage), listing and counting, and what payloads a store must carry."""

    @pytest.mark.asyncio
    async def test_enqueue_is_idempotent_by_id_and_by_key(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        first = omniq_make_task(idempotency_key="order-42")
        [stored] = await omniq_backend.enqueue([first])
        assert stored.id == first.id
        same_id = omniq_make_task(id=first.id, func="other:func")
        same_key = omniq_make_task(idempotency_key="order-42")
        fresh = omniq_make_task(idempotency_key="order-43")
        got = await omniq_backend.enqueue([same_id, same_key, fresh])
        assert [t.id for t in got] == [first.id, first.id, fresh.id]
        assert got[0].func == first.func  # the existing task, not the new input
        assert len(await omniq_backend.list_tasks(TaskQuery())) == 2

    @pytest.mark.asyncio
    async def test_a_batch_is_written_whole(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        requires(omniq_backend, "atomic_batches")
        tasks = [omniq_make_task() for _ in range(50)]
        await omniq_backend.enqueue(tasks)
        assert len(await omniq_backend.list_tasks(TaskQuery(limit=100))) == 50

    @pytest.mark.asyncio
    async def test_results_follow_their_expiry(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        forever, brief, nothing = omniq_make_task(), omniq_make_task(), omniq_make_task()
        await omniq_backend.enqueue([forever, brief, nothing])
        runs = {t.id: t for t in await claim(omniq_backend)}
        now = omniq_clock.now()
        await omniq_backend.finish(
            [
                outcome(runs[forever.id], result=b"kept", result_expires_at=None),
                outcome(runs[brief.id], result=b"brief", result_expires_at=now + 10),
                outcome(runs[nothing.id], result=None),
            ]
        )
        got = await omniq_backend.get_results([forever.id, brief.id, nothing.id, "unknown"])
        assert [r.data if r else None for r in got] == [b"kept", b"brief", None, None]
        omniq_clock.advance(10)
        got = await omniq_backend.get_results([forever.id, brief.id])
        assert [r.data if r else None for r in got] == [b"kept", None]

    @pytest.mark.asyncio
    async def test_purge_deletes_expired_results_for_good(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        start = omniq_clock.now()
        brief, later, forever = omniq_make_task(), omniq_make_task(), omniq_make_task()
        await omniq_backend.enqueue([brief, later, forever])
        runs = {t.id: t for t in await claim(omniq_backend)}
        await omniq_backend.finish(
            [
                outcome(
                    runs[brief.id], result=b"b", finished_at=start, result_expires_at=start + 10
                ),
                outcome(
                    runs[later.id], result=b"l", finished_at=start, result_expires_at=start + 99
                ),
                outcome(runs[forever.id], result=b"f", finished_at=start),
            ]
        )
        omniq_clock.set(start + 10)  # expiry is inclusive: gone at expires_at
        await omniq_backend.purge(finished_before=start - 1, events_before=start - 1)
        # Back before the expiry: only a result that was really deleted stays invisible.
        omniq_clock.set(start)
        got = await omniq_backend.get_results([brief.id, later.id, forever.id])
        assert [r.data if r else None for r in got] == [None, b"l", b"f"]
        tasks = await omniq_backend.get_tasks([brief.id, later.id, forever.id])
        assert all(t is not None and t.state is TaskState.SUCCESS for t in tasks)

    @pytest.mark.asyncio
    async def test_cancel_stops_queued_tasks_and_flags_running_ones(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        running, pending, delayed, done = (omniq_make_task(max_retries=5) for _ in range(4))
        delayed.state, delayed.run_at = TaskState.SCHEDULED, omniq_clock.now() + 60
        await omniq_backend.enqueue([done])
        [d] = await claim(omniq_backend)
        await omniq_backend.finish([outcome(d)])
        await omniq_backend.enqueue([running])
        [run] = await claim(omniq_backend)
        await omniq_backend.enqueue([pending, delayed])
        got = await omniq_backend.cancel(
            [running.id, pending.id, delayed.id, done.id, "x"], error=CANCEL
        )
        states = {t.id: t for t in got}
        assert set(states) == {running.id, pending.id, delayed.id, done.id}
        assert states[pending.id].state is TaskState.CANCELLED
        assert states[delayed.id].state is TaskState.CANCELLED
        assert states[done.id].state is TaskState.SUCCESS
        assert states[running.id].state is TaskState.RUNNING
        assert states[running.id].cancel_requested
        omniq_clock.advance(120)
        assert await claim(omniq_backend) == []  # cancelled tasks never run
        assert await omniq_backend.extend_leases([(run.id, run.attempt)], lease=30) == [running.id]
        # a failure now would be retried, but a cancelled task never is
        error = ErrorInfo(type="builtins.ValueError", message="boom")
        await omniq_backend.finish(
            [outcome(run, TaskState.SCHEDULED, error=error, retry_at=omniq_clock.now())]
        )
        [after] = await omniq_backend.get_tasks([running.id])
        assert after is not None and after.state is TaskState.CANCELLED
        assert await claim(omniq_backend) == []

    @pytest.mark.asyncio
    async def test_list_and_count_filter_order_and_page(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        mail = [omniq_make_task(queue="mail") for _ in range(3)]
        reports = [omniq_make_task(queue="reports") for _ in range(2)]
        await omniq_backend.enqueue(mail + reports)
        [run] = await claim(omniq_backend, queues=["reports"], limit=1)
        await omniq_backend.finish([outcome(run)])
        newest_first = [t.id for t in await omniq_backend.list_tasks(TaskQuery())]
        assert newest_first == sorted(newest_first, reverse=True)
        assert set(newest_first) == {t.id for t in mail + reports}
        page = await omniq_backend.list_tasks(TaskQuery(limit=2))
        rest = await omniq_backend.list_tasks(TaskQuery(before_id=page[-1].id))
        assert [t.id for t in page + rest] == newest_first
        only_mail = await omniq_backend.list_tasks(TaskQuery(queues=("mail",)))
        assert {t.id for t in only_mail} == {t.id for t in mail}
        done = await omniq_backend.list_tasks(TaskQuery(states=(TaskState.SUCCESS,)))
        assert [t.id for t in done] == [run.id]
        assert await omniq_backend.count_tasks(TaskQuery()) == {
            TaskState.PENDING: 4,
            TaskState.SUCCESS: 1,
        }
        assert await omniq_backend.count_tasks(TaskQuery(queues=("reports",))) == {
            TaskState.PENDING: 1,
            TaskState.SUCCESS: 1,
        }
        assert await omniq_backend.count_by_worker(TaskQuery()) == {"w1": 1}
        assert await omniq_backend.get_tasks(["unknown", mail[0].id]) == [
            None,
            (await omniq_backend.get_tasks([mail[0].id]))[0],
        ]

    @pytest.mark.asyncio
    async def test_events_are_appended_once_and_listed_in_order(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        now = omniq_clock.now()

        def event(i: int, task_id: str, at: float) -> TaskEvent:
            return TaskEvent(
                id=f"e{i:03d}", task_id=task_id, type=EventType.COMPLETE, at=at, detail="ü✓"
            )

        first = [event(1, "t1", now + 2), event(2, "t2", now), event(3, "t1", now + 1)]
        await omniq_backend.append_events(first)
        await omniq_backend.append_events([event(1, "t1", now + 2), event(4, "t2", now + 3)])
        listed = await omniq_backend.list_events()
        assert [e.id for e in listed] == ["e002", "e003", "e001", "e004"]
        assert [e.id for e in await omniq_backend.list_events(task_id="t1")] == ["e003", "e001"]
        assert await omniq_backend.list_events(limit=1) == [listed[0]]

    @pytest.mark.asyncio
    async def test_purge_removes_old_finished_tasks_results_and_events(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        start = omniq_clock.now()
        old, recent, queued = omniq_make_task(), omniq_make_task(), omniq_make_task()
        await omniq_backend.enqueue([old, recent])
        runs = {t.id: t for t in await claim(omniq_backend)}
        await omniq_backend.enqueue([queued])
        await omniq_backend.finish(
            [
                outcome(runs[old.id], result=b"o", finished_at=start),
                outcome(
                    runs[recent.id],
                    result=b"r",
                    finished_at=start + 100,
                    result_expires_at=start + 50,
                ),
            ]
        )
        await omniq_backend.append_events(
            [
                TaskEvent(id="e1", task_id=old.id, type=EventType.COMPLETE, at=start),
                TaskEvent(id="e2", task_id=recent.id, type=EventType.COMPLETE, at=start + 100),
            ]
        )
        omniq_clock.set(start + 200)
        assert await omniq_backend.purge(finished_before=start + 10, events_before=start + 10) == (
            1,
            1,
        )
        got = await omniq_backend.get_tasks([old.id, recent.id, queued.id])
        assert [t is None for t in got] == [True, False, False]
        assert await omniq_backend.get_results([old.id, recent.id]) == [None, None]
        assert [e.id for e in await omniq_backend.list_events()] == ["e2"]

    @pytest.mark.asyncio
    async def test_unicode_and_a_one_megabyte_payload_round_trip(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        big = bytes(range(256)) * 4096  # 1 MiB, every byte value
        task = omniq_make_task(
            payload=big,
            queue="файлы-📁",
            func="módulo:función",
            idempotency_key="ключ 🔑",
            headers={"ünïcode": "✓ 中文"},
        )
        await omniq_backend.enqueue([task])
        [stored] = await omniq_backend.get_tasks([task.id])
        assert stored == task
        [run] = await claim(omniq_backend, queues=["файлы-📁"])
        assert run.payload == big
        await omniq_backend.finish([outcome(run, result=big)])
        [result] = await omniq_backend.get_results([task.id])
        assert result is not None and result.data == big

    @pytest.mark.asyncio
    async def test_a_cancel_requested_while_running_survives_expiry_and_release(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        expiring, releasing = omniq_make_task(max_retries=5), omniq_make_task(max_retries=5)
        await omniq_backend.enqueue([expiring, releasing])
        runs = {t.id: t for t in await claim(omniq_backend, lease=10)}
        await omniq_backend.cancel([expiring.id, releasing.id], error=CANCEL)
        released = runs[releasing.id]
        assert await omniq_backend.release([(released.id, released.attempt)]) == [released.id]
        omniq_clock.advance(11)
        [expired] = await omniq_backend.requeue_expired()
        [after_release] = await omniq_backend.get_tasks([releasing.id])
        assert expired.state is TaskState.CANCELLED
        assert after_release is not None and after_release.state is TaskState.CANCELLED
        omniq_clock.advance(3600)
        assert await claim(omniq_backend) == []  # a cancelled task is never run again

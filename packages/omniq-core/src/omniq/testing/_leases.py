"""Conformance: at-least-once recovery of expired leases, fencing, heartbeats and release."""

from __future__ import annotations

import msgspec
import pytest

from omniq.backend import Backend
from omniq.clock import ManualClock
from omniq.errors import LeaseLostError
from omniq.models import ErrorInfo, TaskState
from omniq.testing._fixtures import MakeTask
from omniq.testing._support import claim, outcome

__all__ = ["LeaseConformance"]

WORKER_LOST = "omniq.errors.WorkerLostError"
CANCEL = ErrorInfo(type="omniq.errors.TaskCancelledError", message="cancelled by request")


class LeaseConformance:
    """Invariants 2 (at-least-once) and 3 (fencing)."""

    @pytest.mark.asyncio
    async def test_an_expired_lease_is_recovered_and_counted_as_an_attempt(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        task = omniq_make_task(max_retries=2)
        await omniq_backend.enqueue([task])
        await claim(omniq_backend, worker_id="dead", lease=10)
        omniq_clock.advance(5)
        assert await omniq_backend.requeue_expired() == []  # not yet
        omniq_clock.advance(6)
        [recovered] = await omniq_backend.requeue_expired()
        assert recovered.id == task.id
        assert (recovered.state, recovered.attempt) == (TaskState.PENDING, 1)
        assert recovered.error is not None and recovered.error.type == WORKER_LOST
        assert await omniq_backend.requeue_expired() == []  # exactly once
        [again] = await claim(omniq_backend, worker_id="alive")
        assert (again.attempt, again.worker_id) == (2, "alive")

    @pytest.mark.asyncio
    async def test_an_expired_lease_with_no_runs_left_fails_as_worker_lost(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        task = omniq_make_task(max_retries=0)
        await omniq_backend.enqueue([task])
        await claim(omniq_backend, lease=10)
        omniq_clock.advance(11)
        [failed] = await omniq_backend.requeue_expired()
        assert failed.state is TaskState.FAILED
        assert failed.error is not None and failed.error.type == WORKER_LOST
        assert await claim(omniq_backend) == []

    @pytest.mark.asyncio
    async def test_a_heartbeat_keeps_the_lease(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        task = omniq_make_task()
        await omniq_backend.enqueue([task])
        [run] = await claim(omniq_backend, lease=10)
        for _ in range(5):
            omniq_clock.advance(6)
            assert await omniq_backend.extend_leases([(run.id, run.attempt)], lease=10) == []
            assert await omniq_backend.requeue_expired() == []
        [stored] = await omniq_backend.get_tasks([task.id])
        assert stored is not None and stored.lease_expires_at == omniq_clock.now() + 10

    @pytest.mark.asyncio
    async def test_a_stale_finish_is_rejected_and_writes_nothing(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        task, bystander = omniq_make_task(max_retries=3), omniq_make_task()
        await omniq_backend.enqueue([task, bystander])
        [old, other] = sorted(await claim(omniq_backend, lease=10), key=lambda t: t.id != task.id)
        omniq_clock.advance(11)
        await omniq_backend.extend_leases([(other.id, other.attempt)], lease=100)
        await omniq_backend.requeue_expired()
        [new] = await claim(omniq_backend, worker_id="w2", lease=10)
        with pytest.raises(LeaseLostError) as info:
            await omniq_backend.finish([outcome(old, result=b"late"), outcome(other, result=b"ok")])
        assert info.value.task_ids == (task.id,)
        [now_task, now_other] = await omniq_backend.get_tasks([task.id, bystander.id])
        assert now_task is not None and (now_task.state, now_task.attempt) == (
            TaskState.RUNNING,
            new.attempt,
        )
        assert now_other is not None and now_other.state is TaskState.SUCCESS
        [late, ok] = await omniq_backend.get_results([task.id, bystander.id])
        assert late is None and ok is not None and ok.data == b"ok"
        await omniq_backend.finish(
            [outcome(new, result=b"fresh")]
        )  # the owner's finish still works

    @pytest.mark.asyncio
    async def test_a_stale_extend_is_rejected_and_keeps_the_others(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        lost, kept = omniq_make_task(max_retries=3), omniq_make_task()
        await omniq_backend.enqueue([lost, kept])
        runs = {t.id: t for t in await claim(omniq_backend, lease=10)}
        await omniq_backend.cancel([kept.id], error=CANCEL)
        omniq_clock.advance(11)
        await omniq_backend.extend_leases([(kept.id, runs[kept.id].attempt)], lease=10)
        await omniq_backend.requeue_expired()
        pairs = [(t.id, t.attempt) for t in runs.values()]
        with pytest.raises(LeaseLostError) as info:
            await omniq_backend.extend_leases(pairs, lease=10)
        assert info.value.task_ids == (lost.id,)
        assert info.value.cancel_requested == (kept.id,)

    @pytest.mark.asyncio
    async def test_finish_and_claim_reports_stale_outcomes_and_still_claims(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        first, second = omniq_make_task(), omniq_make_task()
        await omniq_backend.enqueue([first])
        [run] = await claim(omniq_backend)
        await omniq_backend.enqueue([second])
        forged = msgspec.structs.replace(outcome(run), attempt=run.attempt + 7)
        stale, claimed = await omniq_backend.finish_and_claim(
            [outcome(run, result=b"1"), forged],
            queues=["default"],
            worker_id="w1",
            limit=5,
            lease=30,
        )
        assert stale == [first.id]
        assert [t.id for t in claimed] == [second.id]
        [stored] = await omniq_backend.get_results([first.id])
        assert stored is not None and stored.data == b"1"

    @pytest.mark.asyncio
    async def test_a_retry_waits_in_the_store_without_a_lease(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        task = omniq_make_task(max_retries=1)
        await omniq_backend.enqueue([task])
        [run] = await claim(omniq_backend, lease=10)
        error = ErrorInfo(type="builtins.ValueError", message="boom")
        retry_at = omniq_clock.now() + 60
        await omniq_backend.finish(
            [outcome(run, TaskState.SCHEDULED, error=error, retry_at=retry_at)]
        )
        [stored] = await omniq_backend.get_tasks([task.id])
        assert stored is not None
        assert (stored.state, stored.run_at, stored.lease_expires_at) == (
            TaskState.SCHEDULED,
            retry_at,
            None,
        )
        assert stored.error == error
        omniq_clock.advance(59)
        assert await claim(omniq_backend) == []
        omniq_clock.advance(1)
        [again] = await claim(omniq_backend)
        assert again.attempt == 2

    @pytest.mark.asyncio
    async def test_release_gives_the_task_back_without_using_a_retry(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        task = omniq_make_task(max_retries=0)
        await omniq_backend.enqueue([task])
        [run] = await claim(omniq_backend)
        assert await omniq_backend.release([("unknown", 1), (task.id, run.attempt + 1)]) == []
        assert await omniq_backend.release([(task.id, run.attempt)]) == [task.id]
        [stored] = await omniq_backend.get_tasks([task.id])
        assert stored is not None
        assert (stored.state, stored.attempt, stored.released) == (TaskState.PENDING, 1, 1)
        [again] = await claim(omniq_backend)
        assert (again.attempt, again.runs_used) == (2, 1)  # a new token; the retry budget kept
        with pytest.raises(LeaseLostError):  # the releasing holder's token is dead for good
            await omniq_backend.finish([outcome(run)])

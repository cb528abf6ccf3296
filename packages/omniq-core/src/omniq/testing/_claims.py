"""Conformance: exclusive claim, claim order, delays, queue and executor filters."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter

import pytest

from omniq.backend import Backend
from omniq.clock import ManualClock
from omniq.models import TaskState
from omniq.testing._fixtures import MakeTask, OpenBackend
from omniq.testing._support import claim, requires

__all__ = ["ClaimConformance"]


class ClaimConformance:
    """Invariants 1 (exclusive claim) and 4 (delays are not leases), and claim order."""

    @pytest.mark.asyncio
    async def test_claim_leases_each_due_task_once(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        tasks = [omniq_make_task() for _ in range(5)]
        assert [t.id for t in await omniq_backend.enqueue(tasks)] == [t.id for t in tasks]
        claimed = await claim(omniq_backend, limit=10, lease=30)
        assert sorted(t.id for t in claimed) == sorted(t.id for t in tasks)
        for task in claimed:
            assert task.state is TaskState.RUNNING
            assert (task.attempt, task.worker_id) == (1, "w1")
            assert task.started_at == omniq_clock.now()
            assert task.lease_expires_at == omniq_clock.now() + 30
        assert await claim(omniq_backend) == []

    @pytest.mark.asyncio
    async def test_concurrent_claimers_never_receive_the_same_task(
        self, omniq_backend: Backend, omniq_open_backend: OpenBackend, omniq_make_task: MakeTask
    ) -> None:
        tasks = [omniq_make_task() for _ in range(240)]
        await omniq_backend.enqueue(tasks)
        claimers = [await omniq_open_backend() for _ in range(8)]

        async def drain(instance: Backend, worker_id: str) -> list[str]:
            got: list[str] = []
            empty = 0
            for _ in range(len(tasks)):  # bounded: a broken store may never run dry
                batch = await claim(instance, worker_id=worker_id, limit=7)
                got += [t.id for t in batch]
                # "up to limit": a claimer that lost every race may get nothing this time
                empty = 0 if batch else empty + 1
                if empty == 3:
                    break
            return got

        results = await asyncio.gather(*(drain(c, f"w{i}") for i, c in enumerate(claimers)))
        results.append(await drain(omniq_backend, "sweeper"))
        counts = Counter(task_id for got in results for task_id in got)
        assert set(counts) == {t.id for t in tasks}
        assert max(counts.values()) == 1, "a task was handed to two claimers"

    @pytest.mark.asyncio
    async def test_claimers_in_several_processes_never_receive_the_same_task(
        self, omniq_backend: Backend, backend_url: str, omniq_make_task: MakeTask
    ) -> None:
        requires(omniq_backend, "cross_process")
        tasks = [omniq_make_task(run_at=0.0) for _ in range(150)]  # due for the real clock too
        await omniq_backend.enqueue(tasks)
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "omniq.testing._claimer",
                backend_url,
                f"p{i}",
                str(len(tasks)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(3)
        ]
        outputs = await asyncio.gather(*(p.communicate() for p in procs))
        errors = "\n".join(err.decode() for _, err in outputs)
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        claimed = [line.split()[0] for out, _ in outputs for line in out.decode().splitlines()]
        counts = Counter(claimed)
        assert set(counts) == {t.id for t in tasks}
        assert max(counts.values()) == 1, "a task was handed to two processes"

    @pytest.mark.asyncio
    async def test_higher_priority_first_then_first_in_first_out(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        requires(omniq_backend, "priority")
        now = omniq_clock.now()
        low1 = omniq_make_task(priority=0, run_at=now - 3)
        high = omniq_make_task(priority=5, run_at=now - 1)
        low2 = omniq_make_task(priority=0, run_at=now - 2)
        mid = omniq_make_task(priority=2, run_at=now)
        await omniq_backend.enqueue([low1, high, low2, mid])
        order = [t.id for t in await claim(omniq_backend, limit=1)]
        order += [t.id for t in await claim(omniq_backend, limit=3)]
        assert order == [high.id, mid.id, low1.id, low2.id]

    @pytest.mark.asyncio
    async def test_first_in_first_out_without_priorities(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, omniq_clock: ManualClock
    ) -> None:
        now = omniq_clock.now()
        tasks = [omniq_make_task(run_at=now - 10 + i) for i in range(6)]
        await omniq_backend.enqueue(list(reversed(tasks)))
        got = [t.id for t in await claim(omniq_backend, limit=2)]
        got += [t.id for t in await claim(omniq_backend, limit=4)]
        assert got == [t.id for t in tasks]

    @pytest.mark.asyncio
    async def test_a_delay_longer_than_the_lease_is_never_delivered_early_nor_twice(
        self,
        omniq_backend: Backend,
        omniq_open_backend: OpenBackend,
        omniq_make_task: MakeTask,
        omniq_clock: ManualClock,
    ) -> None:
        lease = 10.0
        delayed = omniq_make_task(state=TaskState.SCHEDULED, run_at=omniq_clock.now() + 5 * lease)
        await omniq_backend.enqueue([delayed])
        other = await omniq_open_backend()
        for _ in range(4):  # well past several leases, still before it is due
            omniq_clock.advance(lease + 1)
            assert await omniq_backend.requeue_expired() == []
            assert await claim(omniq_backend, lease=lease) == []
            assert await claim(other, lease=lease) == []
        omniq_clock.set(delayed.run_at)
        first = await claim(omniq_backend, lease=lease)
        assert [t.id for t in first] == [delayed.id]
        assert await claim(other, lease=lease) == []
        [stored] = await omniq_backend.get_tasks([delayed.id])
        assert stored is not None and stored.attempt == 1

    @pytest.mark.asyncio
    async def test_claim_serves_only_the_given_queues_and_executors(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        unrouted = omniq_make_task(queue="mail", executor=None)
        routed_async = omniq_make_task(queue="mail", executor="async")
        threads_only = omniq_make_task(queue="mail", executor="thread")
        other_queue = omniq_make_task(queue="reports", executor=None)
        await omniq_backend.enqueue([unrouted, routed_async, threads_only, other_queue])
        got = await claim(
            omniq_backend,
            queues=["mail"],
            executors={"async": 10},
            default_executor="async",
            limit=10,
        )
        assert {t.id for t in got} == {unrouted.id, routed_async.id}
        # Tasks naming no executor go only to a worker whose default executor is given.
        got = await claim(
            omniq_backend, queues=["mail", "reports"], executors={"thread": 10}, limit=10
        )
        assert {t.id for t in got} == {threads_only.id}
        got = await claim(
            omniq_backend,
            queues=["reports"],
            executors={"thread": 10},
            default_executor="thread",
            limit=10,
        )
        assert {t.id for t in got} == {other_queue.id}

    @pytest.mark.asyncio
    async def test_claim_takes_at_most_each_executors_free_slots(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        unrouted = [omniq_make_task(executor=None) for _ in range(3)]
        routed = [omniq_make_task(executor="async") for _ in range(3)]
        cpu = [omniq_make_task(executor="process") for _ in range(3)]
        await omniq_backend.enqueue([*unrouted, *routed, *cpu])
        got = await claim(
            omniq_backend,
            executors={"async": 2, "process": 1, "gevent": 5},
            default_executor="async",
            limit=10,
        )
        by_executor = sorted(t.executor or "async" for t in got)
        assert by_executor == ["async", "async", "process"]
        got = await claim(
            omniq_backend, executors={"async": 0, "process": 5}, default_executor="async"
        )
        assert len(got) == 2
        assert all(t.executor == "process" for t in got)
        got = await claim(omniq_backend, executors={"async": 10}, default_executor="async", limit=1)
        assert len(got) == 1
        rest = await claim(omniq_backend, executors={"async": 10}, default_executor="async")
        assert len(rest) == 6 - 2 - 1
        assert await claim(omniq_backend, executors={}, default_executor="async") == []

    @pytest.mark.asyncio
    async def test_claim_limit_caps_the_total_across_executors(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        tasks = [omniq_make_task(executor=e) for e in ("async", "process", "thread") * 3]
        await omniq_backend.enqueue(tasks)
        slots = {"async": 5, "process": 5, "thread": 5}
        got = await claim(omniq_backend, executors=slots, default_executor="async", limit=2)
        assert len(got) == 2
        rest = await claim(omniq_backend, executors=slots, default_executor="async", limit=100)
        assert len(rest) == 7
        assert {t.id for t in got}.isdisjoint(t.id for t in rest)

    @pytest.mark.asyncio
    async def test_claim_refuses_malformed_executor_slots(self, omniq_backend: Backend) -> None:
        with pytest.raises(TypeError, match="mapping of executor name to free slots"):
            await claim(omniq_backend, executors=["async"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="-1 slots"):
            await claim(omniq_backend, executors={"async": -1})

"""Conformance: worker health records (register, replace, list, expire, purge, remove)."""

from __future__ import annotations

from typing import Any

import pytest

from omniq.backend import Backend
from omniq.clock import ManualClock
from omniq.models import ExecutorStats, WorkerInfo, WorkerState
from omniq.testing._fixtures import OpenBackend

__all__ = ["WorkerConformance", "make_worker"]

EXPIRY = 15.0
"""Seconds a test record stays live (three heartbeats of the default 5 s)."""


def make_worker(
    clock: ManualClock, worker_id: str = "host-a:101:x1y2z3", **fields: Any
) -> WorkerInfo:
    """A worker record with every field set to a non-default value, heard from now."""
    now = clock.now()
    base: dict[str, Any] = {
        "id": worker_id,
        "host": "host-a",
        "pid": 101,
        "queues": ("default", "emails"),
        "executors": (
            ExecutorStats(
                name="thread",
                concurrency=8,
                busy=2,
                started=7,
                succeeded=4,
                failed=1,
                cancelled=0,
                run_seconds=1.25,
            ),
            ExecutorStats(name="async", concurrency=100, run_seconds=0.1 + 0.2),
        ),
        "capacity": 50,
        "running": ("0190a1b2-0000-7000-8000-000000000001", "0190a1b2-0000-7000-8000-000000000002"),
        "counters": {
            "claimed": 9,
            "succeeded": 4,
            "failed": 1,
            "retried": 2,
            "cancelled": 0,
            "lost": 0,
        },
        "started_at": now - 3600.5,
        "heartbeat_at": now,
        "expires_at": now + EXPIRY,
        "state": WorkerState.RUNNING,
        "version": "1.2.3",
    }
    base.update(fields)
    return WorkerInfo(**base)


class WorkerConformance:
    """Worker health records: ``put_worker`` is an upsert, ``list_workers`` shows live workers
    sorted by id, an expired record vanishes and ``purge`` deletes it, ``remove_worker``."""

    @pytest.mark.asyncio
    async def test_a_registered_worker_reads_back_exactly(
        self, omniq_backend: Backend, omniq_clock: ManualClock, omniq_open_backend: OpenBackend
    ) -> None:
        assert await omniq_backend.list_workers() == []
        info = make_worker(omniq_clock)
        await omniq_backend.put_worker(info)
        assert await omniq_backend.list_workers() == [info]
        other = await omniq_open_backend()  # another connection/instance on the same store
        assert await other.list_workers() == [info]

    @pytest.mark.asyncio
    async def test_put_worker_replaces_the_whole_record(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        await omniq_backend.put_worker(make_worker(omniq_clock))
        omniq_clock.advance(5)
        newer = make_worker(
            omniq_clock,
            state=WorkerState.STOPPING,
            executors=(ExecutorStats(name="thread", concurrency=8, succeeded=5),),
            running=(),
            counters={"claimed": 10, "succeeded": 5},
            queues=("default",),
        )
        await omniq_backend.put_worker(newer)
        assert await omniq_backend.list_workers() == [newer]

    @pytest.mark.asyncio
    async def test_workers_are_listed_by_id(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        ids = ["host-b:7:c", "host-a:9:z", "host-a:10:a"]
        for worker_id in ids:
            await omniq_backend.put_worker(make_worker(omniq_clock, worker_id))
        listed = await omniq_backend.list_workers()
        assert [w.id for w in listed] == sorted(ids)

    @pytest.mark.asyncio
    async def test_an_expired_worker_vanishes_and_purge_deletes_it(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        start = omniq_clock.now()
        await omniq_backend.put_worker(make_worker(omniq_clock, "dead"))
        alive = make_worker(omniq_clock, "alive", expires_at=start + 100)
        await omniq_backend.put_worker(alive)
        omniq_clock.advance(EXPIRY - 1)
        assert [w.id for w in await omniq_backend.list_workers()] == ["alive", "dead"]
        omniq_clock.advance(1)  # now == expires_at: dead
        assert await omniq_backend.list_workers() == [alive]
        await omniq_backend.purge(finished_before=start - 1, events_before=start - 1)
        assert await omniq_backend.list_workers() == [alive]  # purge keeps live workers
        omniq_clock.set(start)  # back before the expiry: a purged record stays gone
        assert await omniq_backend.list_workers() == [alive]

    @pytest.mark.asyncio
    async def test_a_heartbeat_revives_an_expired_record(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        await omniq_backend.put_worker(make_worker(omniq_clock, "late"))
        omniq_clock.advance(EXPIRY + 1)
        assert await omniq_backend.list_workers() == []
        again = make_worker(omniq_clock, "late")
        await omniq_backend.put_worker(again)
        assert await omniq_backend.list_workers() == [again]

    @pytest.mark.asyncio
    async def test_remove_worker(self, omniq_backend: Backend, omniq_clock: ManualClock) -> None:
        a, b = make_worker(omniq_clock, "a"), make_worker(omniq_clock, "b")
        await omniq_backend.put_worker(a)
        await omniq_backend.put_worker(b)
        await omniq_backend.remove_worker("a")
        assert await omniq_backend.list_workers() == [b]
        await omniq_backend.remove_worker("a")  # unknown ids are not an error
        await omniq_backend.remove_worker("never-registered")
        assert await omniq_backend.list_workers() == [b]

    @pytest.mark.asyncio
    async def test_unicode_and_unusual_worker_ids(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        ids = [
            "hôte-é:42:ß",
            "工作者/1",
            "rocket 🚀 worker",
            "dots.and:colons~tilde%percent#hash",
            "x" * 300,
        ]
        infos = [make_worker(omniq_clock, i, host=f"h-{n}") for n, i in enumerate(ids)]
        for info in infos:
            await omniq_backend.put_worker(info)
        assert await omniq_backend.list_workers() == sorted(infos, key=lambda w: w.id)
        for worker_id in ids[:3]:
            await omniq_backend.remove_worker(worker_id)
        assert [w.id for w in await omniq_backend.list_workers()] == sorted(ids[3:])

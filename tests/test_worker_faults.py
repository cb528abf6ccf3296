"""Fault injection around a real SQLite backend: the store failing while tasks run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import e2e_tasks
import pytest

from omniq import AsyncTaskQueue, TaskState
from omniq.config import Settings
from omniq.errors import BackendError


class Flaky:
    """Makes ``finish_and_claim`` and ``finish`` of one backend instance fail on demand."""

    def __init__(self, backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.failures_left = 0
        self.calls = 0
        for name in ("finish_and_claim", "finish"):
            real = getattr(backend, name)
            monkeypatch.setattr(backend, name, self._wrap(real))

    def _wrap(self, real: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.failures_left:
                self.failures_left -= 1
                raise BackendError("injected: database is locked")
            return await real(*args, **kwargs)

        return call


async def test_outcomes_survive_a_store_outage(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AsyncTaskQueue(settings=settings) as queue:
        flaky = Flaky(queue.backend, monkeypatch)
        flaky.failures_left = 3
        ids = [await queue.enqueue(e2e_tasks.add, args=(i, i)) for i in range(5)]
        assert [await queue.get_result(i, timeout=20) for i in ids] == [0, 2, 4, 6, 8]
        assert flaky.calls > 3
        events = await queue.list_events(limit=1000)
        assert sum(e.type == "complete" for e in events) == 5  # each recorded once, when stored


async def test_stop_gives_up_when_the_store_stays_down(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = AsyncTaskQueue(settings=settings)
    await queue.open()
    task_id = await queue.enqueue(e2e_tasks.slow, args=(0.5,))
    while (await queue.get_task(task_id)).state is not TaskState.RUNNING:
        await asyncio.sleep(0.01)
    flaky = Flaky(queue.backend, monkeypatch)
    flaky.failures_left = 10**6
    await asyncio.sleep(1.0)  # the task ends; its outcome cannot be stored
    started = time.monotonic()
    await queue.close(grace=1)
    assert time.monotonic() - started < 15
    assert flaky.calls >= 4  # it kept trying, then gave up
    async with AsyncTaskQueue(settings=settings, workers=0) as reader:
        task = await reader.get_task(task_id)
    # not lost: still leased (or released) and recovered by the next worker after expiry
    assert task.state in (TaskState.RUNNING, TaskState.PENDING)

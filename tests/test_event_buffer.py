"""The event buffer delays events through a store outage instead of losing them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from omniq._events import EventLogger
from omniq._ids import new_id
from omniq.errors import BackendError
from omniq.models import EventType, Task, TaskEvent
from omniq_sqlite.backend import SQLiteBackend


class FlakyEvents(SQLiteBackend):
    """Fault injection: the first ``failures`` event writes fail as if the file were locked."""

    failures = 2

    async def append_events(self, events: Sequence[TaskEvent]) -> None:
        if self.failures:
            self.failures -= 1
            raise BackendError("database is locked")
        await super().append_events(events)


@pytest.mark.asyncio
async def test_events_survive_failed_writes_and_are_stored_once(tmp_path: Path) -> None:
    async with FlakyEvents(tmp_path / "q.db") as backend:
        recorder = EventLogger(backend, capacity=100)
        task = Task(id=new_id(), func="m:f", payload=b"", run_at=0.0, created_at=0.0)
        recorder.record(task, EventType.EXECUTING)
        await recorder.flush()  # fails: kept
        recorder.record(task, EventType.COMPLETE)
        await recorder.flush()  # fails again: kept, oldest first
        await recorder.flush()  # the store is back
        stored = await backend.list_events(task_id=task.id)
    assert [e.type for e in stored] == [EventType.EXECUTING, EventType.COMPLETE]
    assert recorder.dropped == 0


@pytest.mark.asyncio
async def test_events_over_capacity_during_an_outage_are_counted(tmp_path: Path) -> None:
    async with FlakyEvents(tmp_path / "q.db") as backend:
        backend.failures = 10
        recorder = EventLogger(backend, capacity=3)
        task = Task(id=new_id(), func="m:f", payload=b"", run_at=0.0, created_at=0.0)
        for _ in range(3):
            recorder.record(task, EventType.EXECUTING)
        await recorder.flush()
        recorder.record(task, EventType.COMPLETE)  # over capacity while the store is down
        await recorder.stop()  # still down: what is left is counted, not stored
    assert recorder.dropped == 4

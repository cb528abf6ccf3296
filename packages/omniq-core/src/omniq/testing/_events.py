"""Conformance: the event log (issue 6): structured events, filters, both retentions, and the
subscription (``queue.events()``) seeing events another client stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from omniq._sync_client import TaskQueue
from omniq.backend import Backend
from omniq.clock import ManualClock
from omniq.models import ErrorInfo, EventLevel, EventType, TaskEvent
from omniq.testing import tasks

__all__ = ["EventConformance"]


def _event(
    i: int, at: float, *, task: str | None = "t1", type: EventType = EventType.COMPLETE
) -> TaskEvent:
    return TaskEvent(id=f"e{i:03d}", task_id=task, type=type, at=at)


async def _collect(client: Any, until: EventType, **filters: Any) -> list[TaskEvent]:
    """Events of a subscription, up to and including the first of type ``until``."""
    queue = client.queue
    if isinstance(queue, TaskQueue):

        def read() -> list[TaskEvent]:
            got = []
            for event in queue.events(**filters):
                got.append(event)
                if event.type is until:
                    break
            return got

        return await asyncio.wait_for(asyncio.to_thread(read), 30)
    got = []
    async with asyncio.timeout(30):
        async for event in queue.events(**filters):
            got.append(event)
            if event.type is until:
                break
    return got


class EventConformance:
    """Events keep every structured field, filter by task, type and time in ``(at, id)``
    order, are purged by age and by count, and reach subscribers from any client."""

    @pytest.mark.asyncio
    async def test_structured_events_round_trip_including_task_less_worker_events(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        now = omniq_clock.now()
        run = TaskEvent(
            id="e1",
            task_id="t1",
            type=EventType.ERROR,
            at=now,
            queue="mail",
            worker_id="w1",
            attempt=2,
            detail="ValueError: bad",
            duration=1.25,
            error=ErrorInfo(type="builtins.ValueError", message="bad ✓"),
        )
        worker = TaskEvent(id="e2", type=EventType.WORKER_STARTED, at=now + 1, worker_id="w1")
        await omniq_backend.append_events([run, worker])
        assert await omniq_backend.list_events() == [run, worker]
        assert worker.task_id is None and worker.level is EventLevel.INFO
        assert run.level is EventLevel.ERROR

    @pytest.mark.asyncio
    async def test_events_are_filtered_by_task_type_and_time(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        t = omniq_clock.now()
        events = [
            _event(1, t, type=EventType.ENQUEUED),
            _event(2, t + 1, type=EventType.EXECUTING),
            _event(3, t + 1, task="t2", type=EventType.COMPLETE),
            _event(4, t + 1, type=EventType.COMPLETE),
            _event(5, t + 2, task=None, type=EventType.WORKER_STOPPED),
        ]
        await omniq_backend.append_events(events[:3])
        await omniq_backend.append_events(events[3:])

        async def ids(**filters: Any) -> list[str]:
            return [e.id for e in await omniq_backend.list_events(**filters)]

        assert await ids() == ["e001", "e002", "e003", "e004", "e005"]
        assert await ids(types={EventType.COMPLETE}) == ["e003", "e004"]
        assert await ids(task_id="t1", types=[EventType.COMPLETE, EventType.ENQUEUED]) == [
            "e001",
            "e004",
        ]
        assert await ids(types=[]) == []
        assert await ids(since=t + 1) == ["e002", "e003", "e004", "e005"]
        assert await ids(since=t + 1.5) == ["e005"]
        assert await ids(since=t + 1, task_id="t1", limit=1) == ["e002"]
        # keyset paging: the page after (t + 1, "e002")
        assert await ids(since=t + 1, after_id="e002", limit=2) == ["e003", "e004"]
        assert await ids(since=t + 1, after_id="e004") == ["e005"]
        with pytest.raises(ValueError, match="after_id"):
            await omniq_backend.list_events(after_id="e002")

    @pytest.mark.asyncio
    async def test_purge_keeps_the_newest_max_events_and_drops_old_ones_by_age(
        self, omniq_backend: Backend, omniq_clock: ManualClock
    ) -> None:
        t = omniq_clock.now()
        for i in range(6):  # one batch each, as event loggers write them
            await omniq_backend.append_events([_event(i, t + i)])
        await omniq_backend.append_events([_event(6, t + 6), _event(7, t + 7)])
        assert await omniq_backend.purge(finished_before=t, events_before=t, max_events=100) == (
            0,
            0,
        )
        assert await omniq_backend.purge(finished_before=t, events_before=t + 1, max_events=5) == (
            0,
            3,  # e000 by age, e001 and e002 by count
        )
        assert [e.id for e in await omniq_backend.list_events()] == [
            "e003",
            "e004",
            "e005",
            "e006",
            "e007",
        ]
        await omniq_backend.purge(finished_before=t, events_before=t, max_events=1)
        assert [e.id for e in await omniq_backend.list_events()] == ["e007"]

    @pytest.mark.asyncio
    async def test_a_subscriber_sees_events_another_client_stored(
        self, omniq_make_client: Callable[..., Any], omniq_clock: ManualClock
    ) -> None:
        producer = await omniq_make_client(workers=0)
        await omniq_make_client(workers=1)  # runs the task and stores its events
        task_id = await producer.call("enqueue", tasks.echo, args=(1,))
        got = await _collect(
            producer, EventType.COMPLETE, task_id=task_id, since=omniq_clock.now() - 1
        )
        kinds = [e.type for e in got]
        assert kinds[-1] is EventType.COMPLETE
        assert EventType.EXECUTING in kinds and kinds.count(EventType.COMPLETE) == 1
        assert len({e.id for e in got}) == len(got)  # each once
        done = got[-1]
        assert done.task_id == task_id and done.worker_id is not None
        assert done.duration is not None and done.duration >= 0

    @pytest.mark.asyncio
    async def test_a_subscriber_gets_its_own_events_filtered_by_type(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client(workers=1)
        failing = await client.call("enqueue", tasks.fail, args=("boom",), retries=0)
        got = await _collect(client, EventType.ERROR, type=["error", EventType.COMPLETE])
        assert [e.type for e in got] == [EventType.ERROR]
        [error] = got
        assert error.task_id == failing
        assert error.error is not None and error.error.message == "boom"
        assert error.error.traceback == ""  # events stay small

    @pytest.mark.asyncio
    async def test_a_subscription_with_since_replays_the_history_first_in_order(
        self, omniq_make_client: Callable[..., Any], omniq_clock: ManualClock
    ) -> None:
        client = await omniq_make_client(workers=1)
        task_id = await client.call("enqueue", tasks.sleep, args=(0.3,))  # subscribe mid-run
        got = await _collect(
            client, EventType.COMPLETE, task_id=task_id, since=omniq_clock.now() - 60
        )
        assert [e.type for e in got] == [
            EventType.ENQUEUED,
            EventType.EXECUTING,
            EventType.COMPLETE,
        ]

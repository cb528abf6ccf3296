"""Conformance through the clients, in both flavours: ``AsyncTaskQueue`` and the sync
``TaskQueue`` (driven from a helper thread so the test's own event loop stays free)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from omniq._sync_client import TaskQueue
from omniq.backend import Backend
from omniq.client import AsyncTaskQueue
from omniq.clock import ManualClock
from omniq.config import load_settings
from omniq.errors import (
    ConfigError,
    ResultExpiredError,
    ResultNotStoredError,
    ResultTimeoutError,
    TaskCancelledError,
    TaskFailedError,
)
from omniq.models import TaskState
from omniq.testing import tasks
from omniq.testing._fixtures import MakeTask

__all__ = ["Client", "ClientConformance", "omniq_client_flavour", "omniq_make_client"]


class Client:
    """One client flavour behind an async face: each call awaits the async method, or runs the
    sync method in a helper thread."""

    def __init__(self, queue: AsyncTaskQueue | TaskQueue) -> None:
        self.queue = queue

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method: Callable[..., Any] = getattr(self.queue, name)
        if isinstance(self.queue, AsyncTaskQueue):
            return await method(*args, **kwargs)
        return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

    async def collect(self, name: str, *args: Any, **kwargs: Any) -> tuple[list[Any], Any]:
        """Run an iterator method to its end: ``(items, error)``, where ``error`` is the
        exception that ended the iteration (``None`` when it was exhausted)."""
        items: list[Any] = []
        method: Callable[..., Any] = getattr(self.queue, name)
        if isinstance(self.queue, AsyncTaskQueue):
            try:
                async for item in method(*args, **kwargs):
                    items.append(item)
            except Exception as exc:
                return items, exc
            return items, None

        def run() -> Any:
            try:
                for item in method(*args, **kwargs):
                    items.append(item)
            except Exception as exc:
                return exc
            return None

        error = await asyncio.to_thread(run)
        return items, error

    async def close(self) -> None:
        await self.call("close")


@pytest.fixture(params=["async", "sync"])
def omniq_client_flavour(request: pytest.FixtureRequest) -> str:
    """``"async"`` or ``"sync"``: every client scenario runs with both clients."""
    return str(request.param)


@pytest_asyncio.fixture
async def omniq_make_client(
    backend_url: str, omniq_clock: ManualClock, omniq_client_flavour: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """``await omniq_make_client(workers=1, **settings)``: a client of the tested flavour on
    ``backend_url``, with a short lease and fast polling; all are closed at teardown."""
    made: list[Client] = []

    async def make(workers: int = 1, **overrides: Any) -> Client:
        overrides = {
            "lease_seconds": 5.0,
            "poll_interval": 0.05,
            "shutdown_grace": 2.0,
            "retry_delay": 0.0,
            **overrides,
        }
        settings = load_settings({}, storage_url=backend_url, **overrides)
        queue: AsyncTaskQueue | TaskQueue
        if omniq_client_flavour == "async":
            queue = AsyncTaskQueue(settings=settings, workers=workers, clock=omniq_clock)
            await queue.open()
        else:
            queue = await asyncio.to_thread(
                TaskQueue, settings=settings, workers=workers, clock=omniq_clock
            )
        client = Client(queue)
        made.append(client)
        return client

    yield make
    for client in reversed(made):
        await client.close()


class ClientConformance:
    """End-to-end guarantees seen through both clients."""

    @pytest.mark.asyncio
    async def test_values_come_back_as_the_types_they_went_in_as(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client()
        value = (
            (1, "two"),
            dt.date(2026, 3, 29),
            dt.datetime(2026, 3, 29, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
            Decimal("1.10"),
            {"ключ": b"\x00\xff"},
        )
        task_id = await client.call("enqueue", tasks.echo, args=(value,))
        assert await client.call("get_result", task_id, timeout=20) == value
        result = await client.call("get_result", task_id, timeout=0)
        assert type(result[0]) is tuple and type(result[1]) is dt.date
        assert result[2].utcoffset() == dt.timedelta(hours=-3)

    @pytest.mark.asyncio
    async def test_result_ttl_none_zero_positive_and_negative(
        self, omniq_make_client: Callable[..., Any], omniq_clock: ManualClock
    ) -> None:
        client = await omniq_make_client()
        forever = await client.call("enqueue", tasks.echo, args=(1,), result_ttl=None)
        nothing = await client.call("enqueue", tasks.echo, args=(2,), result_ttl=0)
        brief = await client.call("enqueue", tasks.echo, args=(3,), result_ttl=30)
        assert await client.call("get_result", forever, timeout=20) == 1
        with pytest.raises(ResultNotStoredError):
            await client.call("get_result", nothing, timeout=20)
        assert await client.call("get_result", brief, timeout=20) == 3
        omniq_clock.advance(31)
        with pytest.raises(ResultExpiredError):
            await client.call("get_result", brief, timeout=0)
        assert await client.call("get_result", forever, timeout=0) == 1
        with pytest.raises(ConfigError):
            await client.call("enqueue", tasks.echo, args=(4,), result_ttl=-1)

    @pytest.mark.asyncio
    async def test_a_delayed_task_waits_for_its_time(
        self, omniq_make_client: Callable[..., Any], omniq_clock: ManualClock
    ) -> None:
        client = await omniq_make_client()
        task_id = await client.call("enqueue", tasks.echo, args=("later",), delay=3600)
        with pytest.raises(ResultTimeoutError):
            await client.call("get_result", task_id, timeout=0.5)
        assert (await client.call("get_task", task_id)).state is TaskState.SCHEDULED
        omniq_clock.advance(3600)
        assert await client.call("get_result", task_id, timeout=20) == "later"

    @pytest.mark.asyncio
    async def test_a_cancelled_queued_task_never_runs(
        self, omniq_make_client: Callable[..., Any], tmp_path: Path
    ) -> None:
        producer = await omniq_make_client(workers=0)
        runs = tmp_path / "runs"
        task_id = await producer.call("enqueue", tasks.append_run, args=(str(runs), "x"))
        assert await producer.call("cancel", task_id) is True
        worker = await omniq_make_client()
        marker = await worker.call("enqueue", tasks.echo, args=("after",))
        assert await worker.call("get_result", marker, timeout=20) == "after"
        with pytest.raises(TaskCancelledError):
            await worker.call("get_result", task_id, timeout=0)
        assert not runs.exists()

    @pytest.mark.asyncio
    async def test_failures_are_retried_then_reported_with_their_cause(
        self, omniq_make_client: Callable[..., Any], tmp_path: Path
    ) -> None:
        client = await omniq_make_client()
        counter = tmp_path / "count"
        ok = await client.call("enqueue", tasks.fail_times, args=(str(counter), 2), retries=2)
        assert await client.call("get_result", ok, timeout=20) == 3
        bad = await client.call("enqueue", tasks.fail, args=("kaputt",), retries=1)
        with pytest.raises(TaskFailedError) as info:
            await client.call("get_result", bad, timeout=20)
        assert (info.value.remote_type, info.value.remote_message) == (
            "builtins.ValueError",
            "kaputt",
        )
        assert (await client.call("get_task", bad)).attempt == 2

    @pytest.mark.asyncio
    async def test_an_undecodable_task_fails_alone_and_the_worker_keeps_serving(
        self,
        omniq_make_client: Callable[..., Any],
        omniq_backend: Backend,
        omniq_make_task: MakeTask,
    ) -> None:
        garbage = omniq_make_task(payload=b"\x07 not a payload", max_retries=3)
        forged = omniq_make_task(payload=b"\x02" + b"\x00" * 32 + b"\x80\x04K\x01.", max_retries=3)
        await omniq_backend.enqueue([garbage, forged])
        client = await omniq_make_client()
        for task_id in (garbage.id, forged.id):
            with pytest.raises(TaskFailedError) as info:
                await client.call("get_result", task_id, timeout=20)
            assert info.value.remote_type.startswith("omniq.errors.")
            assert (await client.call("get_task", task_id)).attempt == 1  # never retried
        after = await client.call("enqueue", tasks.echo, args=("alive",))
        assert await client.call("get_result", after, timeout=20) == "alive"

    @pytest.mark.asyncio
    async def test_two_workers_run_each_task_exactly_once(
        self, omniq_make_client: Callable[..., Any], tmp_path: Path
    ) -> None:
        runs = tmp_path / "runs"
        first, second = await omniq_make_client(), await omniq_make_client()
        ids = await first.call(
            "enqueue_many", tasks.append_run, [(str(runs), f"t{i}") for i in range(40)]
        )
        for task_id in ids:
            await second.call("get_result", task_id, timeout=30)
        labels = [line.split()[0] for line in runs.read_text().splitlines()]
        assert sorted(labels) == sorted(f"t{i}" for i in range(40))

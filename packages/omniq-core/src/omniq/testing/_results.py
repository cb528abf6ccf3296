"""Conformance through the clients: reading many results, streaming them, result snapshots,
invariant 7 (one TTL meaning) end to end with the janitor's purge, and offloaded results."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from omniq.backend import Backend
from omniq.clock import ManualClock
from omniq.errors import (
    ConfigError,
    ResultExpiredError,
    ResultNotStoredError,
    ResultTimeoutError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
)
from omniq.models import TaskResult, TaskState, ValueState
from omniq.serialization import TAG_OFFLOAD
from omniq.testing import tasks
from omniq.testing._fixtures import BackendFactory

__all__ = ["ResultConformance"]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
    """Wait until ``check()`` is true (a background loop must act first), or fail naming it."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{what}: still not the case after {seconds} s")


class ResultConformance:
    """``get_results``, ``as_completed``, ``get_task_result`` and result expiry, seen through
    both client flavours."""

    @pytest.mark.asyncio
    async def test_get_results_returns_values_in_input_order(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client()
        ids = await client.call("enqueue_many", tasks.echo, [(i,) for i in range(20)])
        asked = [*reversed(ids), ids[3], ids[3]]
        assert await client.call("get_results", asked, timeout=20) == [
            *range(19, -1, -1),
            3,
            3,
        ]
        assert await client.call("get_results", []) == []
        with pytest.raises(ConfigError, match="list of task ids"):
            await client.call("get_results", ids[0])

    @pytest.mark.asyncio
    async def test_get_results_raises_the_first_error_in_input_order_without_waiting_for_later_tasks(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client()
        ok = await client.call("enqueue", tasks.echo, args=("ok",))
        first = await client.call("enqueue", tasks.fail, args=("first",))
        second = await client.call("enqueue", tasks.fail, args=("second",))
        later = await client.call("enqueue", tasks.echo, args=("later",), delay=3600)
        with pytest.raises(TaskFailedError) as info:
            await client.call("get_results", [ok, first, second], timeout=20)
        assert info.value.remote_message == "first"
        with pytest.raises(TaskFailedError) as info:
            await client.call("get_results", [ok, second, first], timeout=20)
        assert info.value.remote_message == "second"
        # ``later`` is not due for an hour: the failure before it is raised without waiting
        with pytest.raises(TaskFailedError):
            await client.call("get_results", [first, later], timeout=20)
        with pytest.raises(ResultTimeoutError) as timed_out:
            await client.call("get_results", [ok, later], timeout=0.2)
        assert timed_out.value.task_ids == (later,)

    @pytest.mark.asyncio
    async def test_get_results_can_return_the_errors_in_place(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client()
        ok = await client.call("enqueue", tasks.echo, args=(1,))
        bad = await client.call("enqueue", tasks.fail, args=("kaputt",))
        unkept = await client.call("enqueue", tasks.echo, args=(2,), result_ttl=0)
        gone = await client.call("enqueue", tasks.echo, args=(3,), delay=3600)
        assert await client.call("cancel", gone) is True
        got = await client.call(
            "get_results", [bad, ok, unkept, gone, ok], timeout=20, return_exceptions=True
        )
        assert [type(v) for v in got] == [
            TaskFailedError,
            int,
            ResultNotStoredError,
            TaskCancelledError,
            int,
        ]
        assert got[0].remote_message == "kaputt" and got[1] == got[4] == 1

    @pytest.mark.asyncio
    async def test_as_completed_streams_each_task_once_failures_included(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client()
        a = await client.call("enqueue", tasks.echo, args=("a",))
        bad = await client.call("enqueue", tasks.fail, args=("no",))
        c = await client.call("enqueue", tasks.echo, args=("c",))
        results, error = await client.collect("as_completed", [a, bad, c, a], timeout=20)
        assert error is None
        assert sorted(r.task_id for r in results) == sorted([a, bad, c])
        by_id: dict[str, TaskResult] = {r.task_id: r for r in results}
        assert (by_id[a].value, by_id[c].value) == ("a", "c")
        assert by_id[a].ok and by_id[a].value_state is ValueState.AVAILABLE
        failed = by_id[bad]
        assert failed.state is TaskState.FAILED and not failed.ok
        assert failed.value_state is ValueState.NO_VALUE and failed.value is None
        assert failed.error is not None and failed.error.type == "builtins.ValueError"
        assert await client.collect("as_completed", []) == ([], None)

    @pytest.mark.asyncio
    async def test_as_completed_yields_finished_tasks_first_then_times_out_naming_the_rest(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client()
        later = await client.call("enqueue", tasks.echo, args=("later",), delay=3600)
        now = await client.call("enqueue", tasks.echo, args=("now",))
        results, error = await client.collect("as_completed", [later, now], timeout=1)
        assert [(r.task_id, r.value) for r in results] == [(now, "now")]
        assert isinstance(error, ResultTimeoutError) and error.task_ids == (later,)
        results, error = await client.collect("as_completed", [now, "no-such-task"], timeout=5)
        assert results == [] and isinstance(error, TaskNotFoundError)

    @pytest.mark.asyncio
    async def test_get_task_result_reports_state_value_timings_attempts_and_worker(
        self,
        omniq_make_client: Callable[..., Any],
        omniq_clock: ManualClock,
        tmp_path: Path,
    ) -> None:
        client = await omniq_make_client()
        waiting = await client.call("enqueue", tasks.echo, args=(0,), delay=3600)
        early = await client.call("get_task_result", waiting)
        assert (early.state, early.value_state) == (TaskState.SCHEDULED, ValueState.UNFINISHED)
        assert early.started_at is None and early.duration is None and early.queued_for is None
        with pytest.raises(ResultTimeoutError):
            early.value_or_raise()
        retried = await client.call(
            "enqueue", tasks.fail_times, args=(str(tmp_path / "n"), 1), retries=1, result_ttl=60
        )
        assert await client.call("get_result", retried, timeout=20) == 2
        done = await client.call("get_task_result", retried)
        task = await client.call("get_task", retried)
        assert done.ok and done.value == 2 and done.value_or_raise() == 2
        assert done.value_state is ValueState.AVAILABLE
        assert done.attempts == 2 and done.worker_id is not None
        assert done.worker_id == task.worker_id
        assert (done.enqueued_at, done.started_at, done.finished_at) == (
            task.created_at,
            task.started_at,
            task.finished_at,
        )
        assert done.duration is not None and done.queued_for is not None
        assert done.result_expires_at == task.finished_at + 60
        assert done.error is None  # a success clears the error of the failed run before it
        bad = await client.call("enqueue", tasks.fail, args=("x",))
        unkept = await client.call("enqueue", tasks.echo, args=(1,), result_ttl=0)
        await client.call("get_results", [bad, unkept], timeout=20, return_exceptions=True)
        failed = await client.call("get_task_result", bad)
        assert (failed.state, failed.value_state) == (TaskState.FAILED, ValueState.NO_VALUE)
        with pytest.raises(TaskFailedError):
            failed.value_or_raise()
        nothing = await client.call("get_task_result", unkept)
        assert (nothing.ok, nothing.value_state) == (True, ValueState.NOT_STORED)
        with pytest.raises(ResultNotStoredError):
            nothing.value_or_raise()
        omniq_clock.advance(61)
        expired = await client.call("get_task_result", retried)
        assert (expired.value_state, expired.value) == (ValueState.EXPIRED, None)
        with pytest.raises(ResultExpiredError):
            expired.value_or_raise()
        with pytest.raises(TaskNotFoundError):
            await client.call("get_task_result", "no-such-task")

    @pytest.mark.asyncio
    async def test_expired_results_are_purged_by_the_janitor_and_read_as_expired_until_the_task_goes(
        self,
        omniq_make_client: Callable[..., Any],
        omniq_clock: ManualClock,
        omniq_backend_factory: BackendFactory,
        backend_url: str,
    ) -> None:
        client = await omniq_make_client(purge_interval=0.05, retention=100.0)
        brief = await client.call("enqueue", tasks.echo, args=("brief",), result_ttl=30)
        kept = await client.call("enqueue", tasks.echo, args=("kept",), result_ttl=None)
        assert await client.call("get_results", [brief, kept], timeout=20) == ["brief", "kept"]
        # A second view of the same store whose clock stays before the expiry: it still sees an
        # expired result until purge has really deleted it.
        before = omniq_backend_factory(backend_url, ManualClock(omniq_clock.now()))
        await before.open()
        try:
            omniq_clock.advance(31)

            async def brief_deleted() -> bool:
                got = await before.get_results([brief, kept])
                assert got[1] is not None  # result_ttl=None: kept while its task is
                return got[0] is None

            await eventually(brief_deleted, "the janitor deleting the expired result")
        finally:
            await before.close()
        with pytest.raises(ResultExpiredError):  # the task is still there: expired, not unknown
            await client.call("get_result", brief, timeout=0)
        assert (await client.call("get_task_result", brief)).value_state is ValueState.EXPIRED
        assert await client.call("get_result", kept, timeout=0) == "kept"
        omniq_clock.advance(100)  # past OMNIQ_RETENTION: purge deletes the tasks themselves

        async def task_gone() -> bool:
            try:
                await client.call("get_task", kept)
            except TaskNotFoundError:
                return True
            return False

        await eventually(task_gone, "the janitor deleting the finished task")
        for read in ("get_result", "get_task_result"):
            with pytest.raises(TaskNotFoundError):
                await client.call(read, kept)

    @pytest.mark.asyncio
    async def test_large_results_are_offloaded_and_come_back_exactly(
        self, omniq_make_client: Callable[..., Any], omniq_backend: Backend
    ) -> None:
        pytest.importorskip("omniq_obstore", reason="offloading needs omniq-obstore")
        offload = f"memory://omniq-offload-{uuid.uuid4().hex[:12]}"
        client = await omniq_make_client(result_offload_url=offload, result_offload_bytes=1024)
        small = await client.call("enqueue", tasks.echo, args=("small",))
        raw = await client.call("enqueue", tasks.blob, args=(300_000,))
        text = await client.call("enqueue", tasks.blob, args=(300_000, "str"))
        assert await client.call("get_results", [small, raw, text], timeout=20) == [
            "small",
            tasks.blob(300_000),
            tasks.blob(300_000, "str"),
        ]
        reader = await omniq_make_client(workers=0, result_offload_url=offload)
        assert (await reader.call("get_task_result", text)).value == tasks.blob(300_000, "str")
        stored = await omniq_backend.get_results([small, raw])
        assert stored[0] is not None and stored[1] is not None
        assert stored[0].data[0] != TAG_OFFLOAD
        assert stored[1].data[0] == TAG_OFFLOAD and len(stored[1].data) < 1024
        blind = await omniq_make_client(workers=0)  # no OMNIQ_RESULT_OFFLOAD_URL here
        with pytest.raises(ConfigError, match="OMNIQ_RESULT_OFFLOAD_URL"):
            await blind.call("get_result", raw, timeout=0)

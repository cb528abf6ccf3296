"""The clients end to end on a real SQLite file with the embedded worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import e2e_tasks
import pytest

from omniq import (
    AsyncTaskQueue,
    ResultExpiredError,
    ResultNotStoredError,
    ResultTimeoutError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskQueue,
    TaskState,
)
from omniq.clock import ManualClock
from omniq.config import Settings, load_settings
from omniq.errors import BackendNotFoundError, ConfigError


def test_sync_roundtrip_keeps_exact_types(settings: Settings) -> None:
    value = (
        (1, "two", (3.0, None)),
        dt.date(2026, 3, 29),
        dt.datetime(2026, 3, 29, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        dt.datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),
        Decimal("1.10"),
        {1, 2},
        b"\x00\xff",
    )
    with TaskQueue(settings=settings, worker_type="thread") as queue:
        task_id = queue.enqueue(e2e_tasks.echo, args=(value,))
        result = queue.get_result(task_id, timeout=10)
    assert result == value
    assert type(result[0]) is tuple and type(result[0][2]) is tuple
    assert type(result[1]) is dt.date
    assert result[2].utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert result[3].tzinfo == ZoneInfo("Europe/Paris")
    assert type(result[4]) is Decimal and str(result[4]) == "1.10"
    assert type(result[5]) is set


async def test_async_client_runs_coroutines_and_sync_functions(settings: Settings) -> None:
    async with AsyncTaskQueue(settings=settings) as queue:
        a = await queue.enqueue(e2e_tasks.async_add, args=(2, 3))
        b = await queue.enqueue(e2e_tasks.add, kwargs={"x": 4, "y": 5})
        assert await queue.get_result(a, timeout=10) == 5
        assert await queue.get_result(b, timeout=10) == 9
        task = await queue.get_task(a)
        assert task.state is TaskState.SUCCESS and task.attempt == 1
        assert task.worker_id == queue.worker.worker_id  # type: ignore[union-attr]


def test_functions_of_main_script_and_lambdas_run_in_process(settings: Settings) -> None:
    def local_double(n: int) -> int:
        return n * 2

    with TaskQueue(settings=settings, worker_type="thread") as queue:
        ids = [queue.enqueue(local_double, args=(21,)), queue.enqueue(lambda: "λ")]
        assert [queue.get_result(i, timeout=10) for i in ids] == [42, "λ"]


def test_failure_carries_remote_type_message_and_traceback(settings: Settings) -> None:
    with TaskQueue(settings=settings) as queue:
        task_id = queue.enqueue(e2e_tasks.boom, args=("kaputt",))
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=10)
    err = info.value
    assert err.task_id == task_id
    assert err.remote_type == "builtins.ValueError"
    assert err.remote_message == "kaputt"
    assert "raise ValueError(message)" in err.remote_traceback


def test_retries_run_n_plus_one_times(settings: Settings, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    with TaskQueue(settings=settings) as queue:
        ok = queue.enqueue(e2e_tasks.flaky, args=(str(counter), 2), retries=2, retry_delay=0)
        assert queue.get_result(ok, timeout=10) == 3
        assert queue.get_task(ok).attempt == 3
        counter.unlink()
        bad = queue.enqueue(e2e_tasks.flaky, args=(str(counter), 5), retries=1, retry_delay=0)
        with pytest.raises(TaskFailedError, match="failure 2"):
            queue.get_result(bad, timeout=10)
        assert counter.read_text() == "2"


def test_timeout_fails_the_task_with_task_timeout_error(settings: Settings) -> None:
    with TaskQueue(settings=settings, worker_type="thread") as queue:
        task_id = queue.enqueue(e2e_tasks.slow, args=(5,), timeout=0.2)
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=10)
    assert info.value.remote_type == "omniq.errors.TaskTimeoutError"


async def test_async_timeout_cancels_the_coroutine(settings: Settings) -> None:
    finished = []

    async def sleeper() -> None:
        await asyncio.sleep(5)
        finished.append(True)

    async with AsyncTaskQueue(settings=settings) as queue:
        task_id = await queue.enqueue(sleeper, timeout=0.1)
        with pytest.raises(TaskFailedError, match="timeout"):
            await queue.get_result(task_id, timeout=10)
    assert finished == []


def test_result_ttl_rules(settings: Settings) -> None:
    clock = ManualClock(start=dt.datetime.now().timestamp())
    with TaskQueue(settings=settings, clock=clock) as queue:
        forever = queue.enqueue(e2e_tasks.add, args=(1, 1), result_ttl=None)
        nothing = queue.enqueue(e2e_tasks.add, args=(1, 2), result_ttl=0)
        brief = queue.enqueue(e2e_tasks.add, args=(1, 3), result_ttl=10)
        assert queue.get_result(forever, timeout=10) == 2
        with pytest.raises(ResultNotStoredError):
            queue.get_result(nothing, timeout=10)
        assert queue.get_result(brief, timeout=10) == 4
        clock.advance(11)
        with pytest.raises(ResultExpiredError):
            queue.get_result(brief, timeout=10)
        assert queue.get_result(forever, timeout=0) == 2
        with pytest.raises(ConfigError, match="result_ttl"):
            queue.enqueue(e2e_tasks.add, args=(1, 1), result_ttl=-1)


def test_delay_and_eta(settings: Settings) -> None:
    clock = ManualClock(start=dt.datetime.now().timestamp())
    with TaskQueue(settings=settings, clock=clock) as queue:
        later = queue.enqueue(e2e_tasks.add, args=(1, 1), delay=3600)
        assert queue.get_task(later).state is TaskState.SCHEDULED
        with pytest.raises(ResultTimeoutError):
            queue.get_result(later, timeout=0.3)
        clock.advance(3600)
        assert queue.get_result(later, timeout=10) == 2
        with pytest.raises(ConfigError, match="naive"):
            queue.enqueue(e2e_tasks.add, args=(1, 1), eta=dt.datetime(2030, 1, 1))
        eta = dt.datetime.fromtimestamp(clock.now(), dt.UTC) + dt.timedelta(minutes=5)
        assert queue.get_task(queue.enqueue(e2e_tasks.add, args=(1, 1), eta=eta)).run_at == (
            pytest.approx(eta.timestamp())
        )


def test_producer_only_client_and_cancel(settings: Settings) -> None:
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(e2e_tasks.add, args=(1, 1))
        assert queue.cancel(task_id) is True
        with pytest.raises(TaskCancelledError):
            queue.get_result(task_id, timeout=0)
        assert queue.get_task(task_id).state is TaskState.CANCELLED
        with pytest.raises(TaskNotFoundError):
            queue.cancel("nope")
    # a worker started later never runs the cancelled task
    with TaskQueue(settings=settings) as queue:
        other = queue.enqueue(e2e_tasks.add, args=(2, 2))
        assert queue.get_result(other, timeout=10) == 4
        assert queue.get_task(task_id).state is TaskState.CANCELLED


def test_idempotency_key_returns_the_existing_task(settings: Settings) -> None:
    with TaskQueue(settings=settings, workers=0) as queue:
        first = queue.enqueue(e2e_tasks.add, args=(1, 1), idempotency_key="order-42")
        again = queue.enqueue(e2e_tasks.add, args=(9, 9), idempotency_key="order-42")
        assert first == again
        assert len(queue.list_tasks()) == 1


def test_priority_then_fifo(settings: Settings) -> None:
    with TaskQueue(settings=settings, workers=0) as queue:
        low = queue.enqueue(e2e_tasks.add, args=(0, 0), priority=0)
        high = queue.enqueue(e2e_tasks.add, args=(0, 1), priority=5)
        low2 = queue.enqueue(e2e_tasks.add, args=(0, 2), priority=0)
    with TaskQueue(settings=settings, max_workers=1) as queue:
        for task_id in (low, high, low2):
            queue.get_result(task_id, timeout=10)
        started = {t: queue.get_task(t).started_at or 0 for t in (low, high, low2)}
    assert started[high] <= started[low] <= started[low2]


def test_enqueue_many_is_one_batch_in_order(settings: Settings) -> None:
    with TaskQueue(settings=settings) as queue:
        ids = queue.enqueue_many(e2e_tasks.add, [(i, i) for i in range(200)])
        assert len(set(ids)) == 200
        assert [queue.get_result(i, timeout=10) for i in ids] == [2 * i for i in range(200)]
        assert queue.stats()["success"] == 200
        assert queue.enqueue_many(e2e_tasks.add, []) == []


def test_decorator_enqueue_and_local_call(settings: Settings) -> None:
    with TaskQueue(settings=settings) as queue:
        mul = queue.task(retries=1)(e2e_tasks.add)
        assert mul(2, 3) == 5  # a plain local call
        task_id = mul.enqueue(2, 3)
        assert queue.get_result(task_id, timeout=10) == 5
        assert queue.get_task(task_id).max_retries == 1
        delayed = mul.options(delay=3600).enqueue(1, 1)
        assert queue.get_task(delayed).state is TaskState.SCHEDULED


def test_invalid_max_workers_env_names_the_variable(db_url: str) -> None:
    with pytest.raises(ConfigError, match="OMNIQ_MAX_WORKERS"):
        load_settings({"OMNIQ_MAX_WORKERS": "many", "OMNIQ_STORAGE_URL": db_url})


def test_unknown_scheme_names_the_package_to_install() -> None:
    with pytest.raises(BackendNotFoundError, match="pip install omniq-nats"):
        TaskQueue(storage_url="nats://localhost:4222")
    with pytest.raises(BackendNotFoundError, match="no known package"):
        TaskQueue(storage_url="ftp://example")


async def test_cancel_a_running_coroutine(settings: Settings) -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    async with AsyncTaskQueue(settings=settings) as queue:
        task_id = await queue.enqueue(forever, retries=3)
        await asyncio.wait_for(started.wait(), 10)
        assert await queue.cancel(task_id) is True
        with pytest.raises(TaskCancelledError):
            await queue.get_result(task_id, timeout=10)
        task = await queue.get_task(task_id)
        assert (task.state, task.attempt) == (TaskState.CANCELLED, 1)  # never retried
        assert await queue.cancel(task_id) is False  # already finished


def test_cancel_a_running_thread_task_sets_its_token(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with TaskQueue(settings=settings, worker_type="thread") as queue:
        task_id = queue.enqueue(e2e_tasks.wait_for_cancel, args=(str(marker),))
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queue.cancel(task_id) is True
        with pytest.raises(TaskCancelledError):
            queue.get_result(task_id, timeout=10)
        deadline = time.monotonic() + 10
        while marker.read_text() == "started" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.read_text() == "saw cancel"
        # the function returned a value after the cancel: the outcome stays "cancelled"
        assert queue.get_task(task_id).state is TaskState.CANCELLED


def test_retry_delay_default_is_fixed_at_enqueue(settings: Settings) -> None:
    with TaskQueue(settings=settings, workers=0) as queue:
        assert queue.get_task(queue.enqueue(e2e_tasks.add, args=(1, 1))).retry_delay == 1.0
        assert (
            queue.get_task(queue.enqueue(e2e_tasks.add, args=(1, 1), retry_delay=7)).retry_delay
            == 7.0
        )


def test_a_task_raising_cancelled_error_fails_like_any_error(settings: Settings) -> None:
    with TaskQueue(settings=settings) as queue:
        task_id = queue.enqueue(e2e_tasks.raise_cancelled, retries=0)
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=10)
    assert info.value.remote_type == "asyncio.exceptions.CancelledError"


@pytest.mark.parametrize("worker_type", ["async", "thread"])
def test_a_tasks_own_timeout_error_is_not_an_omniq_timeout(
    settings: Settings, worker_type: str
) -> None:
    with TaskQueue(settings=settings, worker_type=worker_type) as queue:
        task_id = queue.enqueue(e2e_tasks.raise_timeout, retries=0, timeout=30)
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=10)
    assert info.value.remote_type == "builtins.TimeoutError"
    assert info.value.remote_message == "upstream API timed out"


def test_a_bound_method_runs_with_its_instance(settings: Settings) -> None:
    with TaskQueue(settings=settings, worker_type="thread") as queue:
        task_id = queue.enqueue(e2e_tasks.Multiplier(7).times, args=(6,))
        assert queue.get_result(task_id, timeout=10) == 42


@pytest.mark.parametrize(
    ("options", "error", "names"),
    [
        ({"delay": float("nan")}, ConfigError, "delay"),
        ({"delay": -1}, ConfigError, "delay"),
        ({"priority": 1.5}, TypeError, "priority"),
        ({"priority": 2**70}, ConfigError, "priority"),
        ({"retries": "3"}, TypeError, "retries"),
        ({"retries": -1}, ConfigError, "retries"),
        ({"timeout": 0}, ConfigError, "timeout"),
        ({"timeout": "10"}, TypeError, "timeout"),
        ({"result_ttl": float("nan")}, ConfigError, "result_ttl"),
        ({"retry_delay": float("inf")}, ConfigError, "retry_delay"),
        ({"eta": 12345.0}, TypeError, "eta"),
        ({"queue": 123}, TypeError, "queue"),
        ({"queue": ""}, TypeError, "queue"),
        ({"headers": {"a": 1}}, TypeError, "headers"),
        ({"executor": "Not A Name"}, ConfigError, "executor"),
        ({"kwargs": {1: 2}}, TypeError, "kwargs"),
        ({"args": "abc"}, TypeError, "args"),
    ],
)
def test_bad_enqueue_options_fail_in_the_caller_naming_the_option(
    settings: Settings, options: dict[str, object], error: type[Exception], names: str
) -> None:
    with TaskQueue(settings=settings, workers=0) as queue:
        with pytest.raises(error, match=names):
            queue.enqueue(e2e_tasks.add, **options)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"package\.module:function"):
            queue.enqueue("not a path")
        with pytest.raises(ConfigError, match="timeout"):
            queue.get_result("x", timeout=float("nan"))
        with pytest.raises(ConfigError, match="limit"):
            queue.list_tasks(limit=0)
        assert queue.list_tasks() == []  # nothing half-written


def test_decorator_options_are_checked_at_decoration(settings: Settings) -> None:
    with (
        TaskQueue(settings=settings, workers=0) as queue,
        pytest.raises(ConfigError, match="retries"),
    ):
        queue.task(retries=-2)(e2e_tasks.add)


def test_an_async_queue_belongs_to_one_event_loop(settings: Settings) -> None:
    queue = AsyncTaskQueue(settings=settings, workers=0)

    async def first() -> str:
        await queue.open()
        return await queue.enqueue(e2e_tasks.add, args=(1, 1))

    asyncio.run(first())
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(queue.enqueue(e2e_tasks.add, args=(1, 1)))
    asyncio.run(queue.backend.close())


def test_an_async_queue_never_closed_hands_its_tasks_back(settings: Settings) -> None:
    started = []

    queue = AsyncTaskQueue(settings=settings)

    async def main() -> str:
        task_id = await queue.enqueue(e2e_tasks.slow, args=(60,))
        while not started:
            task = await queue.get_task(task_id)
            if task.state is TaskState.RUNNING:
                started.append(task)
            await asyncio.sleep(0.01)
        return task_id  # asyncio.run ends without queue.close()

    task_id = asyncio.run(main())
    asyncio.run(queue.backend.close())
    with TaskQueue(settings=settings, workers=0) as reader:
        task = reader.get_task(task_id)
    assert (task.state, task.released) == (TaskState.PENDING, 1)


def test_a_decorated_function_keeps_its_options_through_enqueue_enqueue_many_and_signature(
    settings: Settings,
) -> None:
    from omniq import signature

    with TaskQueue(settings=settings, workers=0) as queue:
        send = queue.task(retries=0, timeout=7, executor="thread", queue="emails", priority=5)(
            e2e_tasks.add
        )
        ids = [
            send.enqueue(1, 2),
            queue.enqueue(send, args=(1, 2)),
            queue.enqueue_many(send, [(1, 2)])[0],
            queue.enqueue_graph(signature(send, 1, 2)).ids[0],
        ]
        for task_id in ids:
            task = queue.get_task(task_id)
            assert (task.queue, task.priority, task.timeout, task.executor, task.max_retries) == (
                "emails",
                5,
                7.0,
                "thread",
                0,
            )
        overridden = queue.get_task(queue.enqueue(send, args=(1, 2), queue="other", retries=2))
        assert (overridden.queue, overridden.max_retries, overridden.priority) == ("other", 2, 5)

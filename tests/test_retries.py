"""Retries: backoff math, retry_on/give_up_on (in-process and process-child errors), omniq.Retry,
and the retry policy stamped on tasks (SQLite round trip included)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import retry_tasks
from retry_tasks import Fatal, Transient

import omniq
from omniq._options import TaskOptions
from omniq._retrying import RetryDefaults, backoff_delay, error_matches, exception_paths
from omniq.client import AsyncTaskQueue
from omniq.config import load_settings
from omniq.errors import ConfigError
from omniq.models import ErrorInfo, Task, TaskState

# -- backoff math -------------------------------------------------------------------------------


def test_without_jitter_the_delay_grows_exactly_and_stops_at_the_cap() -> None:
    delays = [
        backoff_delay(run, base=1.0, backoff=2.0, max_delay=10.0, jitter=False)
        for run in range(1, 7)
    ]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_delay(3, base=5.0, backoff=1.0, max_delay=100.0, jitter=False) == 5.0
    assert backoff_delay(10**6, base=1.0, backoff=1000.0, max_delay=60.0, jitter=False) == 60.0
    assert backoff_delay(4, base=0.0, backoff=2.0, max_delay=60.0, jitter=True) == 0.0


def test_full_jitter_stays_between_zero_and_the_backed_off_delay() -> None:
    rng = random.Random(7)
    for run, ceiling in ((1, 1.0), (3, 4.0), (9, 30.0)):
        got = [
            backoff_delay(run, base=1.0, backoff=2.0, max_delay=30.0, jitter=True, rng=rng)
            for _ in range(500)
        ]
        assert all(0.0 <= d <= ceiling for d in got)
        assert max(got) > ceiling * 0.9 and min(got) < ceiling * 0.1  # spread over the range


# -- matching -----------------------------------------------------------------------------------


def test_exception_paths_accept_classes_paths_and_bare_builtin_names() -> None:
    assert exception_paths([Transient, "ValueError", "pkg.mod.Err"], "retry_on") == (
        "retry_tasks.Transient",
        "builtins.ValueError",
        "pkg.mod.Err",
    )
    assert exception_paths(None, "retry_on") is None
    assert exception_paths(KeyError, "retry_on") == ("builtins.KeyError",)
    with pytest.raises(ConfigError, match="retry_on"):
        exception_paths([1], "retry_on")  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="'NoSuchError' is not a built-in exception"):
        exception_paths(["NoSuchError"], "retry_on")


def test_in_process_errors_match_through_their_mro() -> None:
    exc = Transient("x")
    info = ErrorInfo(type="retry_tasks.Transient", message="x")
    assert error_matches(["builtins.OSError"], info, exc)
    assert error_matches(["retry_tasks.Transient"], info, exc)
    assert not error_matches(["builtins.ValueError"], info, exc)


def test_errors_known_as_data_match_by_path_or_importable_subclass() -> None:
    child = ErrorInfo(type="retry_tasks.Transient", message="x")
    assert error_matches(["retry_tasks.Transient"], child)
    assert error_matches(["builtins.ConnectionError"], child)  # importable here: subclass
    assert not error_matches(["builtins.ValueError"], child)
    ghost = ErrorInfo(type="nowhere.to.be.Found", message="x")
    assert error_matches(["nowhere.to.be.Found"], ghost)
    assert not error_matches(["builtins.Exception"], ghost)  # not importable: exact path only


def test_bad_retry_options_fail_in_the_caller() -> None:
    with pytest.raises(ConfigError, match="retry_backoff"):
        TaskOptions(retry_backoff=0.5)
    with pytest.raises(ConfigError, match="give_up_on"):
        TaskOptions(give_up_on=[42])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="retry_max_delay"):
        TaskOptions(retry_max_delay=-1)
    with pytest.raises(ConfigError):
        omniq.Retry(delay=-1)
    assert omniq.Retry(delay=dt.timedelta(minutes=1)).delay == 60.0


# -- end to end ---------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def queue(db_url: str) -> AsyncIterator[AsyncTaskQueue]:
    settings = load_settings(
        {}, storage_url=db_url, retry_delay=0.01, retry_jitter=False, poll_interval=0.05
    )
    q = AsyncTaskQueue(settings=settings, workers=1)
    await q.open()
    yield q
    await q.close()


async def _settled(q: AsyncTaskQueue, task_id: str, timeout: float = 30.0) -> Task:
    deadline = time.monotonic() + timeout
    while True:
        task = await q.get_task(task_id)
        if task.state in (TaskState.FAILED, TaskState.SUCCESS) or (
            task.state is TaskState.SCHEDULED and task.run_at > time.time() + 60
        ):
            return task
        assert time.monotonic() < deadline, task
        await asyncio.sleep(0.02)


def _runs(path: Path) -> int:
    return int(path.read_text())


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_give_up_on_fails_at_once(
    queue: AsyncTaskQueue, tmp_path: Path, executor: str
) -> None:
    counter = tmp_path / "n"
    task_id = await queue.enqueue(
        retry_tasks.raise_kind,
        args=(str(counter), "fatal"),
        retries=3,
        give_up_on=[ValueError],
        executor=executor,
    )
    task = await _settled(queue, task_id)
    assert task.state is TaskState.FAILED and _runs(counter) == 1
    assert task.error is not None and task.error.type == "retry_tasks.Fatal"


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_retry_on_retries_only_matching_errors(
    queue: AsyncTaskQueue, tmp_path: Path, executor: str
) -> None:
    ok, other = tmp_path / "ok", tmp_path / "other"
    retried = await queue.enqueue(
        retry_tasks.raise_kind,
        args=(str(ok), "transient"),
        retries=2,
        retry_on=["ConnectionError"],
        executor=executor,
    )
    final = await queue.enqueue(
        retry_tasks.raise_kind,
        args=(str(other), "key"),
        retries=2,
        retry_on=[ConnectionError],
        executor=executor,
    )
    assert (await _settled(queue, retried)).state is TaskState.FAILED
    assert (await _settled(queue, final)).state is TaskState.FAILED
    assert (_runs(ok), _runs(other)) == (3, 1)


@pytest.mark.asyncio
async def test_retry_ignores_retry_on_and_sets_its_own_delay(
    queue: AsyncTaskQueue, tmp_path: Path
) -> None:
    counter = tmp_path / "n"
    task_id = await queue.enqueue(
        retry_tasks.ask_retry, args=(str(counter), 3600), retries=2, retry_on=[KeyError]
    )
    task = await _settled(queue, task_id)
    assert task.state is TaskState.SCHEDULED and _runs(counter) == 1
    assert task.run_at == pytest.approx(time.time() + 3600, abs=30)
    assert task.error is not None and task.error.type == "omniq.errors.Retry"
    assert task.error.message == "run 1: come back later"


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_retry_is_bounded_by_retries(
    queue: AsyncTaskQueue, tmp_path: Path, executor: str
) -> None:
    counter = tmp_path / "n"
    task_id = await queue.enqueue(
        retry_tasks.ask_retry,
        args=(str(counter), None),
        retries=2,
        retry_on=[KeyError],
        executor=executor,
    )
    task = await _settled(queue, task_id)
    assert task.state is TaskState.FAILED and _runs(counter) == 3


@pytest.mark.asyncio
async def test_the_policy_is_stamped_and_survives_the_store(queue: AsyncTaskQueue) -> None:
    plain = await queue.enqueue("retry_tasks:raise_kind", args=("x", "key"), delay=3600)
    custom = await queue.enqueue(
        "retry_tasks:raise_kind",
        args=("x", "key"),
        delay=3600,
        retry_delay=2,
        retry_backoff=3,
        retry_max_delay=50,
        retry_jitter=True,
        retry_on=[Transient],
        give_up_on=["KeyError", Fatal],
    )
    p, c = await queue.get_task(plain), await queue.get_task(custom)
    assert (p.retry_delay, p.retry_backoff, p.retry_max_delay, p.retry_jitter) == (
        0.01,
        2.0,
        3600.0,
        False,
    )
    assert (p.retry_on, p.give_up_on, p.headers) == (None, (), {})
    assert (c.retry_delay, c.retry_backoff, c.retry_max_delay, c.retry_jitter) == (2, 3, 50, True)
    assert c.retry_on == ("retry_tasks.Transient",)
    assert c.give_up_on == ("builtins.KeyError", "retry_tasks.Fatal")
    assert c.headers == {}


def test_decorator_options_carry_the_policy(db_url: str) -> None:
    with omniq.TaskQueue(storage_url=db_url, workers=0) as q:

        @q.task(retries=1, retry_on=[Transient], retry_backoff=1.5)
        def job() -> None:  # pragma: no cover - never run
            pass

        task_id = job.options(give_up_on=[Fatal], retry_jitter=False).enqueue()
        task = q.get_task(task_id)
        assert task.retry_on == ("retry_tasks.Transient",)
        assert task.give_up_on == ("retry_tasks.Fatal",)
        assert (task.retry_backoff, task.retry_jitter, task.max_retries) == (1.5, False, 1)


def test_worker_defaults_apply_to_tasks_that_carry_no_policy() -> None:
    from omniq.worker._outcomes import failure

    task = Task(id="t", func="m:f", payload=b"", run_at=0.0, created_at=0.0, attempt=3)
    task.max_retries = 5
    defaults = RetryDefaults(delay=2.0, backoff=3.0, max_delay=100.0, jitter=False)
    error = ErrorInfo(type="builtins.ValueError", message="x")
    pending = failure(task, error, now=1000.0, retry=True, defaults=defaults)
    assert pending.outcome.state is TaskState.SCHEDULED
    assert pending.outcome.retry_at == 1000.0 + 18.0


def test_arguments_the_function_cannot_take_are_refused_at_enqueue(tmp_path: Path) -> None:
    with omniq.TaskQueue(storage_url=f"sqlite:///{tmp_path}/q.db", workers=0) as queue:
        with pytest.raises(TypeError, match=r"retry_tasks:raise_kind\(.*missing a required"):
            queue.enqueue(retry_tasks.raise_kind, args=("counter",))
        with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
            queue.enqueue_many(retry_tasks.raise_kind, [("c", "k")], kwargs={"colour": "red"})
        with pytest.raises(TypeError, match="missing a required argument: 'counter'"):
            queue.add_schedule(retry_tasks.raise_kind, every=60)
        assert queue.stats()["pending"] == 0  # nothing was stored
        assert queue.list_schedules() == []
        with pytest.raises(omniq.TaskNotFoundError) as info:
            queue.requeue_dead("not-an-id")
    assert str(info.value) == (
        "no task with id 'not-an-id' (never enqueued, or purged by retention)"
    )

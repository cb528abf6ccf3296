"""Every executor through the same scenarios, each with a real ``omniq worker -e <executor>``
process on a SQLite file and a producer client in this process: success, exception, timeout,
cancel while running, cancel while queued, and the worker killed mid-task.

What "stopped" means differs by executor and is asserted as such: a coroutine, a greenlet and a
process child really stop (the task's body never reaches its end); a thread cannot be killed: on
timeout it is interrupted from inside (an exception raised in the thread), on cancellation it
only gets its cancel token, so its body runs on, but its outcome stays "cancelled", never
"success".
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from scenario_tasks import (
    blocks_the_loop,
    for_executor,
    hog,
    logged_sleep,
    start_sleeper,
    unencodable_result,
    where,
)

from omniq import TaskCancelledError, TaskFailedError, TaskQueue, TaskState
from omniq.config import Settings

pytestmark = pytest.mark.slow

Spawn = Callable[..., subprocess.Popen[str]]

EXECUTORS = ["async", "thread", "process", "gevent"]
REALLY_STOPS = {"async", "process", "gevent"}


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def start_worker(spawn_worker: Spawn, db_url: str, executor: str) -> subprocess.Popen[str]:
    return spawn_worker(db_url, "-e", executor, "--import", "scenario_tasks", "--lease", "1")


def started(marker: Path, timeout: float = 30.0) -> tuple[int, int]:
    """Wait until the task wrote its start marker; return ``(pid, attempt)`` it ran with."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = marker.read_text() if marker.exists() else ""
        if text.startswith("started"):
            _, pid, attempt = text.split()
            return int(pid), int(attempt)
        time.sleep(0.02)
    raise AssertionError(f"the task never started ({marker} not written)")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_success_returns_the_exact_value(
    executor: str, settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    start_worker(spawn_worker, db_url, executor)
    value = (1, 2.5, "ü", None, [True, b"\x00"])
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(for_executor(executor, "echo"), args=(value,), executor=executor)
        result = queue.get_result(task_id, timeout=30)
        assert result == {"value": value, "attempt": 1}
        assert type(result["value"]) is tuple
        task = queue.get_task(task_id)
    assert (task.state, task.executor) == (TaskState.SUCCESS, executor)


def test_an_exception_fails_the_task_with_its_type_and_message(
    executor: str, settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    start_worker(spawn_worker, db_url, executor)
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(
            for_executor(executor, "fail"), args=("no such key",), executor=executor, retries=0
        )
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=30)
    assert (info.value.remote_type, info.value.remote_message) == (
        "builtins.LookupError",
        "no such key",
    )
    assert "LookupError" in info.value.remote_traceback


def test_a_timeout_fails_the_task_and_stops_it_as_the_executor_can(
    executor: str, settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    start_worker(spawn_worker, db_url, executor)
    marker = tmp_path / "marker"
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(
            for_executor(executor, "sleep"),
            args=(1.5, str(marker)),
            executor=executor,
            timeout=0.4,
            retries=0,
        )
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=30)
        assert info.value.remote_type == "omniq.errors.TaskTimeoutError"
        pid, _ = started(marker)
        time.sleep(2.0)  # past the body's own end
        finished = Path(f"{marker}.finished").exists()
        assert queue.get_task(task_id).state is TaskState.FAILED
    assert not finished  # a thread is interrupted inside (TimeLimitExceeded), like the others
    if executor == "process":
        assert not alive(pid)


def test_cancel_while_running_stops_it_and_never_retries(
    executor: str, settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    start_worker(spawn_worker, db_url, executor)
    marker = tmp_path / "marker"
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(
            for_executor(executor, "sleep"), args=(2.0, str(marker)), executor=executor, retries=3
        )
        pid, _ = started(marker)
        assert queue.cancel(task_id) is True  # from this process; the task runs in another
        with pytest.raises(TaskCancelledError):
            queue.get_result(task_id, timeout=30)
        time.sleep(2.5)  # past the body's own end
        task = queue.get_task(task_id)
        finished = Path(f"{marker}.finished").exists()
    assert (task.state, task.attempt) == (TaskState.CANCELLED, 1)
    assert finished is (executor not in REALLY_STOPS)
    if executor == "process":
        assert not alive(pid)


def test_cancel_while_queued_means_it_never_runs(
    executor: str, settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    start_worker(spawn_worker, db_url, executor)
    marker = tmp_path / "marker"
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(
            for_executor(executor, "sleep"), args=(0.0, str(marker)), executor=executor, delay=0.5
        )
        assert queue.cancel(task_id) is True
        assert queue.get_task(task_id).state is TaskState.CANCELLED
        time.sleep(0.6)  # now it would be due
        later = queue.enqueue(for_executor(executor, "echo"), args=(1,), executor=executor)
        assert queue.get_result(later, timeout=30) == {"value": 1, "attempt": 1}
        task = queue.get_task(task_id)
    assert (task.state, task.attempt) == (TaskState.CANCELLED, 0)
    assert not marker.exists()


def test_a_worker_killed_mid_task_leaves_it_to_another_worker(
    executor: str, settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    first = start_worker(spawn_worker, db_url, executor)
    marker = tmp_path / "marker"
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(
            for_executor(executor, "sleep"), args=(1.0, str(marker)), executor=executor, retries=1
        )
        pid, attempt = started(marker)
        assert attempt == 1
        first.send_signal(signal.SIGKILL)
        first.wait()
        # A process child dies with its worker rather than running on unsupervised.
        assert gone_within(pid, 10.0), f"pid {pid} outlived its worker"
        marker.unlink()
        second = start_worker(spawn_worker, db_url, executor)
        result = queue.get_result(task_id, timeout=30)
        task = queue.get_task(task_id)
    assert result["attempt"] == 2
    if executor != "process":
        assert result["pid"] == second.pid
    assert (task.state, task.attempt) == (TaskState.SUCCESS, 2)


@pytest.mark.parametrize("hog_executor", ["thread", "process"])
def test_leases_stay_alive_while_a_task_hogs_the_cpu(
    hog_executor: str, settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    spawn_worker(db_url, "-e", hog_executor, "--import", "scenario_tasks", "--lease", "0.6")
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(hog, args=(3.0,), executor=hog_executor, retries=2)
        result = queue.get_result(task_id, timeout=60)
        events = [e.type.value for e in queue.list_events(task_id=task_id)]
    assert result["attempt"] == 1  # five lease periods long, never taken away
    assert "lease_expired" not in events


def test_a_task_cancelled_while_no_worker_runs_never_runs(
    settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(for_executor("thread", "sleep"), args=(0.0, str(marker)))
        assert queue.cancel(task_id) is True
        start_worker(spawn_worker, db_url, "thread")
        later = queue.enqueue(for_executor("thread", "echo"), args=(2,))
        assert queue.get_result(later, timeout=30) == {"value": 2, "attempt": 1}
        task = queue.get_task(task_id)
    assert (task.state, task.attempt) == (TaskState.CANCELLED, 0)
    assert not marker.exists()


def test_tasks_go_to_the_executor_they_name_and_wait_for_a_worker_that_hosts_it(
    settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    threads_only = start_worker(spawn_worker, db_url, "thread")
    with TaskQueue(settings=settings, workers=0) as queue:
        on_process = queue.enqueue(where, executor="process")
        unnamed = queue.enqueue(where)
        assert queue.get_result(unnamed, timeout=30)["pid"] == threads_only.pid
        # The thread-only worker saw the process task first, and left it alone.
        assert queue.get_task(on_process).state is TaskState.PENDING
        both = spawn_worker(
            db_url, "-e", "async,process", "--import", "scenario_tasks", "--lease", "1"
        )
        ran = queue.get_result(on_process, timeout=30)
        on_async = queue.get_result(queue.enqueue(where, executor="async"), timeout=30)
        task = queue.get_task(on_process)
    assert ran["pid"] not in (threads_only.pid, both.pid)  # a child of the second worker
    assert ran["worker"].split(":")[1] == str(both.pid)
    assert on_async["pid"] == both.pid
    assert on_async["thread"].startswith("omniq-async-sync")  # a plain def on async: helper thread
    assert (task.state, task.attempt) == (TaskState.SUCCESS, 1)


def test_a_client_built_by_a_task_module_starts_no_worker_in_workers_or_children(
    settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    env = {"MODULE_QUEUE_URL": db_url}
    worker = spawn_worker(db_url, "-e", "process", "--import", "module_queue_tasks", extra_env=env)
    with TaskQueue(settings=settings, workers=0) as queue:
        ids = queue.enqueue_many("module_queue_tasks:report", [()] * 4, executor="process")
        results = [queue.get_result(i, timeout=60) for i in ids]
        workers = queue.list_workers()
    assert [r["embedded_worker"] for r in results] == [False] * 4
    assert {r["worker"].split(":")[1] for r in results} == {str(worker.pid)}
    assert [w.pid for w in workers] == [worker.pid]  # no embedded worker registered anywhere


@pytest.mark.parametrize("sync_executor", ["thread", "async"])
def test_a_timed_out_thread_stops_before_its_retry_starts(
    sync_executor: str, settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    """A plain function blocked in C (``time.sleep``) past its timeout: its retry must not run
    while the timed-out attempt still runs in its thread."""
    start_worker(spawn_worker, db_url, sync_executor)
    log = tmp_path / "spans.log"
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(
            logged_sleep,
            args=(1.0, str(log)),
            executor=sync_executor,
            timeout=0.3,
            retries=1,
            retry_delay=0,
        )
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=30)
    assert info.value.remote_type == "omniq.errors.TaskTimeoutError"
    spans = [line.split() for line in log.read_text().splitlines()]
    assert [(kind, attempt) for kind, attempt, _ in spans] == [
        ("start", "1"),
        ("end", "1"),
        ("start", "2"),
        ("end", "2"),
    ]


@pytest.mark.parametrize("sync_executor", ["thread", "process"])
def test_a_result_that_cannot_be_encoded_fails_once_without_retry(
    sync_executor: str, settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    start_worker(spawn_worker, db_url, sync_executor)
    counter = tmp_path / "runs"
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(
            unencodable_result, args=(str(counter),), executor=sync_executor, retries=3
        )
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=30)
    assert info.value.remote_type == "omniq.errors.SerializationError"
    assert counter.read_text() == "1"  # its effects happened once: no retry


@pytest.mark.parametrize("how", ["timeout", "worker-killed"])
def test_processes_a_task_started_die_with_its_child(
    how: str, settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    worker = start_worker(spawn_worker, db_url, "process")
    marker = tmp_path / "sleeper"
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(
            start_sleeper,
            args=(str(marker),),
            executor="process",
            timeout=1.0 if how == "timeout" else None,
            retries=0,
        )
        sleeper, _ = started(marker)
        if how == "timeout":
            with pytest.raises(TaskFailedError) as info:
                queue.get_result(task_id, timeout=30)
            assert info.value.remote_type == "omniq.errors.TaskTimeoutError"
        else:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    assert gone_within(sleeper, 10.0), f"the task's subprocess {sleeper} outlived its child"


def test_a_coroutine_that_blocks_the_loop_past_its_timeout_fails(
    settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    start_worker(spawn_worker, db_url, "async")
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(blocks_the_loop, args=(1.0,), timeout=0.3, retries=0)
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=30)
    assert info.value.remote_type == "omniq.errors.TaskTimeoutError"

"""Standalone ``omniq worker`` processes: SIGKILL recovery, graceful shutdown, bad records."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import e2e_tasks
import pytest

from omniq import TaskFailedError, TaskQueue, TaskState
from omniq._ids import new_id
from omniq._setup import create_backend
from omniq.config import Settings
from omniq.models import EventType, Task

pytestmark = pytest.mark.slow

Spawn = Callable[..., subprocess.Popen[str]]


async def raw_enqueue(url: str, tasks: list[Task]) -> None:
    """Write task records straight to the backend, bypassing the client's checks."""
    async with create_backend(url) as backend:
        await backend.enqueue(tasks)


def events_of(queue: TaskQueue, task_id: str, until: Callable[[list[str]], bool]) -> list[str]:
    """The task's event types, polled until ``until`` holds (other processes flush events
    every 0.2 s) or 10 s passed."""
    deadline = time.monotonic() + 10
    while True:
        types = [e.type.value for e in queue.list_events(task_id=task_id)]
        if until(types) or time.monotonic() > deadline:
            return types


def wait_for(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def test_sigkill_mid_task_completes_on_another_worker_with_attempt_2(
    settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    first = spawn_worker(db_url, "--lease", "1", "--executor", "thread")
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(e2e_tasks.slow, args=(1.5, str(marker)), retries=1)
        pid, attempt = wait_for(marker).split()
        assert (int(pid), int(attempt)) == (first.pid, 1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        marker.unlink()
        second = spawn_worker(db_url, "--lease", "1", "--executor", "thread")
        result = queue.get_result(task_id, timeout=30)
        assert result == {"pid": second.pid, "attempt": 2}
        task = queue.get_task(task_id)
        assert task.attempt == 2 and task.state is TaskState.SUCCESS
        events = events_of(queue, task_id, lambda types: "lease_expired" in types)
    assert EventType.LEASE_EXPIRED in events


def test_killed_worker_with_no_retries_left_fails_as_worker_lost(
    settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    doomed = spawn_worker(db_url, "--lease", "1", "--executor", "thread")
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(e2e_tasks.slow, args=(30, str(marker)), retries=0)
        wait_for(marker)
        doomed.kill()
        doomed.wait()
        spawn_worker(db_url, "--lease", "1")  # its janitor recovers the expired lease
        with pytest.raises(TaskFailedError) as info:
            queue.get_result(task_id, timeout=30)
    assert info.value.remote_type == "omniq.errors.WorkerLostError"


@pytest.mark.parametrize(
    "signals",
    [
        [signal.SIGTERM],
        # delivered twice at once, as `uv run` forwarding plus the terminal's own Ctrl-C do
        [signal.SIGINT, signal.SIGINT],
    ],
    ids=["sigterm", "sigint-twice-at-once"],
)
def test_a_stop_signal_lets_running_tasks_finish(
    settings: Settings,
    db_url: str,
    spawn_worker: Spawn,
    tmp_path: Path,
    signals: list[signal.Signals],
) -> None:
    marker = tmp_path / "started"
    worker = spawn_worker(db_url, "--executor", "thread")
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(e2e_tasks.slow, args=(1.0, str(marker)))
        wait_for(marker)
        for signum in signals:
            worker.send_signal(signum)
        assert worker.wait(timeout=30) == 0
        assert queue.get_task(task_id).state is TaskState.SUCCESS


def test_sigterm_past_grace_releases_the_task_without_counting_an_attempt(
    settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    worker = spawn_worker(db_url, "--executor", "thread", extra_env={"OMNIQ_SHUTDOWN_GRACE": "0.3"})
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(e2e_tasks.slow, args=(60, str(marker)))
        wait_for(marker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        task = queue.get_task(task_id)
        assert (task.state, task.attempt, task.released, task.runs_used) == (
            TaskState.PENDING,
            1,
            1,
            0,
        )
        events = events_of(queue, task_id, lambda types: "released" in types)
    assert events.count(EventType.EXECUTING) == 1
    assert EventType.RELEASED in events


def test_bad_records_fail_alone_and_the_worker_keeps_serving(
    settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    spawn_worker(db_url)
    with TaskQueue(settings=settings, workers=0) as queue:
        now = time.time()

        def raw(**fields: object) -> Task:
            base: dict[str, object] = {
                "id": new_id(),
                "func": "e2e_tasks:add",
                "payload": b"\x01\x92\x92\x01\x02\x80",
                "run_at": now,
                "created_at": now,
                "max_retries": 3,
            }
            return Task(**{**base, **fields})  # type: ignore[arg-type]

        unsigned_dill = raw(payload=b"\x02" + b"\x00" * 32 + b"\x80\x04K\x01.")
        forged_func = raw(func="__main__:<lambda>", func_bytes=b"\x02" + b"\x11" * 40)
        garbage = raw(payload=b"\x07not a payload")
        missing = raw(func="e2e_tasks:no_such_function")
        good = raw()
        asyncio.run(raw_enqueue(db_url, [unsigned_dill, forged_func, garbage, missing, good]))
        assert queue.get_result(good.id, timeout=20) == 3
        expected = {
            unsigned_dill.id: "SignatureError",
            forged_func.id: "SignatureError",
            garbage.id: "DeserializationError",
            missing.id: "DeserializationError",
        }
        for task_id, error_type in expected.items():
            with pytest.raises(TaskFailedError) as info:
                queue.get_result(task_id, timeout=20)
            assert info.value.remote_type.endswith(error_type), info.value
            assert queue.get_task(task_id).attempt == 1  # never retried
        later = queue.enqueue(e2e_tasks.add, args=(20, 22))
        assert queue.get_result(later, timeout=20) == 42


def test_several_worker_processes_share_the_work(
    settings: Settings, db_url: str, spawn_worker: Spawn
) -> None:
    workers = [spawn_worker(db_url, "--executor", "thread", "-c", "2") for _ in range(2)]
    with TaskQueue(settings=settings, workers=0) as queue:
        ids = queue.enqueue_many(e2e_tasks.slow, [(0.2,) for _ in range(12)])
        pids = {queue.get_result(i, timeout=30)["pid"] for i in ids}
        assert pids == {w.pid for w in workers}
        assert sum(queue.worker_counts().values()) == 12


def test_script_that_never_closes_exits_promptly_and_loses_nothing(
    settings: Settings, db_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent / 'helpers')!r})\n"
        "import e2e_tasks\n"
        "from omniq import TaskQueue\n"
        f"q = TaskQueue(storage_url={db_url!r}, worker_type='thread')\n"
        "long = q.enqueue(e2e_tasks.slow, args=(120,))\n"
        "print(long, q.get_result(q.enqueue(e2e_tasks.add, args=(1, 2)), timeout=10), flush=True)\n"
    )
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert time.monotonic() - started < 20
    long_id, value = out.stdout.split()
    assert value == "3"
    with TaskQueue(settings=settings, workers=0) as queue:
        task = queue.get_task(long_id)
    assert task.state is TaskState.PENDING  # released at exit, waiting for the next worker


def test_a_frozen_worker_that_outlived_its_lease_hands_over_cleanly(
    settings: Settings, db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    # A lease of 3 s (heartbeat every 1 s) keeps a loaded CI machine from expiring healthy
    # leases (2 s once let the new attempt's lease expire too, in a full CI run); the freeze is
    # more than twice as long.
    frozen = spawn_worker(db_url, "--lease", "3", "--executor", "thread", "-c", "4")
    spawn_worker(db_url, "--lease", "3", "--queues", "elsewhere")  # its janitor recovers leases
    with TaskQueue(settings=settings, workers=0) as queue:
        task_id = queue.enqueue(e2e_tasks.slow, args=(1.5, str(marker)), retries=2)
        wait_for(marker)
        frozen.send_signal(signal.SIGSTOP)  # a GC pause, a VM freeze, a stuck disk…
        time.sleep(7.0)
        frozen.send_signal(signal.SIGCONT)
        assert queue.get_result(task_id, timeout=30)["attempt"] == 2
        task = queue.get_task(task_id)
        assert (task.state, task.attempt) == (TaskState.SUCCESS, 2)
        events = events_of(queue, task_id, lambda types: "complete" in types)
    assert events.count(EventType.EXECUTING) == 2
    assert events.count(EventType.COMPLETE) == 1

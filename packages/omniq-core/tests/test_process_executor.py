"""The ``process`` executor with real child processes: results, errors, timeouts, crashes,
recycling, cancellation, dill, parent death, and end to end through a client's worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import process_tasks as pt
import pytest

from omniq import AsyncTaskQueue, TaskCancelledError, TaskFailedError, TaskState
from omniq._setup import EMBEDDED_EXECUTORS, create_executor
from omniq.config import load_settings
from omniq.errors import (
    CallFailedError,
    DeserializationError,
    SignatureError,
    TaskTimeoutError,
    WorkerLostError,
)
from omniq.executors.process import ProcessExecutor
from omniq.models import EventType
from omniq.serialization import Serializer

HELPERS = Path(pt.__file__).resolve().parent
KEY = b"process-executor-test-key"


@pytest.fixture
def serializer() -> Serializer:
    return Serializer(secret_key=KEY)


@pytest.fixture
async def make_executor(serializer: Serializer) -> Any:
    """Build executors (shut down at teardown, so no child outlives a test)."""
    made: list[ProcessExecutor] = []

    def make(concurrency: int = 1, **options: Any) -> ProcessExecutor:
        executor = ProcessExecutor(concurrency=concurrency, serializer=serializer, **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        await executor.shutdown()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


async def eventually(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def read_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def marker_pid(marker: Path) -> int:
    """The pid a task wrote to ``marker`` once it started."""
    await eventually(lambda: read_text(marker) != "")
    return int(read_text(marker))


# -- direct: results and errors ------------------------------------------------------------------
async def test_sync_and_async_functions_return_exact_types(
    make_executor: Any, serializer: Serializer
) -> None:
    executor = make_executor(2)
    assert executor.child_pids == ()  # nothing started before the first call
    call = pt.make_call(pt.context_info, serializer=serializer)
    sync, async_, info, async_info, pid = await asyncio.gather(
        executor.run(pt.make_call(pt.typed_values, 3, serializer=serializer)),
        executor.run(pt.make_call(pt.async_typed, x=4, serializer=serializer)),
        executor.run(call),
        executor.run(pt.make_call(pt.async_context_info, serializer=serializer)),
        executor.run(pt.make_call(pt.whoami, serializer=serializer)),
    )
    assert sync == {"tuple": (3, 4), "set": {3}, "decimal": Decimal("3.75"), "bytes": b"\x00"}
    assert type(sync["tuple"]) is tuple and type(sync["decimal"]) is Decimal
    assert async_ == (8, frozenset({"async"}))
    assert type(async_[1]) is frozenset
    assert info == {
        "task_id": call.context.task_id,
        "attempt": 1,
        "queue": "default",
        "worker_id": "test-worker",
        "cancelled": False,
    }
    assert async_info["worker_id"] == "test-worker"
    assert pid != os.getpid() and pid in executor.child_pids
    assert executor.in_flight == 0


async def test_no_result_is_sent_back_when_none_is_kept(
    make_executor: Any, serializer: Serializer
) -> None:
    executor = make_executor()
    call = pt.make_call(pt.whoami, serializer=serializer, result_ttl=0)
    assert await executor.run(call) is None


async def test_large_arguments_and_results_round_trip(
    make_executor: Any, serializer: Serializer
) -> None:
    executor = make_executor()
    blob = os.urandom(6 * 1024 * 1024)  # far larger than a socket buffer: partial writes
    assert await executor.run(pt.make_call(pt.echo, [blob, blob[:7]], serializer=serializer)) == [
        blob,
        blob[:7],
    ]


async def test_an_exception_comes_back_as_data(make_executor: Any, serializer: Serializer) -> None:
    executor = make_executor()
    with pytest.raises(CallFailedError) as info:
        await executor.run(pt.make_call(pt.fail, "no luck", serializer=serializer))
    assert info.value.info.type == "process_tasks.ProcessTaskError"
    assert info.value.info.message == "no luck"
    assert "raise ProcessTaskError(message)" in info.value.info.traceback
    assert await executor.run(pt.make_call(pt.whoami, serializer=serializer)) > 0


async def test_spawn_start_method(make_executor: Any, serializer: Serializer) -> None:
    executor = make_executor(start_method="spawn")
    assert await executor.run(pt.make_call(pt.async_typed, 1, serializer=serializer)) == (
        2,
        frozenset({"async"}),
    )


async def test_closures_and_lambdas_travel_as_signed_dill(
    make_executor: Any, serializer: Serializer
) -> None:
    executor = make_executor()
    factor = 6

    def scaled(x: int) -> tuple[int, int]:
        return x * factor, os.getpid()

    call = pt.make_call(scaled, 7, serializer=serializer)
    assert call.task.func_bytes is not None and "<locals>" in call.task.func
    value, pid = await executor.run(call)
    assert value == 42 and pid != os.getpid()
    assert await executor.run(pt.make_call(lambda s: s.upper(), "dill", serializer=serializer)) == (
        "DILL"
    )


async def test_a_payload_signed_with_another_key_is_refused(make_executor: Any) -> None:
    executor = make_executor()  # children verify with KEY
    other = Serializer(secret_key=b"another key")
    first = await executor.run(pt.make_call(pt.whoami, serializer=other))  # msgpack: no key needed
    with pytest.raises(SignatureError) as info:
        await executor.run(pt.make_call(pt.typed_values, Fraction(1, 3), serializer=other))
    assert isinstance(info.value, DeserializationError)
    assert "signature does not match" in str(info.value)
    # the child refused it and stays in service
    assert await executor.run(pt.make_call(pt.whoami, serializer=other)) == first


# -- direct: timeouts, crashes, recycling --------------------------------------------------------
async def test_a_timeout_kills_the_child_and_the_next_task_gets_a_new_one(
    make_executor: Any, serializer: Serializer
) -> None:
    executor = make_executor()
    first = await executor.run(pt.make_call(pt.whoami, serializer=serializer))
    call = pt.make_call(pt.sleep_for, 60, serializer=serializer, timeout=0.5)
    with pytest.raises(TaskTimeoutError, match=f"pid {first}"):
        await executor.run(call)
    assert call.context.cancelled()
    await eventually(lambda: not alive(first))
    second = await executor.run(pt.make_call(pt.whoami, serializer=serializer))
    assert second != first
    assert executor.child_pids == (second,)


@pytest.mark.parametrize(
    ("crash", "args", "expected"),
    [(pt.exit_now, (3,), "exit code 3"), (pt.segfault, (), "signal SIGSEGV")],
    ids=["os._exit", "sigsegv"],
)
async def test_a_dying_child_fails_only_its_task_and_is_replaced(
    make_executor: Any,
    serializer: Serializer,
    tmp_path: Path,
    crash: Callable[..., None],
    args: tuple[Any, ...],
    expected: str,
) -> None:
    executor = make_executor(2)
    marker = tmp_path / "sleeping"
    # the crash happens while the other task sleeps in the other child
    crashing = pt.make_call(crash, *args, serializer=serializer, after=str(marker))
    results = await asyncio.gather(
        executor.run(pt.make_call(pt.sleep_for, 0.5, str(marker), serializer=serializer)),
        executor.run(crashing),
        return_exceptions=True,
    )
    survivor, lost = results
    assert isinstance(lost, WorkerLostError)
    assert expected in str(lost) and crashing.context.task_id in str(lost)
    assert isinstance(survivor, int) and str(survivor) == read_text(marker)
    assert f"pid {survivor}" not in str(lost)
    # the pool heals: two children again, the dead one gone
    await eventually(lambda: len(executor.child_pids) == 2)
    pids = await asyncio.gather(
        *(executor.run(pt.make_call(pt.sleep_for, 0.2, serializer=serializer)) for _ in range(2))
    )
    assert sorted(pids) == list(executor.child_pids)
    assert survivor in pids
    assert executor.in_flight == 0


async def test_max_tasks_per_child_recycles_children(
    make_executor: Any, serializer: Serializer
) -> None:
    executor = make_executor(max_tasks_per_child=2)
    pids = [await executor.run(pt.make_call(pt.whoami, serializer=serializer)) for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    await eventually(lambda: not alive(pids[0]))


async def test_a_child_over_the_memory_ceiling_is_replaced_after_its_task(
    make_executor: Any, serializer: Serializer
) -> None:
    executor = make_executor(max_memory_mb=200)
    first = await executor.run(pt.make_call(pt.whoami, serializer=serializer))
    assert await executor.run(pt.make_call(pt.whoami, serializer=serializer)) == first
    assert await executor.run(pt.make_call(pt.hoard_memory, 300, serializer=serializer)) == first
    second = await executor.run(pt.make_call(pt.whoami, serializer=serializer))
    assert second != first
    await eventually(lambda: not alive(first))


# -- direct: cancellation -----------------------------------------------------------------------
async def test_cancel_kills_the_child(
    make_executor: Any, serializer: Serializer, tmp_path: Path
) -> None:
    executor = make_executor()
    marker = tmp_path / "started"
    call = pt.make_call(pt.sleep_for, 60, str(marker), serializer=serializer)
    running = asyncio.create_task(executor.run(call))
    pid = await marker_pid(marker)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert call.context.cancelled()
    assert executor.in_flight == 0
    await eventually(lambda: not alive(pid))
    assert await executor.run(pt.make_call(pt.whoami, serializer=serializer)) != pid


async def test_cooperative_cancel_sets_the_token_in_the_child(
    make_executor: Any, serializer: Serializer, tmp_path: Path
) -> None:
    executor = make_executor(terminate_on_cancel=False)
    marker, release = tmp_path / "started", tmp_path / "release"
    running = asyncio.create_task(
        executor.run(
            pt.make_call(pt.wait_for_cancel, str(marker), str(release), serializer=serializer)
        )
    )
    pid = await marker_pid(marker)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    seen = Path(f"{marker}.cancelled")
    await eventually(seen.exists)
    assert read_text(seen) == "True"  # current_task().cancelled() in the child
    assert executor.in_flight == 1  # the slot stays busy until the function returns
    assert executor.available() == 0
    release.touch()
    await eventually(lambda: executor.in_flight == 0)
    assert await executor.run(pt.make_call(pt.whoami, serializer=serializer)) == pid


# -- parent death --------------------------------------------------------------------------------
def run_script(tmp_path: Path, source: str) -> subprocess.Popen[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HELPERS), *sys.path])}
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )


PARENT_SCRIPT = """
import asyncio, sys
from pathlib import Path

import process_tasks as pt
from omniq.executors.process import ProcessExecutor
from omniq.serialization import Serializer


async def main(tmp: Path) -> None:
    marker = tmp / "busy"
    serializer = Serializer()
    executor = ProcessExecutor(concurrency=2, serializer=serializer)
    busy = asyncio.create_task(
        executor.run(pt.make_call(pt.sleep_for, 600, str(marker), serializer=serializer))
    )
    await executor.run(pt.make_call(pt.whoami, serializer=serializer))
    while not marker.exists():
        await asyncio.sleep(0.02)
    print(*executor.child_pids, flush=True)
    await busy


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
"""


def test_children_do_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    parent = run_script(tmp_path, PARENT_SCRIPT)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)]


UNCLOSED_SCRIPT = """
import asyncio, sys
from pathlib import Path

import process_tasks as pt
from omniq import AsyncTaskQueue


async def main(tmp: Path) -> None:
    queue = AsyncTaskQueue(storage_url=f"sqlite:///{tmp}/q.db", worker_type="process")
    await queue.enqueue(pt.sleep_for, args=(600, str(tmp / "busy")))
    while not (tmp / "busy").exists():
        await asyncio.sleep(0.02)
    print(*queue.worker.executors["process"].child_pids, flush=True)  # never closed


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
"""


def test_a_client_never_closed_still_exits_and_takes_its_children_along(tmp_path: Path) -> None:
    proc = run_script(tmp_path, UNCLOSED_SCRIPT)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    pids = [int(p) for p in out.split()]
    assert pids
    assert not [pid for pid in pids if alive(pid)]


UNGUARDED_SCRIPT = """
import os, sys

from omniq import TaskQueue

FACTOR = 3


def helper(x):
    return x * FACTOR


queue = TaskQueue(storage_url=f"sqlite:///{sys.argv[1]}/q.db", worker_type="process")


@queue.task()
def work(x):
    return [helper(x), os.getpid()]


print("body", os.getpid(), flush=True)
print("result", *queue.get_result(work.enqueue(2), timeout=60), flush=True)
queue.close()
"""


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_a_script_without_a_main_guard_runs_its_body_once(
    tmp_path: Path, start_method: str
) -> None:
    """Children never re-run the parent's main script: a script with no ``if __name__ ==
    "__main__"`` guard runs its top level once, and its ``__main__`` function (with the helper
    and constant it uses) runs in a child."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMNIQ_PROCESS_START_METHOD": start_method},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    bodies = [line for line in lines if line.startswith("body")]
    assert bodies == [f"body {out.stdout.split()[1]}"]
    [result] = [line.split()[1:] for line in lines if line.startswith("result")]
    assert result[0] == "6"
    assert result[1] != out.stdout.split()[1]  # another process ran it


# -- registration and end to end ----------------------------------------------------------------
def test_registered_and_configured_from_settings(serializer: Serializer) -> None:
    settings = load_settings(
        {},
        process_start_method="spawn",
        process_max_tasks_per_child=5,
        process_max_memory_mb=512,
        process_terminate_on_cancel=False,
        process_workers=3,
    )
    executor = create_executor("process", settings=settings, serializer=serializer)
    assert isinstance(executor, ProcessExecutor)
    assert (executor.concurrency, executor.max_tasks_per_child, executor.max_memory_mb) == (
        3,
        5,
        512,
    )
    assert executor.terminate_on_cancel is False
    assert "process" in EMBEDDED_EXECUTORS
    assert "secret" not in repr(serializer) and KEY.decode() not in repr(serializer)
    assert Serializer(**serializer.init_kwargs()).loads(serializer.dumps(Fraction(1, 3))) == (
        Fraction(1, 3)
    )


async def test_end_to_end_through_a_client_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db"
    async with AsyncTaskQueue(storage_url=url, worker_type="process") as queue:
        ok = await queue.enqueue(pt.typed_values, args=(2,))
        failing = await queue.enqueue(pt.fail, args=("bad",), retries=0)
        crashing = await queue.enqueue(pt.exit_now, args=(3,), retries=0)
        pid = await queue.enqueue(pt.whoami)
        assert await queue.get_result(ok, timeout=60) == {
            "tuple": (2, 3),
            "set": {2},
            "decimal": Decimal("2.50"),
            "bytes": b"\x00",
        }
        with pytest.raises(TaskFailedError) as failed:
            await queue.get_result(failing, timeout=60)
        assert (failed.value.remote_type, failed.value.remote_message) == (
            "process_tasks.ProcessTaskError",
            "bad",
        )
        with pytest.raises(TaskFailedError) as lost:
            await queue.get_result(crashing, timeout=60)
        assert lost.value.remote_type == "omniq.errors.WorkerLostError"
        assert "exit code 3" in lost.value.remote_message
        assert await queue.get_result(pid, timeout=60) != os.getpid()


async def test_cancelling_a_running_task_kills_its_child(tmp_path: Path) -> None:
    settings = load_settings(
        {},
        storage_url=f"sqlite:///{tmp_path}/q.db",
        default_worker="process",
        lease_seconds=1.5,
        poll_interval=0.05,
    )
    marker = tmp_path / "started"
    async with AsyncTaskQueue(settings=settings) as queue:
        task_id = await queue.enqueue(pt.sleep_for, args=(60, str(marker)))
        pid = await marker_pid(marker)
        assert await queue.cancel(task_id)
        with pytest.raises(TaskCancelledError):
            await queue.get_result(task_id, timeout=30)
        assert (await queue.get_task(task_id)).state is TaskState.CANCELLED
        await eventually(lambda: not alive(pid))


async def test_a_cpu_bound_child_does_not_cost_the_lease(tmp_path: Path) -> None:
    settings = load_settings(
        {},
        storage_url=f"sqlite:///{tmp_path}/q.db",
        default_worker="process",
        lease_seconds=0.6,
        poll_interval=0.05,
    )
    async with AsyncTaskQueue(settings=settings) as queue:
        task_id = await queue.enqueue(pt.spin, args=(2.5,))
        result = await queue.get_result(task_id, timeout=60)
        assert result["loops"] > 0 and result["attempt"] == 1
        assert (await queue.get_task(task_id)).attempt == 1
        await eventually_async(
            lambda: queue.list_events(task_id=task_id),
            lambda events: EventType.COMPLETE in [e.type for e in events],
        )
        events = [e.type for e in await queue.list_events(task_id=task_id)]
    assert EventType.LEASE_EXPIRED not in events
    assert events.count(EventType.EXECUTING) == 1


async def eventually_async(
    read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while not done(await read()):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)

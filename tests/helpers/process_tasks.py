"""Task functions for the ``process`` executor tests (imported by the children by path), and a
helper that builds the :class:`~omniq.executors.Call` a worker would hand over."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from omniq import current_task
from omniq._context import TaskContext
from omniq._functions import function_path, needs_dill
from omniq._ids import new_id
from omniq.executors import Call
from omniq.models import Task
from omniq.serialization import Serializer

_hoard: list[bytes] = []


class ProcessTaskError(Exception):
    """An error raised by a task on purpose."""


def make_call(
    fn: Callable[..., Any],
    *args: Any,
    serializer: Serializer,
    timeout: float | None = None,
    result_ttl: float | None = None,
    **kwargs: Any,
) -> Call:
    """The call a worker would build for ``fn(*args, **kwargs)``, with a task record as stored
    (import path, or signed dill bytes for lambdas and closures)."""
    path = function_path(fn)
    task = Task(
        id=new_id(),
        func=path,
        func_bytes=serializer.dumps_function(fn) if needs_dill(path) else None,
        payload=serializer.dumps_call(args, kwargs),
        run_at=0.0,
        created_at=0.0,
        attempt=1,
        timeout=timeout,
        result_ttl=result_ttl,
    )
    context = TaskContext(task_id=task.id, attempt=1, queue="default", worker_id="test-worker")
    return Call(fn=fn, args=args, kwargs=kwargs, timeout=timeout, context=context, task=task)


def wait_for_file(path: str | Path, timeout: float = 30.0) -> None:
    """Block until ``path`` exists (raises ``TimeoutError`` after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.01)


# -- tasks ---------------------------------------------------------------------------------------
def typed_values(x: int) -> dict[str, Any]:
    return {"tuple": (x, x + 1), "set": {x}, "decimal": Decimal("1.25") * x, "bytes": b"\x00"}


async def async_typed(x: int) -> tuple[int, frozenset[str]]:
    await asyncio.sleep(0)
    return x * 2, frozenset({"async"})


def echo(value: Any) -> Any:
    return value


def whoami() -> int:
    return os.getpid()


def context_info() -> dict[str, Any]:
    ctx = current_task()
    assert ctx is not None
    return {
        "task_id": ctx.task_id,
        "attempt": ctx.attempt,
        "queue": ctx.queue,
        "worker_id": ctx.worker_id,
        "cancelled": ctx.cancelled(),
    }


async def async_context_info() -> dict[str, Any]:
    await asyncio.sleep(0)
    return context_info()


def fail(message: str) -> None:
    raise ProcessTaskError(message)


def sleep_for(seconds: float, marker: str | None = None) -> int:
    """Write our pid to ``marker`` (so a test knows we started), then sleep."""
    if marker is not None:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def exit_now(code: int, after: str | None = None) -> None:
    """``os._exit(code)``, once the file ``after`` exists (if given)."""
    if after is not None:
        wait_for_file(after)
    os._exit(code)


def segfault(after: str | None = None) -> None:
    """Die of SIGSEGV (without a core file), once the file ``after`` exists (if given)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if after is not None:
        wait_for_file(after)
    os.kill(os.getpid(), signal.SIGSEGV)


def hoard_memory(mib: int) -> int:
    """Keep ``mib`` MiB of touched memory alive in this process; return the pid."""
    _hoard.append(b"\x01" * (mib * 1024 * 1024))
    return os.getpid()


def wait_for_cancel(marker: str, release: str) -> str:
    """Write our pid to ``marker``; when the cancel token is set, write ``marker + '.cancelled'``,
    then wait for ``release`` to exist before returning."""
    Path(marker).write_text(str(os.getpid()))
    ctx = current_task()
    assert ctx is not None
    deadline = time.monotonic() + 30
    while not ctx.cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(marker + ".cancelled").write_text(str(ctx.cancelled()))
    wait_for_file(release)
    return "finished anyway"


def spin(seconds: float) -> dict[str, int]:
    """Burn CPU in pure Python for ``seconds``; return the loop count and the attempt."""
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        count += 1
    ctx = current_task()
    return {"loops": count, "attempt": ctx.attempt if ctx else 0}

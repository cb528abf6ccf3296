"""Task functions used by the end-to-end tests (imported by real worker processes)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from omniq import current_task


def echo(value: Any) -> Any:
    return value


def add(x: int, y: int) -> int:
    return x + y


def whoami() -> int:
    return os.getpid()


def boom(message: str) -> None:
    raise ValueError(message)


def slow(seconds: float, marker: str | None = None) -> dict[str, Any]:
    """Sleep, writing ``marker`` (a file path) first so a test knows the task started."""
    ctx = current_task()
    if marker:
        Path(marker).write_text(f"{os.getpid()} {ctx.attempt if ctx else 0}")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return {"pid": os.getpid(), "attempt": ctx.attempt if ctx else 0}


def flaky(counter_file: str, failures: int) -> int:
    """Fail ``failures`` times (counted in a file), then return the number of calls."""
    path = Path(counter_file)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= failures:
        raise RuntimeError(f"failure {calls}")
    return calls


async def async_add(x: int, y: int) -> int:
    return x + y


def wait_for_cancel(marker: str) -> str:
    """Loop until the task's cancellation token is set (checked cooperatively)."""
    ctx = current_task()
    assert ctx is not None
    Path(marker).write_text("started")
    deadline = time.monotonic() + 60
    while not ctx.cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(marker).write_text("saw cancel" if ctx.cancelled() else "timed out")
    return "finished anyway"


async def raise_cancelled() -> None:
    import asyncio

    raise asyncio.CancelledError("the task's own doing")


def raise_timeout() -> None:
    raise TimeoutError("upstream API timed out")


class Multiplier:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def times(self, value: int) -> int:
        return self.factor * value

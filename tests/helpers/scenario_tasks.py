"""Task functions of the executor scenario matrix (tests/test_executor_scenarios.py).

Each scenario has a sync version (thread, process, gevent) and an ``async def`` one (async). A
running task writes ``started <pid> <attempt>`` to its marker file, and ``finished`` once its body
ran to the end, so a test can tell a task that was really stopped from one that ran on.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from omniq import current_task


def _started(marker: str) -> int:
    ctx = current_task()
    attempt = ctx.attempt if ctx else 0
    Path(marker).write_text(f"started {os.getpid()} {attempt}")
    return attempt


def _finished(marker: str) -> None:
    Path(marker + ".finished").write_text("finished")


def echo(value: Any) -> dict[str, Any]:
    ctx = current_task()
    return {"value": value, "attempt": ctx.attempt if ctx else 0}


async def echo_async(value: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    return echo(value)


def fail(message: str) -> None:
    raise LookupError(message)


async def fail_async(message: str) -> None:
    await asyncio.sleep(0)
    fail(message)


def sleep(seconds: float, marker: str) -> dict[str, int]:
    """Sleep in small steps (ignoring the cancel token), then report pid and attempt."""
    attempt = _started(marker)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    _finished(marker)
    return {"pid": os.getpid(), "attempt": attempt}


async def sleep_async(seconds: float, marker: str) -> dict[str, int]:
    attempt = _started(marker)
    await asyncio.sleep(seconds)
    _finished(marker)
    return {"pid": os.getpid(), "attempt": attempt}


SYNC = {"echo": echo, "fail": fail, "sleep": sleep}
ASYNC = {"echo": echo_async, "fail": fail_async, "sleep": sleep_async}


def for_executor(executor: str, name: str) -> Any:
    """The scenario function ``name`` in the flavour ``executor`` runs natively."""
    return (ASYNC if executor == "async" else SYNC)[name]


def hog(seconds: float) -> dict[str, int]:
    """Burn the CPU in pure Python (holding the GIL between switches) for ``seconds``."""
    ctx = current_task()
    deadline = time.monotonic() + seconds
    acc = 0
    while time.monotonic() < deadline:
        for i in range(10_000):
            acc = (acc * 31 + i) % 1_000_003
    return {"attempt": ctx.attempt if ctx else 0, "acc": acc}


def where() -> dict[str, Any]:
    """Which process and which kind of thread ran the task."""
    import threading

    ctx = current_task()
    return {
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "worker": ctx.worker_id if ctx else "",
    }


def logged_sleep(seconds: float, log: str) -> None:
    """Append ``start``/``end`` lines (attempt, monotonic time) around a blocking sleep; the
    ``end`` line is written even when the run is interrupted."""
    ctx = current_task()
    attempt = ctx.attempt if ctx else 0
    with open(log, "a") as fh:
        fh.write(f"start {attempt} {time.monotonic()}\n")
    try:
        time.sleep(seconds)
    finally:
        with open(log, "a") as fh:
            fh.write(f"end {attempt} {time.monotonic()}\n")


def unencodable_result(counter: str) -> Any:
    """Count the run in a file, then return a value no serializer can encode (a generator)."""
    path = Path(counter)
    path.write_text(str(int(path.read_text()) + 1 if path.exists() else 1))
    return (x for x in range(3))


def start_sleeper(marker: str) -> None:
    """Start a ``sleep 300`` subprocess, write its pid to ``marker``, then wait for it."""
    import subprocess

    sleeper = subprocess.Popen(["sleep", "300"])
    Path(marker).write_text(f"started {sleeper.pid} 0")
    sleeper.wait()


async def blocks_the_loop(seconds: float) -> str:
    """A coroutine that wrongly blocks its event loop (``time.sleep``), then returns."""
    time.sleep(seconds)  # noqa: ASYNC251 - the mistake under test
    return "returned late"

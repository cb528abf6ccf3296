"""Task functions the conformance suite's client scenarios run (importable by any worker)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from omniq._context import current_task

__all__ = [
    "add",
    "append_run",
    "blob",
    "collect",
    "echo",
    "fail",
    "fail_times",
    "fail_until",
    "hold",
    "sleep",
]


def echo(value: Any = None) -> Any:
    """Return ``value`` unchanged."""
    return value


def blob(size: int, kind: str = "bytes") -> bytes | str:
    """A deterministic value of ``size`` bytes (``kind="bytes"``, every byte value) or
    characters (``kind="str"``, mixing 1- to 4-byte UTF-8 characters): large results."""
    if kind == "bytes":
        return (bytes(range(256)) * (size // 256 + 1))[:size]
    return ("aé中😀" * (size // 4 + 1))[:size]


def fail(message: str) -> None:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


def sleep(seconds: float) -> float:
    """Sleep (a blocking call) and return ``seconds``."""
    time.sleep(seconds)
    return seconds


def append_run(path: str, label: str) -> str:
    """Append ``label attempt pid`` as one line to ``path`` (O_APPEND, one write) and return
    ``label``: a durable record of every run, across threads and processes."""
    ctx = current_task()
    line = f"{label} {ctx.attempt if ctx else 0} {os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return label


def fail_times(path: str, failures: int) -> int:
    """Fail the first ``failures`` runs (counted in the file at ``path``), then return the run count."""
    counter = Path(path)
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    if runs <= failures:
        raise RuntimeError(f"failure {runs}")
    return runs


def fail_until(flag: str, runs: str) -> int:
    """Count this run in the file at ``runs``; raise ``ValueError`` until a file exists at
    ``flag``, then return the number of runs so far."""
    counter = Path(runs)
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    if not Path(flag).exists():
        raise ValueError(f"run {count}: not yet")
    return count


def add(x: int, y: int = 0) -> int:
    """Return ``x + y`` (a chain link: ``x`` is the previous step's value)."""
    return x + y


def collect(values: list[Any], *extra: Any) -> list[Any]:
    """Return the list of values it received (a chord callback) followed by ``extra``."""
    return [*values, *extra]


async def hold(marker: str) -> None:
    """Create the file ``marker``, then wait (cooperatively) until cancelled."""
    with open(marker, "w") as f:  # noqa: ASYNC230 - a tiny local write
        f.write("started")
    await asyncio.Event().wait()

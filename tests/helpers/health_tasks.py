"""Task functions for the worker-health tests (imported by real worker processes)."""

from __future__ import annotations

import time
from pathlib import Path


def hold(started: str, release: str) -> str:
    """Write ``started``, then run until the file ``release`` exists (at most 60 s), so a test
    decides when the task ends without guessing durations."""
    Path(started).write_text("started")
    deadline = time.monotonic() + 60
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


def nap(seconds: float) -> float:
    """Sleep at least ``seconds``; return them."""
    time.sleep(seconds)
    return seconds


def fail(message: str) -> None:
    raise ValueError(message)

"""Task functions run by ``omniq worker -e gevent`` processes in the omniq-gevent tests.

The producer (the test process, never monkey-patched) imports this module only to name the
functions; nothing here imports gevent at module level.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from omniq import current_task


def add(x: int, y: int) -> int:
    """``x + y``."""
    return x + y


def boom(message: str) -> None:
    """Raise ``KeyError(message)``."""
    raise KeyError(message)


def nap(seconds: float) -> tuple[float, float]:
    """``time.sleep`` (patched: a greenlet switch); returns the (start, end) wall-clock times."""
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def stuck(seconds: float) -> str:
    """Sleep far past the task's timeout."""
    time.sleep(seconds)
    return "woke up"


def until_killed(marker: str) -> str:
    """Write ``started`` to ``marker``, sleep; the ``finally`` records how the greenlet ended."""
    path = Path(marker)
    path.write_text("started")
    how = "returned"
    try:
        time.sleep(60)
    except BaseException as exc:  # GreenletExit when the executor kills the greenlet
        how = type(exc).__name__
        raise
    finally:
        path.write_text(f"stopped: {how}")
    return "slept a full minute"


def environment() -> dict[str, Any]:
    """How this worker process was prepared, seen from inside a task greenlet."""
    import gevent
    import gevent.monkey

    from omniq_gevent._monkey import imported_before_patch

    ctx = current_task()
    return {
        "pid": os.getpid(),
        "patched": {
            name: gevent.monkey.is_module_patched(name)
            for name in ("socket", "time", "select", "selectors", "ssl", "threading", "queue")
        },
        "imported_before_patch": imported_before_patch(),
        "in_greenlet": isinstance(gevent.getcurrent(), gevent.Greenlet),
        "task_id": ctx.task_id if ctx else None,
        "sqlite3_loaded": "sqlite3" in sys.modules,
    }


async def coroutine_sum(values: list[int]) -> dict[str, Any]:
    """An ``async def`` task: runs on the worker's event loop (main greenlet)."""
    await asyncio.sleep(0.01)
    ctx = current_task()
    return {"sum": sum(values), "task_id": ctx.task_id if ctx else None}


def swallows_timeout(seconds: float) -> str:
    """Catch the executor's ``gevent.Timeout`` and return anyway, late."""
    import gevent

    try:
        time.sleep(seconds)
    except gevent.Timeout:
        pass
    return "returned late"

"""Tasks of the dependency tests: map-reduce members, an aggregate, and tasks that wait for
other tasks from inside (the queue they use is set by the test: ``graph_tasks.QUEUE = q``)."""

from __future__ import annotations

import time
from typing import Any

QUEUE: Any = None
"""The client the waiting tasks enqueue on and wait with (set by the test)."""


def square(x: int, pause: float = 0.0) -> int:
    """``x * x`` after ``pause`` seconds."""
    if pause:
        time.sleep(pause)
    return x * x


def total(values: list[int]) -> dict[str, int]:
    """The count and the sum of the values (a chord's aggregate)."""
    return {"count": len(values), "sum": sum(values)}


async def double(x: int) -> int:
    return 2 * x


async def fan_out_and_wait(n: int) -> list[int]:
    """Enqueue ``n`` children and await their results (async: the wait lends this slot)."""
    ids = [await QUEUE.enqueue(double, args=(i,)) for i in range(n)]
    return [await QUEUE.get_result(task_id, timeout=30) for task_id in ids]


def wait_blocking(n: int) -> list[int]:
    """Enqueue ``n`` children and block waiting for them (a sync task)."""
    ids = [QUEUE.enqueue(double, args=(i,)) for i in range(n)]
    return QUEUE.get_results(ids, timeout=30)


def wait_blocking_on(queue: str, n: int) -> list[int]:
    """Enqueue ``n`` children on ``queue`` and block waiting for them (a sync task)."""
    ids = [QUEUE.enqueue(double, args=(i,), queue=queue) for i in range(n)]
    return QUEUE.get_results(ids, timeout=30)

"""A task module that builds its client at import time, as many applications do
(``queue = TaskQueue(...)`` next to ``@queue.task``). Workers and ``process`` children import it:
the client they build must be producer-only."""

from __future__ import annotations

import os
from typing import Any

from omniq import TaskQueue, current_task

queue = TaskQueue(storage_url=os.environ["MODULE_QUEUE_URL"])


@queue.task(executor="process")
def report() -> dict[str, Any]:
    """Whether this process's module-level client runs a worker, and who runs the task."""
    ctx = current_task()
    return {
        "embedded_worker": queue.async_queue.worker is not None,
        "pid": os.getpid(),
        "worker": ctx.worker_id if ctx else "",
    }

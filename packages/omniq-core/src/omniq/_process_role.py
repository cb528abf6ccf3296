"""Whether this process is a worker process (``omniq worker`` or a ``process`` executor child).

A task module often builds its client at import time (``queue = TaskQueue(...)`` next to its
``@queue.task`` functions), and workers import task modules. In a worker process such a client
must not start an embedded worker of its own — in a ``process`` child that would start a worker
(and its own children) per child. So clients built in a worker process default to
``workers=0``: they can still enqueue, read results and cancel.
"""

from __future__ import annotations

import multiprocessing.process

__all__ = ["CHILD_NAME_PREFIX", "in_worker_process", "mark_worker_process"]

CHILD_NAME_PREFIX = "omniq-process-"
"""Name prefix of ``process`` executor children. :mod:`multiprocessing` sets a child's name
before it re-imports the parent's ``__main__`` module, so even a client built at the top of that
script knows it is in a child."""

_worker_process = False


def mark_worker_process() -> None:
    """Declare this process a worker process (called by ``omniq worker`` and executor children
    before they import task modules)."""
    global _worker_process
    _worker_process = True


def in_worker_process() -> bool:
    """True in a process :func:`mark_worker_process` was called in, and in ``process`` executor
    children from their first line of Python on."""
    return _worker_process or multiprocessing.process.current_process().name.startswith(
        CHILD_NAME_PREFIX
    )

"""Executors run task functions for a worker: ``async``, ``thread`` and ``process`` ship with
omniq-core.

Other executors (``gevent``) are plugins registered in the ``omniq.executors`` entry-point
group, exactly like these.
"""

from __future__ import annotations

from omniq.executors._base import Call, Executor
from omniq.plugins.specs import ExecutorSpec

__all__ = ["ASYNC_SPEC", "PROCESS_SPEC", "THREAD_SPEC", "Call", "Executor"]

ASYNC_SPEC = ExecutorSpec(
    target="omniq.executors.async_:AsyncExecutor",
    distribution="omniq-core",
    description="Coroutines on the worker's event loop; sync functions on helper threads.",
)
PROCESS_SPEC = ExecutorSpec(
    target="omniq.executors.process:ProcessExecutor",
    distribution="omniq-core",
    description="A pool of child processes for CPU-bound work; timeouts kill and replace.",
)
THREAD_SPEC = ExecutorSpec(
    target="omniq.executors.thread:ThreadExecutor",
    distribution="omniq-core",
    description="A pool of threads for blocking I/O; coroutines get a loop per thread.",
)

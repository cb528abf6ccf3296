"""Per-executor counters a worker keeps and reports in its health record."""

from __future__ import annotations

import msgspec

__all__ = ["ExecutorStats"]


class ExecutorStats(msgspec.Struct, kw_only=True):
    """What one executor of a worker has done since the worker started.

    Attributes:
        name: the executor's name (``async``, ``thread``, ``process``, ``gevent``, …).
        concurrency: its slots.
        busy: slots in use now (a timed-out thread still holds its slot until it returns).
        started: calls handed to it.
        succeeded: calls that returned.
        failed: calls that raised, timed out or lost their process.
        cancelled: calls stopped by a cancel request.
        run_seconds: total wall time of finished calls, in seconds.
    """

    name: str
    concurrency: int
    busy: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    run_seconds: float = 0.0

    @property
    def mean_run_seconds(self) -> float | None:
        """Mean wall time of a finished call in seconds, ``None`` before the first one."""
        done = self.succeeded + self.failed + self.cancelled
        return self.run_seconds / done if done else None

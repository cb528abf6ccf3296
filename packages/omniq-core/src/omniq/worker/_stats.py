"""Per-executor counters a worker keeps and reports in its health record.

:class:`~omniq.models.ExecutorStats` lives in :mod:`omniq.models` with the worker's health
record (:class:`~omniq.models.WorkerInfo`); it is re-exported here for existing imports.
"""

from __future__ import annotations

from omniq.models import ExecutorStats

__all__ = ["ExecutorStats"]

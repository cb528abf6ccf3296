"""The dead-letter queue on the clients: failed tasks listed, requeued and purged.

A task is *dead* when it ended ``failed``: its retries were exhausted or its error was not
retryable. It keeps its last error, and its events tell each attempt's story. Dead tasks are
kept ``OMNIQ_DEAD_RETENTION`` seconds (instead of ``OMNIQ_RETENTION``). See ``docs/retries.md``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from omniq.backend import Backend, TaskQuery
from omniq.errors import ConfigError, NotSupportedError, TaskNotFoundError
from omniq.models import EventType, Task, TaskState

if TYPE_CHECKING:
    from omniq._events import EventLogger
    from omniq.worker import Worker

__all__ = ["DeadLetters", "purge_knows_failed_before"]

_PAGE = 500


def purge_knows_failed_before(backend: Backend) -> bool:
    """Whether ``backend.purge`` accepts ``failed_before`` (third-party backends may predate it)."""
    return purge_accepts(backend, "failed_before")


def purge_accepts(backend: Backend, keyword: str) -> bool:
    """Whether ``backend.purge`` accepts the keyword ``keyword`` (third-party backends may
    predate ``failed_before`` or ``max_events``)."""
    try:
        params = inspect.signature(backend.purge).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def _error_matches(task: Task, error_type: str) -> bool:
    if task.error is None:
        return False
    t = task.error.type
    return t == error_type or ("." not in error_type and t.rsplit(".", 1)[-1] == error_type)


class DeadLetters:
    """Mixed into :class:`omniq.AsyncTaskQueue`: the dead-letter queue API."""

    backend: Backend
    event_logger: EventLogger
    worker: Worker | None

    async def open(self) -> None:  # provided by the client
        raise NotImplementedError

    async def list_dead(self, queue: str | None = None, limit: int = 100) -> list[Task]:
        """Dead (``failed``) tasks, newest first, each with its last error in ``task.error``
        (``list_events(task_id=…)`` gives one ``error``/``retry`` event per attempt).

        Raises:
            ConfigError: ``limit`` is not between 1 and 10,000.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigError(f"limit={limit!r}: must be an integer between 1 and 10000")
        await self.open()
        return await self.backend.list_tasks(
            TaskQuery(states=(TaskState.FAILED,), queues=(queue,) if queue else None, limit=limit)
        )

    async def requeue_dead(self, task_id: str) -> bool:
        """Put one dead task back in its queue, due now, with a fresh retry budget.

        Returns True when it was requeued, False when it is not ``failed`` (e.g. already
        requeued, or it succeeded).

        Raises:
            TaskNotFoundError: no such task.
        """
        await self.open()
        [found] = await self.backend.get_tasks([task_id])
        if found is None:
            raise TaskNotFoundError(task_id)
        return bool(await self._requeue([task_id]))

    async def requeue_dead_all(
        self,
        queue: str | None = None,
        func: str | None = None,
        error_type: str | None = None,
    ) -> int:
        """Requeue every dead task, optionally only those of ``queue``, of function ``func``
        (its import path ``"module:name"``) and/or whose last error is ``error_type`` (a type
        path such as ``"builtins.ValueError"``, or a bare class name). Returns how many."""
        await self.open()
        total = 0
        before: str | None = None
        while True:
            page = await self.backend.list_tasks(
                TaskQuery(
                    states=(TaskState.FAILED,),
                    queues=(queue,) if queue else None,
                    limit=_PAGE,
                    before_id=before,
                )
            )
            if not page:
                return total
            before = page[-1].id
            ids = [
                t.id
                for t in page
                if (func is None or t.func == func)
                and (error_type is None or _error_matches(t, error_type))
            ]
            if ids:
                total += len(await self._requeue(ids))
            if len(page) < _PAGE:
                return total

    async def purge_dead(self, older_than: float | None = None) -> int:
        """Delete dead tasks (with their results) that failed more than ``older_than`` seconds
        ago; ``None`` deletes every dead task. Returns how many were deleted.

        Raises:
            NotSupportedError: the backend's ``purge`` has no ``failed_before`` parameter.
            ConfigError: ``older_than`` is negative or not finite.
        """
        if older_than is not None and (
            isinstance(older_than, bool)
            or not isinstance(older_than, int | float)
            or not math.isfinite(older_than)
            or older_than < 0
        ):
            raise ConfigError(f"older_than={older_than!r}: must be seconds >= 0 or None")
        await self.open()
        if not purge_knows_failed_before(self.backend):
            raise NotSupportedError(
                f"{type(self.backend).__name__}.purge has no failed_before parameter"
            )
        cutoff = math.inf if older_than is None else self.backend.clock.now() - older_than
        tasks, _ = await self.backend.purge(
            finished_before=-math.inf, events_before=-math.inf, failed_before=cutoff
        )
        return tasks

    async def _requeue(self, task_ids: Sequence[str]) -> list[Task]:
        done = await self.backend.requeue(task_ids, now=self.backend.clock.now())
        for task in done:
            self.event_logger.record(
                task, EventType.REQUEUED, detail="requeued from the dead-letter queue"
            )
        if done and self.worker is not None:
            self.worker.wake()
        return done

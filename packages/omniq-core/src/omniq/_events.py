"""Recording task events without slowing tasks down: a bounded buffer flushed in batches.

``record`` never awaits and never blocks: it appends to an in-memory buffer (dropping, and
counting, events once ``capacity`` is reached). A background coroutine writes the buffer to the
backend's event store every ``flush_interval`` seconds, or sooner when it fills up. A failed write
keeps its events for the next flush (a store outage delays events, within ``capacity``); failures
are logged, never raised into task execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from omniq._ids import new_id
from omniq.backend import Backend
from omniq.models import EventType, Task, TaskEvent

__all__ = ["EventRecorder"]

log = logging.getLogger("omniq.events")


class EventRecorder:
    """Buffers :class:`~omniq.models.TaskEvent` records and writes them in batches.

    Args:
        backend: where events are stored (``append_events``).
        enabled: when False, ``record`` returns at once and nothing is stored.
        capacity: most events held in memory; further ones are dropped and counted in ``dropped``.
        flush_interval: seconds between background writes.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        enabled: bool = True,
        capacity: int = 10_000,
        flush_interval: float = 0.2,
    ) -> None:
        self.enabled = enabled
        self.dropped = 0
        self._backend = backend
        self._capacity = capacity
        self._flush_interval = flush_interval
        self._buffer: list[TaskEvent] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(
        self, task: Task, type: EventType, *, worker_id: str | None = None, detail: str = ""
    ) -> None:
        """Queue one event about ``task`` (never blocks, never raises)."""
        if not self.enabled:
            return
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            return
        self._buffer.append(
            TaskEvent(
                id=new_id(),
                task_id=task.id,
                type=type,
                at=self._backend.clock.now(),
                queue=task.queue,
                worker_id=worker_id if worker_id is not None else task.worker_id,
                attempt=task.attempt,
                detail=detail[:500],
            )
        )
        if len(self._buffer) >= self._capacity // 2:
            self._full.set()

    def start(self) -> None:
        """Start the background writer on the running loop (idempotent)."""
        if self._task is None and self.enabled:
            self._task = asyncio.create_task(self._run(), name="omniq-events")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._full.wait()
            self._full.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write every buffered event now."""
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            await self._backend.append_events(batch)
        except Exception as exc:
            # Keep them for the next flush (event ids make the write idempotent), oldest first,
            # within capacity: a store outage delays events instead of losing them.
            kept = [*batch, *self._buffer]
            overflow = max(0, len(kept) - self._capacity)
            self.dropped += overflow
            self._buffer = kept[overflow:]
            log.warning(
                "could not store %d events (kept for the next try%s): %s: %s",
                len(batch),
                f", {overflow} dropped over capacity" if overflow else "",
                type(exc).__name__,
                exc,
            )

    async def stop(self) -> None:
        """Stop the writer and flush what is left (events that still cannot be stored are
        counted in ``dropped``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self._buffer:
            self.dropped += len(self._buffer)
            log.warning("%d events were not stored (the store is unavailable)", len(self._buffer))
            self._buffer = []

"""The event log: recording events without slowing tasks down, at a level changeable at run time.

``record`` never awaits and never blocks. It first checks the event's type against the current
level (one set lookup: at ``DISABLED`` that is all it does), then appends to an in-memory buffer
(dropping, and counting, events once ``capacity`` is reached). A background coroutine writes the
buffer to the backend's event store every ``flush_interval`` seconds, or sooner when it fills up,
and hands each stored batch to the optional JSON-lines sink (:mod:`omniq._event_sink`) without
waiting for it. A failed write keeps its events for the next flush (a store outage delays
events, within ``capacity``); failures are logged, never raised into task execution.

Listeners (:meth:`EventLogger.add_listener`) see this process's events the moment they are
recorded; :mod:`omniq._event_stream` uses them for immediate delivery to subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from omniq._ids import new_id
from omniq.backend import Backend
from omniq.errors import ConfigError
from omniq.models import EVENT_LEVELS, ErrorInfo, EventLevel, EventType, Task, TaskEvent

if TYPE_CHECKING:
    from omniq._event_sink import EventSink
    from omniq.config import Settings

__all__ = ["EventLogger", "EventTypes", "Listener", "build_event_logger", "epoch", "event_types"]

log = logging.getLogger("omniq.events")

EventTypes = EventType | str | Iterable[EventType | str]
"""One event type or several, as :class:`~omniq.models.EventType` or names."""

Listener = Callable[[TaskEvent], None]
"""Called with each event as it is recorded (on the event loop; must not block or raise)."""

_MAX_SINK_WRITES = 8
"""Sink writes in flight at once; a batch arriving when this many are pending is not written
to the sink (it is still in the event store) and counted in ``sink_failures``."""


def _wanted(level: EventLevel) -> frozenset[EventType]:
    return frozenset(t for t in EventType if EVENT_LEVELS[t].rank >= level.rank)


class EventLogger:
    """Buffers :class:`~omniq.models.TaskEvent` records and writes them in batches.

    Args:
        backend: where events are stored (``append_events``).
        level: the least important level recorded (an :class:`~omniq.models.EventLevel` or its
            name, case-insensitive); ``DISABLED`` records nothing. Change it at any time through
            :attr:`level`.
        capacity: most events held in memory; further ones are dropped and counted in ``dropped``.
        flush_interval: seconds between background writes.
        sink: also write every stored batch there as JSON lines (``OMNIQ_EVENT_SINK_URL``).

    Raises:
        ValueError: ``level`` is not a level name.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        level: EventLevel | str = EventLevel.DEBUG,
        capacity: int = 10_000,
        flush_interval: float = 0.2,
        sink: EventSink | None = None,
    ) -> None:
        self._level = EventLevel.parse(level)
        self._wanted = _wanted(self._level)
        self.dropped = 0
        """Events lost: recorded over ``capacity``, or still unstored when the logger stopped."""
        self.sink_failures = 0
        """Batches the sink could not write (failed, or too many writes pending)."""
        self._backend = backend
        self._capacity = capacity
        self._flush_interval = flush_interval
        self._sink = sink
        self._buffer: list[TaskEvent] = []
        self._listeners: list[Listener] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sink_writes: set[asyncio.Task[None]] = set()

    # -- level -------------------------------------------------------------------------------
    @property
    def level(self) -> EventLevel:
        """The least important level recorded. Assign a level or its name to change it at run
        time (``logger.level = "WARNING"``; ``"DISABLED"`` stops recording)."""
        return self._level

    @level.setter
    def level(self, value: EventLevel | str) -> None:
        level = EventLevel.parse(value)
        self._wanted = _wanted(level)  # one assignment: record() sees the old or the new set
        self._level = level

    @property
    def enabled(self) -> bool:
        """False when the level is ``DISABLED``."""
        return self._level is not EventLevel.DISABLED

    def is_recorded(self, type: EventType) -> bool:
        """Whether an event of this type would be recorded at the current level."""
        return type in self._wanted

    # -- recording ---------------------------------------------------------------------------
    def record(
        self,
        task: Task | None,
        type: EventType,
        *,
        worker_id: str | None = None,
        detail: str = "",
        duration: float | None = None,
        error: ErrorInfo | None = None,
        queue: str | None = None,
    ) -> None:
        """Queue one event about ``task`` (``None``: a worker event); never blocks, never raises.

        Args:
            task: the task concerned (its id, queue, worker and attempt are copied).
            type: what happened; ignored when its level is below :attr:`level`.
            worker_id: the worker involved (default: the task's).
            detail: short text, cut to 500 characters.
            duration: seconds the run took, if this event ends a run.
            error: the error (its traceback is not kept).
            queue: the queue, when there is no task (default ``"default"``).
        """
        if type not in self._wanted:
            return
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            return
        if error is not None and error.traceback:
            error = ErrorInfo(type=error.type, message=error.message[:500])
        event = TaskEvent(
            id=new_id(),
            task_id=None if task is None else task.id,
            type=type,
            at=self._backend.clock.now(),
            queue=task.queue if task is not None else (queue or "default"),
            worker_id=worker_id if worker_id is not None or task is None else task.worker_id,
            attempt=0 if task is None else task.attempt,
            detail=detail[:500],
            duration=duration,
            error=error,
        )
        self._buffer.append(event)
        if len(self._buffer) >= self._capacity // 2:
            self._full.set()
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a listener must never break recording
                log.exception("event listener %r failed", listener)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event recorded from now on (in this process).

        Returns:
            A function that removes the listener (idempotent).
        """
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    # -- writing -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background writer on the running loop (idempotent). It runs at every
        level, so a level raised from ``DISABLED`` at run time is written too."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="omniq-events")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._full.wait()
            self._full.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write every buffered event now (the sink's copy is written in the background)."""
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
            return
        if self._sink is not None:
            self._to_sink(batch)

    def _to_sink(self, batch: list[TaskEvent]) -> None:
        if len(self._sink_writes) >= _MAX_SINK_WRITES:
            self.sink_failures += 1
            log.warning("event sink is behind: %d events not written to it", len(batch))
            return
        write = asyncio.create_task(self._sink_write(batch), name="omniq-event-sink")
        self._sink_writes.add(write)
        write.add_done_callback(self._sink_writes.discard)

    async def _sink_write(self, batch: list[TaskEvent]) -> None:
        assert self._sink is not None
        try:
            await self._sink.write(batch)
        except Exception as exc:
            self.sink_failures += 1
            log.warning(
                "event sink could not write %d events: %s: %s", len(batch), type(exc).__name__, exc
            )

    async def stop(self) -> None:
        """Stop the writer, flush what is left and wait for the sink's writes (events that
        still cannot be stored are counted in ``dropped``)."""
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
        if self._sink_writes:  # bounded: a sink that never answers must not hold up a stop
            pending = set(self._sink_writes)
            _, late = await asyncio.wait(pending, timeout=_SINK_STOP_WAIT)
            for write in late:
                write.cancel()
            if late:
                self.sink_failures += len(late)
                log.warning(
                    "%d event sink write(s) still running after %s s at stop were abandoned",
                    len(late),
                    _SINK_STOP_WAIT,
                )


_SINK_STOP_WAIT = 5.0
"""Seconds ``stop`` waits for the event sink's writes in flight."""


def build_event_logger(backend: Backend, settings: Settings) -> EventLogger:
    """The event logger the settings describe: ``OMNIQ_EVENT_LEVEL`` (or the deprecated
    ``OMNIQ_EVENTS_ENABLED=false``) and ``OMNIQ_EVENT_SINK_URL``.

    Raises:
        ConfigError: the sink URL cannot be used, or ``omniq-obstore`` is not installed.
    """
    sink = None
    if settings.event_sink_url is not None:
        from omniq._event_sink import EventSink

        try:
            sink = EventSink(settings.event_sink_url)
        except ConfigError:
            raise
        except Exception as exc:  # e.g. a local path under a file, or without permission
            raise ConfigError(
                f"OMNIQ_EVENT_SINK_URL={settings.event_sink_url!r}: cannot open the event "
                f"sink: {type(exc).__name__}: {exc}"
            ) from None
    return EventLogger(backend, level=settings.resolved_event_level(), sink=sink)


def event_types(value: EventTypes | None) -> frozenset[EventType] | None:
    """The set of types ``value`` names (``None`` stays ``None``: every type).

    Raises:
        ValueError: an unknown type name (the message lists the known ones).
    """
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    out: set[EventType] = set()
    for item in items:
        try:
            out.add(EventType(item.lower() if isinstance(item, str) else item))
        except ValueError:
            known = ", ".join(t.value for t in EventType)
            raise ValueError(f"unknown event type {item!r}; known types: {known}") from None
    return frozenset(out)


def epoch(value: float | dt.datetime | None) -> float | None:
    """Seconds since the epoch of a timestamp or an aware ``datetime`` (``None`` stays).

    Raises:
        ValueError: a naive ``datetime`` (its time zone would be a guess).
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"since={value!r} has no time zone; give an aware datetime")
        return value.timestamp()
    return None if value is None else float(value)

"""Subscribing to events: ``queue.events()`` yields events as any process stores them.

Two sources feed one stream:

- **this process's events**, handed over by the :class:`~omniq._events.EventLogger` the moment
  they are recorded (a listener; before they are even stored);
- **every process's stored events**, polled from the backend with a cursor every
  ``poll_interval`` seconds.

Another worker's events reach the store up to a flush interval (0.2 s) after they happened, and
much later after a store outage; so each poll re-reads the last ``late_window`` seconds of event
time (``at``) and skips the ids already delivered. The ids remembered are those inside the window
(at most ``max_seen``), so memory stays bounded.

Guarantees: each event is delivered at most once per subscription, unless more than
``max_seen`` events fall inside one window. An event is delivered if it is stored less than
``late_window`` seconds (of event time) after the newest event already seen, with the processes'
clocks agreeing to within that window. With ``since``, the stored history is delivered first,
oldest first (this process's buffered events are flushed before it is read). Then, each round
yields the store's new events by ``(at, id)`` and this process's events not stored yet; those
may come before older events of other processes that reach the store later.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable, Collection

from omniq._events import EventLogger
from omniq.backend import Backend, event_filter
from omniq.models import EventType, TaskEvent

__all__ = ["stream_events"]

_LOCAL_CAPACITY = 10_000
"""This process's events waiting for the subscriber; older ones are dropped when it is full
(they are still delivered by the next poll of the store)."""


async def stream_events(
    backend: Backend,
    logger: EventLogger,
    *,
    task_id: str | None = None,
    types: Collection[EventType] | None = None,
    since: float | None = None,
    poll_interval: float = 0.5,
    late_window: float = 10.0,
    page: int = 500,
    max_seen: int = 100_000,
    is_closed: Callable[[], bool] = lambda: False,
) -> AsyncIterator[TaskEvent]:
    """Yield events matching the filters as they are recorded or stored; ends when
    ``is_closed()`` becomes true (the queue closed). See the module docstring for guarantees.

    Args:
        backend: the store polled.
        logger: this process's event logger (its events are yielded at once).
        task_id, types: only this task's events, only these types.
        since: start from events at or after this time (seconds since the epoch), history
            first; ``None`` means from now on.
        poll_interval: seconds between polls of the store.
        late_window: seconds of event time re-read at each poll, for events stored late.
        page: events read per query.
        max_seen: most event ids remembered for de-duplication.
        is_closed: stop when this returns true (checked between polls).
    """
    wanted = event_filter(task_id=task_id, types=types)
    start = backend.clock.now() if since is None else since
    local: collections.deque[TaskEvent] = collections.deque(maxlen=_LOCAL_CAPACITY)
    wake = asyncio.Event()

    def on_event(event: TaskEvent) -> None:
        if event.at >= start and wanted(event):
            local.append(event)
            wake.set()

    remove = logger.add_listener(on_event)
    seen: dict[str, float] = {}  # id -> at, of events delivered inside the window
    newest = start
    try:
        if since is not None:  # history first, this process's unstored events included
            with contextlib.suppress(Exception):
                await logger.flush()
        while not is_closed():
            cursor: tuple[float, str | None] = (max(start, newest - late_window), None)
            while True:
                try:
                    batch = await backend.list_events(
                        task_id=task_id,
                        types=types,
                        since=cursor[0],
                        after_id=cursor[1],
                        limit=page,
                    )
                except Exception:
                    if is_closed():  # the queue closed its backend meanwhile: the stream ends
                        return
                    raise
                for event in batch:
                    newest = max(newest, event.at)
                    if event.id not in seen:
                        seen[event.id] = event.at
                        yield event
                if len(batch) < page:
                    break
                cursor = (batch[-1].at, batch[-1].id)
            while local:  # after the store's (older) events: this process's newest ones
                event = local.popleft()
                if event.id not in seen:
                    seen[event.id] = event.at
                    yield event
            _forget(seen, before=newest - late_window, most=max_seen)
            wake.clear()
            if local:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_interval):
                    await wake.wait()
    finally:
        remove()


def _forget(seen: dict[str, float], *, before: float, most: int) -> None:
    """Drop ids of events older than the next window, then the oldest beyond ``most``."""
    for event_id in [i for i, at in seen.items() if at < before]:
        del seen[event_id]
    if len(seen) > most:
        for event_id in sorted(seen, key=seen.__getitem__)[: len(seen) - most]:
            del seen[event_id]

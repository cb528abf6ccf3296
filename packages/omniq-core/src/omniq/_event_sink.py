"""The analytics sink: every stored batch of events also written as one JSON-lines object.

``OMNIQ_EVENT_SINK_URL`` names an object-store location (``file:///dir``, ``s3://bucket/prefix``,
``memory://name``, ``gs://…``, ``az://…``); stores are built by ``omniq-obstore``, imported
only when a sink is configured. Objects are partitioned by the UTC date and hour of their first
event, Hive-style, so DuckDB (``omniq events query``) can prune them::

    events/date=2026-11-29/hour=21/1764450000.123456-<uuid>.jsonl

One line per event, the columns of :data:`SINK_COLUMNS`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from omniq.errors import ConfigError
from omniq.models import TaskEvent

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = ["SINK_COLUMNS", "SINK_PREFIX", "EventSink", "SinkRow", "open_sink_store", "sink_key"]

SINK_PREFIX = "events/"
"""Where the sink's objects live below the URL's own prefix."""


class SinkRow(msgspec.Struct, kw_only=True):
    """One line of a sink object: a :class:`~omniq.models.TaskEvent`, flattened for SQL.

    ``time`` is ``at`` as ISO 8601 text in UTC; ``error`` becomes ``error_type`` and
    ``error_message``; ``level`` is the type's level name.
    """

    id: str
    task_id: str | None
    type: str
    level: str
    at: float
    time: str
    queue: str
    worker_id: str | None
    attempt: int
    detail: str
    duration: float | None
    error_type: str | None
    error_message: str | None


SINK_COLUMNS: dict[str, str] = {
    "id": "VARCHAR",
    "task_id": "VARCHAR",
    "type": "VARCHAR",
    "level": "VARCHAR",
    "at": "DOUBLE",
    "time": "TIMESTAMPTZ",
    "queue": "VARCHAR",
    "worker_id": "VARCHAR",
    "attempt": "BIGINT",
    "detail": "VARCHAR",
    "duration": "DOUBLE",
    "error_type": "VARCHAR",
    "error_message": "VARCHAR",
}
"""The columns of a sink line with their DuckDB types (the ``events`` view of
``omniq events query``)."""

_encoder = msgspec.json.Encoder()


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


def to_row(e: TaskEvent) -> SinkRow:
    """The sink line of one event."""
    return SinkRow(
        id=e.id,
        task_id=e.task_id,
        type=e.type.value,
        level=e.level.value,
        at=e.at,
        time=_iso(e.at),
        queue=e.queue,
        worker_id=e.worker_id,
        attempt=e.attempt,
        detail=e.detail,
        duration=e.duration,
        error_type=None if e.error is None else e.error.type,
        error_message=None if e.error is None else e.error.message,
    )


def encode_lines(events: Sequence[TaskEvent]) -> bytes:
    """The JSON-lines bytes of a batch (one line per event, each ending with ``\\n``)."""
    return b"".join(_encoder.encode(to_row(e)) + b"\n" for e in events)


def sink_key(events: Sequence[TaskEvent]) -> str:
    """A unique key for a batch: partitioned by the UTC date and hour of its first event."""
    first = min(e.at for e in events)
    when = dt.datetime.fromtimestamp(first, dt.UTC)
    return (
        f"{SINK_PREFIX}date={when:%Y-%m-%d}/hour={when:%H}/{first:017.6f}-{uuid.uuid4().hex}.jsonl"
    )


def open_sink_store(url: str) -> ObjectStore:
    """The obstore store behind a sink URL (``memory://`` stores are shared in the process).

    Raises:
        ConfigError: ``omniq-obstore`` is not installed, or the URL cannot be used.
    """
    try:
        from omniq_obstore import open_store
    except ImportError:
        raise ConfigError(
            f"OMNIQ_EVENT_SINK_URL={url!r} needs the object-store package: "
            "pip install omniq-obstore"
        ) from None
    return open_store(url)


class EventSink:
    """Writes batches of events as JSON-lines objects to an object store.

    Args:
        url: the location (see the module docstring).

    Raises:
        ConfigError: as :func:`open_sink_store`.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.store: Any = open_sink_store(url)
        self.written = 0
        """Batches written."""

    async def write(self, events: Sequence[TaskEvent]) -> None:
        """Write one batch as one new object (nothing for an empty batch).

        Raises:
            Exception: whatever the store raises (the :class:`~omniq._events.EventLogger`
                logs and counts it).
        """
        if not events:
            return
        import obstore

        await obstore.put_async(self.store, sink_key(events), encode_lines(events))
        self.written += 1

    def __repr__(self) -> str:
        return f"EventSink({self.url!r})"

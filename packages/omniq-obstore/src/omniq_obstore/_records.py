"""What the objects hold (msgpack), and how a task's state is folded from them.

Worker health records (``workers/{W}``) hold a :class:`~omniq.models.WorkerInfo` as msgpack.

A task is never rewritten. Its current state is derived from its immutable ``spec`` plus the
markers of its latest attempt ``n``:

* no claim at all: the snapshot in ``settled`` when a waiting task left ``waiting`` (released
  or cancelled), else the spec as enqueued;
* ``end-n`` exists: the snapshot it holds (every mutable field of the task after that end);
* ``claim-n`` is a cancel tombstone: the snapshot it holds (``cancelled``; ``attempt`` is n - 1);
* otherwise attempt n is running: the snapshot of ``end-(n-1)`` (or the spec) with the claim's
  worker, start and lease, the lease pushed by ``lease-n`` if present, and ``cancel_requested``
  when a ``cancel`` marker exists.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omniq.backend import decode_worker_record
from omniq.models import ErrorInfo, Task, TaskEvent, TaskState, WorkerInfo

__all__ = [
    "DESERIALIZATION_ERROR",
    "WORKER_LOST_ERROR",
    "CancelMark",
    "LeaseMark",
    "Marker",
    "RecordError",
    "decode_cancel",
    "decode_event_batch",
    "decode_lease",
    "decode_marker",
    "decode_task",
    "decode_worker",
    "encode",
    "encode_task",
    "running",
    "salvage",
    "snapshot",
]

DESERIALIZATION_ERROR = "omniq.errors.DeserializationError"
WORKER_LOST_ERROR = "omniq.errors.WorkerLostError"

CLAIM = "claim"
TOMBSTONE = "cancel"
FINISHED = "finish"
EXPIRED = "expired"
RELEASED = "released"
UNDECODABLE = "undecodable"
REQUEUED = "requeued"
SETTLED = "settled"


class RecordError(Exception):
    """A stored object cannot be decoded.

    Attributes:
        key: the object's key.
        reason: what was wrong with it.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"stored object {key!r} cannot be decoded: {reason}")


class Marker(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of ``claim-n`` and ``end-n``.

    A claim (``kind="claim"``) holds ``worker_id``, ``started_at`` and ``lease_expires_at``.
    Every other kind is a complete snapshot of the task's mutable fields after that event:
    ``finish``/``expired``/``released``/``undecodable`` ends, the ``cancel`` tombstone
    that takes the next attempt's claim slot of a queued task, and ``settled`` (the body of
    ``tasks/{T}/settled``: a waiting task released or cancelled).
    """

    kind: str
    state: TaskState = TaskState.RUNNING
    worker_id: str | None = None
    started_at: float | None = None
    lease_expires_at: float | None = None
    run_at: float | None = None
    finished_at: float | None = None
    error: ErrorInfo | None = None
    released: int = 0
    cancel_requested: bool = False
    result_expires_at: float | None = None
    has_result: bool = False


class LeaseMark(msgspec.Struct, frozen=True):
    """Body of ``lease-n``: the lease end (seconds since the epoch) set by the last heartbeat."""

    expires_at: float


class CancelMark(msgspec.Struct, frozen=True, kw_only=True):
    """Body of ``cancel``: when it was asked for and the error to record."""

    at: float
    error: ErrorInfo


_encoder = msgspec.msgpack.Encoder()
_task_decoder = msgspec.msgpack.Decoder(Task)
_marker_decoder = msgspec.msgpack.Decoder(Marker)
_lease_decoder = msgspec.msgpack.Decoder(LeaseMark)
_cancel_decoder = msgspec.msgpack.Decoder(CancelMark)
_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_event_decoder = msgspec.msgpack.Decoder(TaskEvent)


def encode(record: Any) -> bytes:
    """msgpack bytes of a record."""
    return _encoder.encode(record)


def encode_task(task: Task) -> bytes:
    """The spec bytes of ``task``, checked to decode back to an equal task.

    Raises:
        ValueError: naming the field when ``task`` holds a value of the wrong type.
    """
    if isinstance(task.priority, int) and not -(1 << 63) <= task.priority < 1 << 63:
        raise ValueError(f"task {task.id!r}: priority must fit in 64 bits, got {task.priority}")
    try:
        data = _encoder.encode(task)
        _task_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.EncodeError, OverflowError, TypeError) as exc:
        raise ValueError(f"task {task.id!r} cannot be stored: {exc}") from None
    return data


def decode_worker(key: str, data: bytes | memoryview) -> WorkerInfo:
    """Decode a worker health record. Raises :class:`RecordError`."""
    try:
        return decode_worker_record(data)
    except ValueError as exc:
        raise RecordError(key, str(exc)) from None


def _decode(decoder: msgspec.msgpack.Decoder[Any], key: str, data: bytes | memoryview) -> Any:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RecordError(key, str(exc)) from None


def decode_task(key: str, data: bytes | memoryview) -> Task:
    """Decode a spec. Raises :class:`RecordError`."""
    task: Task = _decode(_task_decoder, key, data)
    return task


def decode_marker(key: str, data: bytes | memoryview) -> Marker:
    """Decode a claim or end marker. Raises :class:`RecordError`."""
    marker: Marker = _decode(_marker_decoder, key, data)
    return marker


def decode_lease(key: str, data: bytes | memoryview) -> LeaseMark:
    """Decode a lease marker. Raises :class:`RecordError`."""
    lease: LeaseMark = _decode(_lease_decoder, key, data)
    return lease


def decode_cancel(key: str, data: bytes | memoryview) -> CancelMark:
    """Decode a cancel marker. Raises :class:`RecordError`."""
    mark: CancelMark = _decode(_cancel_decoder, key, data)
    return mark


def decode_event_batch(key: str, data: bytes | memoryview) -> tuple[list[TaskEvent], int]:
    """Decode a batch of events; returns ``(events, undecodable_count)``.

    Raises:
        RecordError: when the batch itself is not a msgpack list.
    """
    raws: list[msgspec.Raw] = _decode(_raw_list_decoder, key, data)
    events: list[TaskEvent] = []
    bad = 0
    for raw in raws:
        try:
            events.append(_event_decoder.decode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError):
            bad += 1
    return events, bad


# -- folding -----------------------------------------------------------------------------------
def snapshot(spec: Task, marker: Marker, attempt: int) -> Task:
    """The task as an end (or tombstone) ``marker`` left it; ``attempt`` is the claim count."""
    return msgspec.structs.replace(
        spec,
        state=marker.state,
        attempt=attempt,
        worker_id=marker.worker_id,
        started_at=marker.started_at,
        lease_expires_at=None,
        run_at=spec.run_at if marker.run_at is None else marker.run_at,
        finished_at=marker.finished_at,
        error=marker.error,
        released=marker.released,
        cancel_requested=marker.cancel_requested,
        headers=dict(spec.headers),
    )


def running(
    before: Task, claim: Marker, attempt: int, *, lease: float | None, cancel: bool
) -> Task:
    """The task while attempt ``attempt`` runs, from its state ``before`` the claim."""
    return msgspec.structs.replace(
        before,
        state=TaskState.RUNNING,
        attempt=attempt,
        worker_id=claim.worker_id,
        started_at=claim.started_at,
        lease_expires_at=claim.lease_expires_at if lease is None else lease,
        cancel_requested=cancel,
        headers=dict(before.headers),
    )


def end_marker(kind: str, task: Task, **changes: Any) -> Marker:
    """A snapshot marker of ``task`` (a running or queued task) with ``changes`` applied."""
    fields: dict[str, Any] = {
        "worker_id": task.worker_id,
        "started_at": task.started_at,
        "run_at": task.run_at,
        "finished_at": task.finished_at,
        "error": task.error,
        "released": task.released,
        "cancel_requested": task.cancel_requested,
    }
    fields.update(changes)
    return Marker(kind=kind, **fields)


def salvage(task_id: str, problem: str, *, base: Task | None = None) -> Task:
    """A ``failed`` stand-in for a task whose objects cannot be decoded (for listings).

    Args:
        task_id: the id (or escaped id) to show.
        problem: what could not be decoded; becomes the error message.
        base: the decoded spec when only a marker was bad, so queue and function still show.
    """
    error = ErrorInfo(type=DESERIALIZATION_ERROR, message=problem)
    if base is not None:
        return msgspec.structs.replace(
            base,
            state=TaskState.FAILED,
            lease_expires_at=None,
            error=error,
            headers=dict(base.headers),
        )
    return Task(
        id=task_id,
        func="",
        payload=b"",
        run_at=0.0,
        created_at=0.0,
        state=TaskState.FAILED,
        error=error,
    )

"""Conversions between OmniQ records and SQLite rows, with defensive decoding.

Encoding is plain tuple building (the hot path of enqueue). Decoding checks what the schema
cannot: the state name and the headers JSON. A row that fails is reported as
:class:`RowDecodeError` naming the field, so one bad row never breaks a whole claim or listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from omniq.models import ErrorInfo, EventType, StoredResult, Task, TaskEvent, TaskState

__all__ = [
    "DESERIALIZATION_ERROR",
    "TASK_COLUMNS",
    "RowDecodeError",
    "decode_event",
    "decode_result",
    "decode_task",
    "encode_event",
    "encode_task",
    "error_columns",
    "json_list",
    "salvage_task",
]

TASK_COLUMNS: tuple[str, ...] = (
    "id",
    "func",
    "func_bytes",
    "payload",
    "queue",
    "priority",
    "executor",
    "state",
    "run_at",
    "created_at",
    "attempt",
    "max_retries",
    "retry_delay",
    "timeout",
    "result_ttl",
    "idempotency_key",
    "worker_id",
    "lease_expires_at",
    "started_at",
    "finished_at",
    "error_type",
    "error_message",
    "error_traceback",
    "cancel_requested",
    "headers",
    "released",
)
"""Column order of every ``SELECT``/``RETURNING`` of tasks (``{task_columns}`` in queries.sql)."""

DESERIALIZATION_ERROR = "omniq.errors.DeserializationError"

_STATES: dict[str, TaskState] = {s.value: s for s in TaskState}
_EVENT_TYPES: dict[str, EventType] = {e.value: e for e in EventType}
_headers_decoder = msgspec.json.Decoder(dict[str, str])
_json_encode = msgspec.json.encode


class RowDecodeError(Exception):
    """A stored row cannot be turned back into a record.

    Attributes:
        task_id: the row's id (as stored).
        field: the column that could not be decoded.
        reason: what was wrong with it.
    """

    def __init__(self, task_id: str, field: str, reason: str) -> None:
        self.task_id = task_id
        self.field = field
        self.reason = reason
        super().__init__(f"stored task {task_id!r} cannot be decoded: {field}: {reason}")


def json_list(values: Sequence[str] | None) -> str | None:
    """A list argument as JSON array text for ``json_each(?)`` (``None`` stays ``None``)."""
    return None if values is None else _json_encode(list(values)).decode()


def error_columns(error: ErrorInfo | None) -> tuple[str | None, str | None, str | None]:
    """``(error_type, error_message, error_traceback)`` column values."""
    if error is None:
        return None, None, None
    return error.type, error.message, error.traceback


RETRY_POLICY_HEADER = "omniq-retry-policy"
"""Reserved ``headers`` key under which the retry policy fields without a column of their own
(``retry_backoff``, ``retry_max_delay``, ``retry_jitter``, ``retry_on``, ``give_up_on``) are
stored as JSON, so the schema needs no migration; it never appears in a decoded task's headers."""


class _RetryPolicy(msgspec.Struct, omit_defaults=True):
    backoff: float | None = None
    max_delay: float | None = None
    jitter: bool | None = None
    retry_on: tuple[str, ...] | None = None
    give_up_on: tuple[str, ...] = ()


_policy_decoder = msgspec.json.Decoder(_RetryPolicy)
_NO_POLICY = _RetryPolicy()

GRAPH_HEADER = "omniq-graph"
"""Reserved ``headers`` key holding a task's graph fields (``depends_on``, ``pass_results``,
``pass_single``) as JSON, like :data:`RETRY_POLICY_HEADER`; absent for tasks outside a graph."""


class _GraphFields(msgspec.Struct, omit_defaults=True):
    depends_on: tuple[str, ...] = ()
    pass_results: tuple[str, ...] | None = None
    pass_single: bool = False


_graph_decoder = msgspec.json.Decoder(_GraphFields)


def _headers_column(t: Task) -> str | None:
    policy = _RetryPolicy(
        t.retry_backoff, t.retry_max_delay, t.retry_jitter, t.retry_on, t.give_up_on
    )
    in_graph = bool(t.depends_on) or t.pass_results is not None
    if policy == _NO_POLICY and not in_graph:
        return _json_encode(t.headers).decode() if t.headers else None
    headers = dict(t.headers)
    if policy != _NO_POLICY:
        headers[RETRY_POLICY_HEADER] = _json_encode(policy).decode()
    if in_graph:
        graph = _GraphFields(t.depends_on, t.pass_results, t.pass_single)
        headers[GRAPH_HEADER] = _json_encode(graph).decode()
    return _json_encode(headers).decode()


def encode_task(t: Task) -> tuple[Any, ...]:
    """The row of ``t`` in :data:`TASK_COLUMNS` order."""
    err = t.error
    return (
        t.id,
        t.func,
        t.func_bytes,
        t.payload,
        t.queue,
        t.priority,
        t.executor,
        str(t.state),
        t.run_at,
        t.created_at,
        t.attempt,
        t.max_retries,
        t.retry_delay,
        t.timeout,
        t.result_ttl,
        t.idempotency_key,
        t.worker_id,
        t.lease_expires_at,
        t.started_at,
        t.finished_at,
        None if err is None else err.type,
        None if err is None else err.message,
        None if err is None else err.traceback,
        1 if t.cancel_requested else 0,
        _headers_column(t),
        t.released,
    )


def _state(row: Sequence[Any]) -> TaskState:
    try:
        return _STATES[row[7]]
    except (KeyError, TypeError):
        raise RowDecodeError(str(row[0]), "state", f"unknown state {row[7]!r}") from None


def _headers(row: Sequence[Any]) -> dict[str, str]:
    raw = row[24]
    if raw is None:
        return {}
    try:
        return _headers_decoder.decode(raw)
    except (msgspec.DecodeError, TypeError) as exc:
        raise RowDecodeError(
            str(row[0]), "headers", f"not a JSON object of strings ({exc})"
        ) from None


def decode_task(row: Sequence[Any]) -> Task:
    """Turn a row (in :data:`TASK_COLUMNS` order) into a :class:`Task`.

    Raises:
        RowDecodeError: naming the first field that cannot be decoded.
    """
    error_type = row[20]
    headers = _headers(row)
    policy = _NO_POLICY
    raw_policy = headers.pop(RETRY_POLICY_HEADER, None)
    if raw_policy is not None:
        try:
            policy = _policy_decoder.decode(raw_policy)
        except msgspec.DecodeError as exc:
            raise RowDecodeError(str(row[0]), "headers", f"bad retry policy ({exc})") from None
    graph = _GraphFields()
    raw_graph = headers.pop(GRAPH_HEADER, None)
    if raw_graph is not None:
        try:
            graph = _graph_decoder.decode(raw_graph)
        except msgspec.DecodeError as exc:
            raise RowDecodeError(str(row[0]), "headers", f"bad graph fields ({exc})") from None
    return Task(
        id=row[0],
        func=row[1],
        func_bytes=row[2],
        payload=row[3],
        queue=row[4],
        priority=row[5],
        executor=row[6],
        state=_state(row),
        run_at=row[8],
        created_at=row[9],
        attempt=row[10],
        max_retries=row[11],
        retry_delay=row[12],
        timeout=row[13],
        result_ttl=row[14],
        idempotency_key=row[15],
        worker_id=row[16],
        lease_expires_at=row[17],
        started_at=row[18],
        finished_at=row[19],
        error=None
        if error_type is None
        else ErrorInfo(type=error_type, message=row[21] or "", traceback=row[22] or ""),
        cancel_requested=bool(row[23]),
        headers=headers,
        released=row[25],
        retry_backoff=policy.backoff,
        retry_max_delay=policy.max_delay,
        retry_jitter=policy.jitter,
        retry_on=policy.retry_on,
        give_up_on=policy.give_up_on,
        depends_on=graph.depends_on,
        pass_results=graph.pass_results,
        pass_single=graph.pass_single,
    )


def salvage_task(row: Sequence[Any], problem: RowDecodeError) -> Task:
    """Best-effort :class:`Task` for a row that :func:`decode_task` rejected (for listings).

    Fields that cannot be decoded get safe values (an unknown state reads as ``failed``, bad
    headers as ``{}``) and ``error`` describes the problem, so a dashboard can show the row.
    """
    fixed = list(row)
    if problem.field == "state" or fixed[7] not in _STATES:
        fixed[7] = TaskState.FAILED.value
    try:
        _headers(fixed)
    except RowDecodeError:
        fixed[24] = None
    if problem.field == "headers":
        fixed[24] = None
    fixed[20:23] = [DESERIALIZATION_ERROR, str(problem), ""]
    return decode_task(fixed)


def decode_result(row: Sequence[Any]) -> StoredResult:
    """A ``(task_id, data, stored_at, expires_at)`` row as a :class:`StoredResult`."""
    return StoredResult(task_id=row[0], data=row[1], stored_at=row[2], expires_at=row[3])


def encode_event(e: TaskEvent) -> tuple[Any, ...]:
    """The row of an event, in ``omniq_events`` column order."""
    err = e.error
    return (
        e.id,
        e.task_id,
        str(e.type),
        e.at,
        e.queue,
        e.worker_id,
        e.attempt,
        e.detail,
        e.duration,
        None if err is None else err.type,
        None if err is None else err.message,
    )


def decode_event(row: Sequence[Any]) -> TaskEvent | None:
    """An event row as a :class:`TaskEvent`, or ``None`` if its type is unknown."""
    event_type = _EVENT_TYPES.get(row[2])
    if event_type is None:
        return None
    return TaskEvent(
        id=row[0],
        task_id=row[1],
        type=event_type,
        at=row[3],
        queue=row[4],
        worker_id=row[5],
        attempt=row[6],
        detail=row[7],
        duration=row[8],
        error=None if row[9] is None else ErrorInfo(type=row[9], message=row[10] or ""),
    )

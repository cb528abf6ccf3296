"""The object layout: every key the backend reads or writes, and how names are escaped.

All keys are relative to the store's root (the URI's directory, bucket prefix or memory store)::

    omniq-format                                  format marker; the create-if-absent probe
    tasks/{T}/spec                                the task as enqueued (immutable)
    tasks/{T}/claim-{n}                           attempt n taken (or a cancel tombstone)
    tasks/{T}/lease-{n}                           heartbeat of attempt n (only its holder writes)
    tasks/{T}/result-{n}                          result of attempt n (written before its end)
    tasks/{T}/end-{n}                             how attempt n ended (created exactly once)
    tasks/{T}/cancel                              cancellation requested
    tasks/{T}/settled                             a waiting task left ``waiting`` (created once)
    deps/{A}/{T}                                  edge: task T depends on A (before T's spec)
    keys/{sha256 of the idempotency key}          the task holding the key (its full spec)
    due/{Q}/{P}.{R}.{T}.{n}.{E}                   claimable: attempt n of task T may be taken
    running/{T}.{n}.{X}                           attempt n is running; X = its first lease end
    events/{hour}/{first}.{last}.{count}.{uuid}   one batch of events
    workers/{W}                                   a worker's health record (rewritten each beat)

``{n}`` is the attempt as 8 decimal digits. ``T``, ``A``, ``Q``, ``E`` and ``W`` are the task id,
a parent task's id, queue, executor and worker id escaped by :func:`component`. ``P`` is the
priority inverted and ``R``/``X`` are times as order-preserving hex (:func:`time_key`), so the
lexicographic order of due keys is claim order: priority (higher first), then ``run_at``, then id.

Dependencies. A task enqueued ``waiting`` gets one empty edge object ``deps/{A}/{T}`` per parent,
written **before** its spec (so once the spec exists, listing ``deps/{A}/`` finds it), and no due
entry. It leaves ``waiting`` exactly once, by the create-if-absent of ``tasks/{T}/settled`` (a
snapshot marker: ``pending``/``scheduled`` when released, ``cancelled`` when a parent failed or a
client cancelled it): ``settle_waiting`` and ``cancel`` race on that one create. A release then
writes the due entry of the first attempt; a crash in between leaves a ``pending`` task without
its due entry, which ``purge`` restores like every missing index entry. ``purge`` deletes the
edges of every task it deletes (as parent and as child).
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import NamedTuple

__all__ = [
    "DEPS_PREFIX",
    "FORMAT_KEY",
    "WORKERS_PREFIX",
    "DueKey",
    "RunningKey",
    "component",
    "dep_key",
    "dep_prefix",
    "due_key",
    "due_prefix",
    "event_key",
    "idempotency_key",
    "parse_dep",
    "parse_due",
    "parse_event",
    "parse_running",
    "running_key",
    "task_id_of",
    "task_key",
    "task_prefix",
    "time_key",
    "untime_key",
    "worker_key",
]

FORMAT_KEY = "omniq-format"
_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_MAX_COMPONENT = 96  # keeps every file name below 255 bytes on local disks
_HASHED = "~~"
_EMPTY = "~"
_NONE = ""
_ATTEMPT_WIDTH = 8
_INT64 = 1 << 63
_MASK64 = (1 << 64) - 1


def component(text: str) -> str:
    """Escape ``text`` into one key segment made of ``[A-Za-z0-9_~-]`` only.

    Other characters become ``~XX`` per UTF-8 byte; ``""`` becomes ``~``; an escape longer than
    96 characters becomes ``~~`` plus a SHA-256 prefix (then the text is not recoverable from the
    key). No segment contains ``.``, ``/``, ``#`` or ``%``, so keys are valid on every store.
    """
    if not text:
        return _EMPTY
    if _SAFE.fullmatch(text):
        out = text
    else:
        out = "".join(
            ch if _SAFE.fullmatch(ch) else "".join(f"~{b:02x}" for b in ch.encode()) for ch in text
        )
    if len(out) > _MAX_COMPONENT:
        return _HASHED + hashlib.sha256(text.encode()).hexdigest()[:48]
    return out


def uncomponent(seg: str) -> str | None:
    """The text a segment made by :func:`component` stands for, ``None`` if it was hashed."""
    if seg == _EMPTY:
        return ""
    if seg.startswith(_HASHED):
        return None
    if "~" not in seg:
        return seg
    try:
        return re.sub(
            r"(?:~[0-9a-f]{2})+",
            lambda m: bytes.fromhex(m.group(0).replace("~", "")).decode(),
            seg,
        )
    except (ValueError, UnicodeDecodeError):
        return None


def time_key(t: float) -> str:
    """``t`` (seconds) as 16 hex digits whose text order is the numeric order (exact)."""
    (bits,) = struct.unpack(">Q", struct.pack(">d", t))
    bits = bits ^ _MASK64 if bits >> 63 else bits | _INT64
    return f"{bits:016x}"


def untime_key(text: str) -> float:
    """Inverse of :func:`time_key`.

    Raises:
        ValueError: if ``text`` is not 16 hex digits.
    """
    if len(text) != 16:
        raise ValueError(f"not a time key: {text!r}")
    bits = int(text, 16)
    bits = bits & ~_INT64 if bits >> 63 else bits ^ _MASK64
    (t,) = struct.unpack(">d", struct.pack(">Q", bits))
    return float(t)


def _priority_key(priority: int) -> str:
    if not -_INT64 <= priority < _INT64:
        raise ValueError(f"priority must fit in 64 bits, got {priority}")
    return f"{_INT64 - 1 - priority:016x}"


# -- tasks -------------------------------------------------------------------------------------
def task_prefix(tid: str) -> str:
    """The directory of one task (``tid`` is an escaped id), with a trailing slash."""
    return f"tasks/{tid}/"


def task_key(tid: str, name: str, attempt: int | None = None) -> str:
    """``tasks/{tid}/{name}`` or, with ``attempt``, ``tasks/{tid}/{name}-{attempt:08d}``."""
    if attempt is None:
        return f"tasks/{tid}/{name}"
    return f"tasks/{tid}/{name}-{attempt:0{_ATTEMPT_WIDTH}d}"


def task_id_of(path: str) -> str:
    """The escaped task id of a key under ``tasks/``."""
    return path.split("/", 2)[1]


def idempotency_key(key: str) -> str:
    """The object holding an idempotency key (hashed: keys may be long or contain anything)."""
    return "keys/" + hashlib.sha256(key.encode()).hexdigest()


# -- dependency edges -------------------------------------------------------------------------
DEPS_PREFIX = "deps/"
"""The directory of dependency edges."""


def dep_prefix(parent_tid: str) -> str:
    """The directory of the edges from parent ``parent_tid`` (escaped id), trailing slash."""
    return f"{DEPS_PREFIX}{parent_tid}/"


def dep_key(parent_tid: str, child_tid: str) -> str:
    """The edge object saying task ``child_tid`` depends on ``parent_tid`` (escaped ids)."""
    return f"{DEPS_PREFIX}{parent_tid}/{child_tid}"


def parse_dep(path: str) -> tuple[str, str] | None:
    """``(parent_tid, child_tid)`` of an edge key; ``None`` if it is not one."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] + "/" != DEPS_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


# -- due index ---------------------------------------------------------------------------------
class DueKey(NamedTuple):
    """A parsed due-index entry."""

    path: str
    priority: int
    run_at: float
    tid: str
    attempt: int
    executor: str
    """The escaped executor (:func:`component`), ``""`` for a task without one."""


def due_prefix(queue: str) -> str:
    """The due-index directory of ``queue``, with a trailing slash."""
    return f"due/{component(queue)}/"


def due_key(
    queue: str, priority: int, run_at: float, tid: str, attempt: int, executor: str | None
) -> str:
    """The due-index entry saying attempt ``attempt`` of ``tid`` may be claimed from ``run_at``.

    Raises:
        ValueError: if ``priority`` does not fit in 64 bits.
    """
    ex = _NONE if executor is None else component(executor)
    return (
        f"{due_prefix(queue)}{_priority_key(priority)}.{time_key(run_at)}."
        f"{tid}.{attempt:0{_ATTEMPT_WIDTH}d}.{ex}"
    )


def parse_due(path: str) -> DueKey | None:
    """Parse a due-index key; ``None`` if it is not one (foreign or damaged object)."""
    name = path.rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) != 5 or len(parts[0]) != 16:
        return None
    try:
        priority = _INT64 - 1 - int(parts[0], 16)
        run_at = untime_key(parts[1])
        attempt = int(parts[3])
    except ValueError:
        return None
    return DueKey(path, priority, run_at, parts[2], attempt, parts[4])


# -- running index -----------------------------------------------------------------------------
class RunningKey(NamedTuple):
    """A parsed running-index entry."""

    path: str
    tid: str
    attempt: int
    first_expiry: float


def running_key(tid: str, attempt: int, first_expiry: float) -> str:
    """The running-index entry of attempt ``attempt`` of ``tid``, leased until ``first_expiry``."""
    return f"running/{tid}.{attempt:0{_ATTEMPT_WIDTH}d}.{time_key(first_expiry)}"


def parse_running(path: str) -> RunningKey | None:
    """Parse a running-index key; ``None`` if it is not one."""
    parts = path.rsplit("/", 1)[-1].split(".")
    if len(parts) != 3:
        return None
    try:
        return RunningKey(path, parts[0], int(parts[1]), untime_key(parts[2]))
    except ValueError:
        return None


# -- events ------------------------------------------------------------------------------------
EVENT_BUCKET = 3600.0
"""Seconds of event time per ``events/{hour}/`` directory."""


class EventBatchKey(NamedTuple):
    """A parsed event-batch key."""

    path: str
    first: float
    last: float
    size: int
    """How many events the batch holds."""
    uid: str


def event_key(first: float, last: float, count: int, uid: str) -> str:
    """The key of a batch of ``count`` events whose times span ``first`` … ``last`` (seconds)."""
    bucket = max(0, int(first // EVENT_BUCKET))
    return f"events/{bucket:010d}/{time_key(first)}.{time_key(last)}.{count:08d}.{uid}"


def parse_event(path: str) -> EventBatchKey | None:
    """Parse an event-batch key; ``None`` if it is not one."""
    parts = path.rsplit("/", 1)[-1].split(".")
    if len(parts) != 4:
        return None
    try:
        return EventBatchKey(
            path, untime_key(parts[0]), untime_key(parts[1]), int(parts[2]), parts[3]
        )
    except ValueError:
        return None


# -- workers -----------------------------------------------------------------------------------
WORKERS_PREFIX = "workers/"
"""The directory of worker health records."""


def worker_key(worker_id: str) -> str:
    """The object holding the health record of ``worker_id`` (the id escaped; a long id is
    hashed, which is fine: the record itself holds the id)."""
    return WORKERS_PREFIX + component(worker_id)


def marker_name(name: str) -> tuple[str, int | None]:
    """Split a task object's file name into ``(kind, attempt)``: ``claim-00000003`` →
    ``("claim", 3)``, ``spec`` → ``("spec", None)``; an unparsable attempt gives ``None``."""
    kind, sep, num = name.partition("-")
    if not sep:
        return name, None
    try:
        return kind, int(num)
    except ValueError:
        return name, None

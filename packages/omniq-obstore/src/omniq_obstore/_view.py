"""Reading tasks: fold a task's objects into its current state (see :mod:`._records`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import msgspec

from omniq.models import StoredResult, Task, TaskState
from omniq_obstore import _keys as K
from omniq_obstore import _records as R
from omniq_obstore._store import Store

__all__ = ["View", "claimed", "copy", "load", "load_result", "scan"]

log = logging.getLogger("omniq.backend.obstore")

_result_decoder = msgspec.msgpack.Decoder(StoredResult)


def copy(task: Task) -> Task:
    """A copy of a (cached) task that callers may change freely."""
    return msgspec.structs.replace(task, headers=dict(task.headers))


@dataclass
class View:
    """One task as read from its directory.

    Attributes:
        tid: the escaped id (the directory name).
        task: the current state (a ``failed`` stand-in when something cannot be decoded).
        names: file names present in the directory when it was listed.
        spec: the decoded spec, ``None`` if it cannot be decoded.
        slot: the latest claim slot (``None`` when never claimed).
        claim: the marker in that slot (a claim or a cancel tombstone).
        end: the end marker of that slot, if any.
        problem: what could not be decoded, if anything.
    """

    tid: str
    task: Task
    names: set[str] = field(default_factory=set)
    spec: Task | None = None
    slot: int | None = None
    claim: R.Marker | None = None
    end: R.Marker | None = None
    problem: str | None = None

    @property
    def waiting(self) -> bool:
        """Enqueued ``waiting`` and not settled yet (released or cancelled)."""
        return self.problem is None and self.task.state is TaskState.WAITING

    @property
    def queued(self) -> bool:
        """Waiting to be claimed (``pending``, ``scheduled`` or ``waiting``)."""
        return self.problem is None and self.task.state in (
            TaskState.PENDING,
            TaskState.SCHEDULED,
            TaskState.WAITING,
        )

    @property
    def next_attempt(self) -> int:
        """The claim slot the next claim (or cancel tombstone) must take."""
        if self.slot is not None:
            return self.slot + 1
        return self.spec.attempt + 1 if self.spec is not None else 1


def _decode_lease(key: str, data: bytes | None) -> float | None:
    if data is None:
        return None
    return R.decode_lease(key, data).expires_at


async def load(store: Store, tid: str, names: set[str] | None = None) -> View | None:
    """Read task ``tid`` (escaped id); ``None`` if it has no spec (unknown or purged).

    Args:
        store: the store.
        tid: the escaped task id.
        names: the directory's file names when already listed (saves one listing).
    """
    if names is None:
        names = {k.rsplit("/", 1)[-1] for k in await store.names(K.task_prefix(tid))}
    if "spec" not in names:
        return None
    claims: list[int] = []
    ends: set[int] = set()
    for name in names:
        kind, n = K.marker_name(name)
        if n is not None:
            if kind == "claim":
                claims.append(n)
            elif kind == "end":
                ends.add(n)
    slot = max(claims, default=None)
    spec_key = K.task_key(tid, "spec")
    shown_id = K.uncomponent(tid) or tid
    try:
        if slot is None:
            spec, settled = await asyncio.gather(
                store.read_immutable(spec_key, R.decode_task),
                store.read_immutable(K.task_key(tid, "settled"), R.decode_marker)
                if "settled" in names
                else _none(),
            )
            if spec is None:
                return None
            if settled is None:
                return View(tid, copy(spec), names, spec)
            return View(tid, R.snapshot(spec, settled, spec.attempt), names, spec)
        if slot in ends:
            spec, end = await asyncio.gather(
                store.read_immutable(spec_key, R.decode_task),
                store.read_immutable(_end_key(tid, slot, names), R.decode_marker),
            )
            if spec is None or end is None:
                return None
            return View(tid, R.snapshot(spec, end, slot), names, spec, slot, None, end)
        lease_key = K.task_key(tid, "lease", slot)
        spec, claim, prev, lease = await asyncio.gather(
            store.read_immutable(spec_key, R.decode_task),
            store.read_immutable(K.task_key(tid, "claim", slot), R.decode_marker),
            store.read_immutable(_end_key(tid, slot - 1, names), R.decode_marker)
            if slot - 1 in ends
            else _none(),
            store.read(lease_key) if f"lease-{slot:08d}" in names else _none(),
        )
    except R.RecordError as exc:
        return await _salvaged(store, tid, names, shown_id, exc)
    if spec is None or claim is None:
        return None
    if claim.kind == R.TOMBSTONE:
        return View(tid, R.snapshot(spec, claim, slot - 1), names, spec, slot, claim)
    try:
        expires = _decode_lease(lease_key, lease)
    except R.RecordError:
        expires = None  # a damaged heartbeat: the claim's own lease end still holds
    before = R.snapshot(spec, prev, slot - 1) if prev is not None else copy(spec)
    task = R.running(before, claim, slot, lease=expires, cancel="cancel" in names)
    return View(tid, task, names, spec, slot, claim)


async def _none() -> None:
    return None


def _end_key(tid: str, n: int, names: set[str]) -> str:
    """The marker that decides the state after attempt ``n`` ended: ``requeue-n`` (a failed
    task put back by hand) when present, else ``end-n``."""
    if f"requeue-{n:08d}" in names:
        return K.task_key(tid, "requeue", n)
    return K.task_key(tid, "end", n)


async def _end_before(store: Store, tid: str, attempt: int) -> R.Marker | None:
    """The state marker left before ``attempt`` was claimed: ``requeue-(attempt-1)``, else
    ``end-(attempt-1)`` (``None`` for the first attempt)."""
    if attempt <= 1:
        return None
    requeue, end = await asyncio.gather(
        store.read_immutable(K.task_key(tid, "requeue", attempt - 1), R.decode_marker),
        store.read_immutable(K.task_key(tid, "end", attempt - 1), R.decode_marker),
    )
    return requeue if requeue is not None else end


async def _salvaged(
    store: Store, tid: str, names: set[str], shown_id: str, exc: R.RecordError
) -> View:
    spec: Task | None = None
    try:
        spec = await store.read_immutable(K.task_key(tid, "spec"), R.decode_task)
    except R.RecordError:
        pass
    problem = (
        f"stored task {shown_id!r} cannot be decoded: {exc.key.rsplit('/', 1)[-1]}: {exc.reason}"
    )
    log.warning("%s (shown as failed)", problem)
    task = R.salvage(spec.id if spec else shown_id, problem, base=spec)
    return View(tid, task, names, spec, problem=problem)


async def claimed(store: Store, tid: str, attempt: int) -> Task | None:
    """The task as attempt ``attempt`` found it when claimed (no heartbeat, no cancel flag).

    ``None`` when that slot holds no real claim (never claimed, or a cancel tombstone): an
    outcome, release or extension for it is stale.

    Raises:
        omniq_obstore._records.RecordError: when the spec or a marker cannot be decoded.
    """
    spec, claim, prev = await asyncio.gather(
        store.read_immutable(K.task_key(tid, "spec"), R.decode_task),
        store.read_immutable(K.task_key(tid, "claim", attempt), R.decode_marker),
        _end_before(store, tid, attempt),
    )
    if spec is None or claim is None or claim.kind != R.CLAIM:
        return None
    before = R.snapshot(spec, prev, attempt - 1) if prev is not None else copy(spec)
    return R.running(before, claim, attempt, lease=None, cancel=False)


async def load_result(store: Store, tid: str, now: float) -> StoredResult | None:
    """The stored result of task ``tid``, ``None`` if none or expired at ``now``."""
    names = {k.rsplit("/", 1)[-1] for k in await store.names(K.task_prefix(tid))}
    ends = [n for kind, n in map(K.marker_name, names) if kind == "end" and n is not None]
    if not ends:
        return None
    last = max(ends)
    if f"result-{last:08d}" not in names:
        return None
    try:
        end = await store.read_immutable(K.task_key(tid, "end", last), R.decode_marker)
    except R.RecordError:
        return None
    if end is None or end.state != TaskState.SUCCESS or not end.has_result:
        return None
    if end.result_expires_at is not None and end.result_expires_at <= now:
        return None
    key = K.task_key(tid, "result", last)
    data = await store.read(key)
    if data is None:
        return None
    try:
        result: StoredResult = _result_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("result %s cannot be decoded (%s); treated as absent", key, exc)
        return None
    return result


async def scan(store: Store) -> dict[str, set[str]]:
    """Every task directory with its file names, from one recursive listing."""
    out: dict[str, set[str]] = {}
    for key in await store.names("tasks/"):
        parts = key.split("/")
        if len(parts) == 3:
            out.setdefault(parts[1], set()).add(parts[2])
    return out

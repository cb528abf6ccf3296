"""Enqueue and claim: the two operations that create tasks' first objects and claim markers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from omniq.backend import claim_groups
from omniq.models import ErrorInfo, Task, TaskState
from omniq_obstore import _keys as K
from omniq_obstore import _records as R
from omniq_obstore._store import Store
from omniq_obstore._view import claimed, copy, load

__all__ = ["Held", "claim", "enqueue", "write_due", "write_edges"]

log = logging.getLogger("omniq.backend.obstore")

CLAIMABLE = (TaskState.PENDING, TaskState.SCHEDULED)
_HELD_MAX = 100_000


class Held:
    """Tasks this backend instance claimed, as they were at the claim, by ``(tid, attempt)``.

    Saves the enders (finish, release, heartbeat) from reading the claim back. Bounded.
    """

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, int], Task] = {}

    def add(self, tid: str, attempt: int, task: Task) -> None:
        if len(self._tasks) >= _HELD_MAX:
            del self._tasks[next(iter(self._tasks))]
        self._tasks[(tid, attempt)] = copy(task)

    def get(self, tid: str, attempt: int) -> Task | None:
        return self._tasks.get((tid, attempt))

    def drop(self, tid: str, attempt: int) -> None:
        self._tasks.pop((tid, attempt), None)

    async def claimed(self, store: Store, tid: str, attempt: int) -> Task | None:
        """The held task, else :func:`omniq_obstore._view.claimed` (``None`` on undecodable)."""
        task = self._tasks.get((tid, attempt))
        if task is not None:
            return task
        try:
            return await claimed(store, tid, attempt)
        except R.RecordError:
            return None


async def write_due(store: Store, task: Task, tid: str, attempt: int) -> None:
    """Write the due-index entry making ``attempt`` of ``task`` claimable."""
    key = K.due_key(task.queue, task.priority, task.run_at, tid, attempt, task.executor)
    await store.write(key, b"")


async def write_edges(store: Store, task: Task, tid: str) -> None:
    """Write the dependency edges ``deps/{parent}/{tid}`` of ``task`` (idempotent). Called
    before its spec is created, so a task whose spec exists is found from each parent."""
    if task.depends_on:
        edges = dict.fromkeys(K.dep_key(K.component(p), tid) for p in task.depends_on)
        await store.gather(store.write(e, b"") for e in edges)


# -- enqueue -----------------------------------------------------------------------------------
async def enqueue(store: Store, tasks: Sequence[Task]) -> list[Task]:
    """Store tasks; each is written atomically (its ``spec`` create is the commit point).

    Raises:
        ValueError: before anything is written, when a task holds a value of the wrong type.
    """
    encoded = []
    for t in tasks:
        encoded.append(R.encode_task(t))
        K.due_key(t.queue, t.priority, t.run_at, "x", 1, t.executor)  # priority range check
    rep: list[int] = []
    by_id: dict[str, int] = {}
    by_key: dict[str, int] = {}
    for i, t in enumerate(tasks):
        first = by_id.get(t.id)
        if first is None and t.idempotency_key is not None:
            first = by_key.get(t.idempotency_key)
        if first is None:
            first = i
            by_id[t.id] = i
            if t.idempotency_key is not None:
                by_key[t.idempotency_key] = i
        rep.append(first)
    firsts = sorted(set(rep))
    stored = await store.gather(_enqueue_one(store, tasks[i], encoded[i]) for i in firsts)
    by_first = dict(zip(firsts, stored, strict=True))
    return [by_first[r] for r in rep]


async def _enqueue_one(store: Store, task: Task, data: bytes) -> Task:
    tid = K.component(task.id)
    own_key: str | None = None
    if task.idempotency_key is not None:
        key = K.idempotency_key(task.idempotency_key)
        for _ in range(3):
            if await store.create(key, data):
                own_key = key
                break
            holder_data = await store.read(key)
            if holder_data is None:
                continue  # purged meanwhile: try to take the key again
            holder = R.decode_task(key, holder_data)
            if holder.id != task.id:
                # Another task holds the key. Finish its enqueue in case its writer died between
                # the key and the spec, then return it as it now is.
                return await _commit(store, holder, holder_data)
            break
    spec_key = K.task_key(tid, "spec")
    await write_edges(store, task, tid)
    if not await store.create(spec_key, data):
        view = await load(store, tid)
        if own_key is not None and (
            view is None or view.task.idempotency_key != task.idempotency_key
        ):
            await store.delete([own_key])  # the id was taken by a task without this key
        return view.task if view is not None else copy(task)
    store.remember(spec_key, copy(task), len(data))
    if task.state in CLAIMABLE:
        await write_due(store, task, tid, task.attempt + 1)
    return task


async def _commit(store: Store, task: Task, data: bytes) -> Task:
    tid = K.component(task.id)
    await write_edges(store, task, tid)
    if await store.create(K.task_key(tid, "spec"), data) and task.state in CLAIMABLE:
        await write_due(store, task, tid, task.attempt + 1)
    view = await load(store, tid)
    return view.task if view is not None else copy(task)


# -- claim -------------------------------------------------------------------------------------
def _rank(d: K.DueKey) -> tuple[int, float, str]:
    return (-d.priority, d.run_at, d.tid)


async def _due(
    store: Store, queue: str, now: float, groups: dict[str, str] | None, want: int
) -> tuple[list[K.DueKey], bool]:
    """Up to ``want`` due entries of ``queue`` in claim order whose (escaped) executor is a key
    of ``groups`` (``None``: any); and whether more may exist."""
    out: list[K.DueKey] = []
    async for chunk in store.sorted_chunks(K.due_prefix(queue)):
        for path in chunk:
            d = K.parse_due(path)
            if d is None or d.run_at > now:
                continue
            if groups is not None and d.executor not in groups:
                continue
            out.append(d)
        if len(out) >= want:
            return out, True
    return out, False


def _executor_groups(
    executors: Mapping[str, int] | None, default_executor: str | None, limit: int
) -> tuple[dict[str, str] | None, dict[str, int]]:
    """Escaped executor (``""``: names none) → its group, and each group's room."""
    if executors is None:
        return None, {"": limit}
    groups: dict[str, str] = {}
    room: dict[str, int] = {}
    for g in claim_groups(limit, executors, default_executor):
        name = K.component(g.executors[0]) if g.executors else ""
        groups[name] = name
        room[name] = g.limit
        if g.unrouted:
            groups[""] = name
    return groups, room


async def claim(
    store: Store,
    held: Held,
    *,
    queues: Sequence[str],
    worker_id: str,
    limit: int,
    lease: float,
    executors: Mapping[str, int] | None,
    default_executor: str | None,
    now: float,
) -> list[Task]:
    """Take up to ``limit`` due tasks, best first, at most each executor group's room; each by
    creating its next claim marker."""
    groups, room = _executor_groups(executors, default_executor, limit)

    def group(d: K.DueKey) -> str:
        return "" if groups is None else groups[d.executor]

    marker = R.Marker(
        kind=R.CLAIM, worker_id=worker_id, started_at=now, lease_expires_at=now + lease
    )
    data = R.encode(marker)
    got: list[Task] = []
    tried: set[str] = set()
    want = limit * 4 + 16
    while room and any(room.values()):
        found = await asyncio.gather(*(_due(store, q, now, groups, want) for q in queues))
        candidates = sorted((d for ds, _ in found for d in ds if d.path not in tried), key=_rank)
        while candidates and len(got) < limit:
            wave: list[K.DueKey] = []
            planned = dict(room)
            rest: list[K.DueKey] = []
            for d in candidates:
                if len(wave) < limit - len(got) and planned[group(d)] > 0:
                    planned[group(d)] -= 1
                    wave.append(d)
                else:
                    rest.append(d)
            if not wave:
                break
            candidates = rest
            tried.update(d.path for d in wave)
            taken = await store.gather(_take(store, held, d, marker, data, now) for d in wave)
            for d, task in zip(wave, taken, strict=True):
                if task is not None:
                    room[group(d)] -= 1
                    got.append(task)
        if len(got) >= limit or not any(more for _, more in found):
            break
        want *= 4
    got.sort(key=lambda t: (-t.priority, t.run_at, t.id))
    return got


async def _take(
    store: Store, held: Held, d: K.DueKey, marker: R.Marker, data: bytes, now: float
) -> Task | None:
    claim_key = K.task_key(d.tid, "claim", d.attempt)
    if not await store.create(claim_key, data):
        await store.delete([d.path])  # taken by another claimer (or a cancel tombstone)
        return None
    store.remember(claim_key, marker, len(data))
    try:
        task = await claimed(store, d.tid, d.attempt)
    except R.RecordError as exc:
        await _fail_undecodable(store, d, marker, exc, now)
        return None
    if task is None:  # the task is gone (purged): drop the claim again
        await store.delete([claim_key, d.path])
        return None
    assert marker.lease_expires_at is not None
    await asyncio.gather(
        store.write(K.running_key(d.tid, d.attempt, marker.lease_expires_at), b""),
        store.delete([d.path]),
    )
    held.add(d.tid, d.attempt, task)
    return task


async def _fail_undecodable(
    store: Store, d: K.DueKey, marker: R.Marker, exc: R.RecordError, now: float
) -> None:
    shown = K.uncomponent(d.tid) or d.tid
    problem = f"stored task {shown!r} cannot be decoded: {exc.key.rsplit('/', 1)[-1]}: {exc.reason}"
    log.error("%s; failing it without running it", problem)
    end = R.Marker(
        kind=R.UNDECODABLE,
        state=TaskState.FAILED,
        worker_id=marker.worker_id,
        started_at=now,
        finished_at=now,
        error=ErrorInfo(
            type=R.DESERIALIZATION_ERROR, message=f"{problem}; the task was failed without running"
        ),
    )
    await store.create(K.task_key(d.tid, "end", d.attempt), R.encode(end))
    await store.delete([d.path])

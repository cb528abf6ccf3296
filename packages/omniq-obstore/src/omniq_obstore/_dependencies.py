"""Task dependencies: finding a parent's waiting children, and settling them exactly once.

Layout (see :mod:`omniq_obstore._keys`): ``enqueue`` writes one empty edge ``deps/{A}/{T}`` per
parent ``A`` of ``T`` before ``T``'s spec, so :func:`dependents` is one listing per parent. A
waiting task has no due entry; it leaves ``waiting`` by the create-if-absent of
``tasks/{T}/settled``, a snapshot marker (``pending``/``scheduled`` or ``cancelled``) that
:mod:`omniq_obstore._view` folds over the spec. Every way out of ``waiting`` (released, cancelled
because of a parent, cancelled by a client) races on that one create, so exactly one wins. A
release then writes the due entry of the first attempt; a crash in between is repaired by
``purge`` (a ``pending`` task without its due entry gets it back).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from omniq.backend import settle_decision
from omniq.errors import BackendError
from omniq.models import ErrorInfo, Task, TaskState
from omniq_obstore import _keys as K
from omniq_obstore import _records as R
from omniq_obstore._claiming import CLAIMABLE, write_due
from omniq_obstore._store import Store
from omniq_obstore._view import View, load

__all__ = ["SucceededParents", "dependents", "settle", "settle_waiting"]

log = logging.getLogger("omniq.backend.obstore")


async def dependents(store: Store, task_ids: Sequence[str]) -> list[str]:
    """Ids of the waiting tasks that depend on one of ``task_ids`` (each once).

    One listing of ``deps/{A}/`` per parent, then a read of each child found; a child is
    returned only while it is waiting and its spec names that parent.
    """
    parents = list(dict.fromkeys(K.component(i) for i in task_ids))
    listed = await store.gather(store.names(K.dep_prefix(p)) for p in parents)
    found: dict[str, set[str]] = {}  # child tid -> the parents (tids) it was found under
    for keys in listed:
        for key in keys:
            edge = K.parse_dep(key)
            if edge is not None:
                found.setdefault(edge[1], set()).add(edge[0])
    children = list(found)
    views = await store.gather(load(store, c) for c in children)
    out: list[str] = []
    for tid, view in zip(children, views, strict=True):
        if view is None or not view.waiting:
            continue
        if any(K.component(p) in found[tid] for p in view.task.depends_on):
            out.append(view.task.id)
    return out


_SUCCEEDED = Task(id="", func="", payload=b"", run_at=0.0, created_at=0.0, state=TaskState.SUCCESS)
"""Stands for a parent known to have succeeded (only its state is looked at)."""


class SucceededParents:
    """Ids of parents seen ``success``, which never changes, so settling a fan-in child after
    each batch of its parents reads only the parents not yet seen succeeded (without it, a
    1,000-parent chord reads ~1,000 parents per settle). Bounded: forgotten all at once when
    ``limit`` ids are held (the next settles read again)."""

    def __init__(self, limit: int = 200_000) -> None:
        self._ids: set[str] = set()
        self._limit = limit

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ids

    def add(self, task_id: str) -> None:
        if len(self._ids) >= self._limit:
            self._ids.clear()
        self._ids.add(task_id)


async def settle_waiting(
    store: Store, task_ids: Sequence[str], now: float, succeeded: SucceededParents
) -> list[Task]:
    """Settle each waiting task against its parents; return the ones this call changed."""
    got = await store.gather(_settle_one(store, i, now, succeeded) for i in dict.fromkeys(task_ids))
    return [t for t in got if t is not None]


async def _parents(store: Store, child: Task, succeeded: SucceededParents) -> list[Task | None]:
    """The child's parents, in ``depends_on`` order (``None``: missing), reading only those not
    known to have succeeded."""
    unknown = [p for p in child.depends_on if p not in succeeded]
    views = await store.gather(load(store, K.component(p)) for p in unknown)
    loaded = dict(zip(unknown, views, strict=True))
    parents: list[Task | None] = []
    for parent_id in child.depends_on:
        if parent_id not in loaded:
            parents.append(_SUCCEEDED)
            continue
        view = loaded[parent_id]
        parents.append(None if view is None else view.task)
        if view is not None and view.task.state is TaskState.SUCCESS:
            succeeded.add(parent_id)
    return parents


async def _settle_one(
    store: Store, task_id: str, now: float, succeeded: SucceededParents
) -> Task | None:
    tid = K.component(task_id)
    view = await load(store, tid)
    if view is None or not view.waiting:
        return None
    child = view.task
    decided = settle_decision(child, await _parents(store, child, succeeded), now=now)
    if decided is None:
        return None
    return await settle(
        store, view, decided.state, finished_at=decided.finished_at, error=decided.error
    )


async def settle(
    store: Store,
    view: View,
    state: TaskState,
    *,
    finished_at: float | None,
    error: ErrorInfo | None,
) -> Task | None:
    """Take a waiting task (``view``) out of ``waiting`` into ``state``: the create-if-absent of
    its ``settled`` marker. Returns the task as it now is, or ``None`` when another caller
    settled it first (a release, a dependency cancel, or a client's cancel).

    For a release, the due entry of the first attempt is written next; if that write fails the
    task stays released (it is returned) and ``purge`` restores the entry.
    """
    spec = view.spec
    assert spec is not None and view.waiting
    marker = R.end_marker(R.SETTLED, view.task, state=state, finished_at=finished_at, error=error)
    data = R.encode(marker)
    key = K.task_key(view.tid, "settled")
    if not await store.create(key, data):
        return None
    store.remember(key, marker, len(data))
    task = R.snapshot(spec, marker, spec.attempt)
    if state in CLAIMABLE:
        try:
            await write_due(store, task, view.tid, view.next_attempt)
        except BackendError as exc:
            log.warning(
                "task %s released, but its due entry is not written yet (purge restores it): %s",
                task.id,
                exc,
            )
    return task

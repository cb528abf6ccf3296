"""Dependencies on the obstore backend: edges, the one ``settled`` marker, crash repair, purge.

The shared conformance suite tests the protocol; these tests look at the objects of the design
(``deps/{A}/{T}`` edges, ``tasks/{T}/settled``) and break it on purpose between two writes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import obstore as obs
import pytest

from omniq.backend import TaskQuery
from omniq.clock import ManualClock
from omniq.errors import BackendError
from omniq.models import ErrorInfo, Task, TaskState
from omniq_obstore import _keys as K
from omniq_obstore import _records as R
from omniq_obstore.backend import ObjectStoreBackend

from .conftest import Raw
from .test_backend import claim, done

MakeTask = Callable[..., Task]
B = ObjectStoreBackend

FAILED_DEP = "omniq.errors.DependencyFailedError"
CANCEL = ErrorInfo(type="omniq.errors.TaskCancelledError", message="cancelled by test")


def child_of(make_task: MakeTask, *parents: Task, **fields: Any) -> Task:
    """A waiting task depending on ``parents``."""
    return make_task(state=TaskState.WAITING, depends_on=tuple(p.id for p in parents), **fields)


def raw_read(backend: B, key: str) -> bytes:
    """The bytes of one object, read past the backend."""
    return bytes(obs.get(backend.store, key).bytes())


async def run(backend: B, task: Task, state: str = "success", **kw: Any) -> None:
    """Claim ``task`` (it must be the only due task) and finish it in ``state``."""
    [got] = await claim(backend)
    assert got.id == task.id
    if state == "failed":
        kw.setdefault("error", ErrorInfo(type="builtins.ValueError", message="boom"))
    await backend.finish([done(got, state, **kw)])


# -- the protocol, quickly (the conformance suite has the full set) --------------------------
async def test_waiting_child_is_released_once_after_its_parent_succeeds(
    backend: B, make_task: MakeTask
) -> None:
    parent = make_task()
    child = child_of(make_task, parent)
    await backend.enqueue([parent, child])
    assert await backend.dependents([parent.id]) == [child.id]
    assert await backend.dependents([child.id, "unknown"]) == []
    assert await backend.settle_waiting([child.id]) == []  # parent unfinished: no change
    await run(backend, parent)  # the waiting child is never claimed
    [released] = await backend.settle_waiting([child.id, child.id])
    assert (released.id, released.state, released.attempt) == (child.id, TaskState.PENDING, 0)
    assert await backend.settle_waiting([child.id]) == []
    assert await backend.dependents([parent.id]) == []  # no longer waiting
    [got] = await backend.get_tasks([child.id])
    assert got == released
    [claimed] = await claim(backend)
    assert (claimed.id, claimed.attempt, claimed.depends_on) == (child.id, 1, (parent.id,))


async def test_a_failed_parent_cancels_the_child_and_the_cascade_reaches_grandchildren(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    parent, other = make_task(), make_task()
    child = child_of(make_task, other, parent)
    grandchild = child_of(make_task, child)
    await backend.enqueue([parent, other, child, grandchild])
    [a, _] = await claim(backend)
    assert a.id == parent.id
    await backend.finish([done(a, "failed", error=ErrorInfo(type="x.E", message="boom"))])
    # One failed parent is enough, even while the other one still runs.
    [cancelled] = await backend.settle_waiting(await backend.dependents([parent.id]))
    assert cancelled.state is TaskState.CANCELLED
    assert cancelled.finished_at == clock.now()
    assert cancelled.error is not None and cancelled.error.type == FAILED_DEP
    assert f"{parent.id} failed: x.E: boom" in cancelled.error.message
    assert await backend.dependents([child.id]) == [grandchild.id]
    [gone] = await backend.settle_waiting([grandchild.id])
    assert gone.error is not None and child.id in gone.error.message
    assert gone.state is TaskState.CANCELLED


async def test_cancel_of_a_waiting_task_and_fields_round_trip(
    backend: B, make_task: MakeTask
) -> None:
    p1, p2 = make_task(), make_task()
    chord = child_of(make_task, p1, p2, pass_results=(p2.id, p1.id))
    link = child_of(make_task, p1, pass_results=(p1.id,), pass_single=True)
    assert await backend.enqueue([p1, p2, chord, link]) == [p1, p2, chord, link]
    assert await backend.get_tasks([chord.id, link.id]) == [chord, link]
    listed = await backend.list_tasks(TaskQuery(states=(TaskState.WAITING,)))
    assert sorted(listed, key=lambda t: t.id) == sorted([chord, link], key=lambda t: t.id)
    assert await backend.count_tasks(TaskQuery()) == {TaskState.PENDING: 2, TaskState.WAITING: 2}
    [cancelled] = await backend.cancel([link.id], error=CANCEL)
    assert (cancelled.state, cancelled.error) == (TaskState.CANCELLED, CANCEL)
    assert (cancelled.depends_on, cancelled.pass_single) == ((p1.id,), True)
    assert await backend.get_tasks([link.id]) == [cancelled]
    assert await backend.cancel([link.id], error=CANCEL) == [cancelled]  # terminal: unchanged
    assert sorted(await backend.dependents([p1.id])) == [chord.id]
    await backend.finish([done(t) for t in await claim(backend)])
    assert [t.id for t in await backend.settle_waiting([chord.id, link.id])] == [chord.id]


async def test_a_missing_parent_cancels_and_a_future_run_at_releases_as_scheduled(
    backend: B, make_task: MakeTask, clock: ManualClock
) -> None:
    parent = make_task()
    orphan = make_task(state=TaskState.WAITING, depends_on=("never-enqueued",))
    later = child_of(make_task, parent, run_at=clock.now() + 60)
    await backend.enqueue([parent, orphan, later])
    [cancelled] = await backend.settle_waiting([orphan.id, later.id])
    assert cancelled.error is not None and "never-enqueued" in cancelled.error.message
    await run(backend, parent)
    [scheduled] = await backend.settle_waiting([later.id])
    assert scheduled.state is TaskState.SCHEDULED
    assert await claim(backend) == []
    clock.advance(60)
    assert [t.id for t in await claim(backend)] == [later.id]


# -- the objects -------------------------------------------------------------------------------
async def test_layout_edges_before_spec_settled_marker_and_no_due_entry_while_waiting(
    backend: B, make_task: MakeTask, raw: Raw
) -> None:
    parent = make_task()
    child = child_of(make_task, parent, parent)  # a repeated parent is one edge
    await backend.enqueue([parent, child])
    c, p = K.component(child.id), K.component(parent.id)
    assert raw.keys(K.DEPS_PREFIX) == [K.dep_key(p, c)]
    assert [K.parse_due(k).tid for k in raw.keys("due/")] == [p]  # type: ignore[union-attr]
    await run(backend, parent)
    await backend.settle_waiting([child.id])
    settled = R.decode_marker("settled", raw_read(backend, K.task_key(c, "settled")))
    assert (settled.kind, settled.state) == (R.SETTLED, TaskState.PENDING)
    assert [K.parse_due(k).tid for k in raw.keys("due/")] == [c]  # type: ignore[union-attr]


async def test_an_edge_without_a_spec_is_not_a_dependent(
    backend: B, make_task: MakeTask, raw: Raw
) -> None:
    parent = make_task()
    await backend.enqueue([parent])
    raw.put(K.dep_key(K.component(parent.id), "crashed-before-its-spec"), b"")
    other = make_task()  # an edge to a task that does not depend on the parent (any more)
    await backend.enqueue([child_of(make_task, other, id=other.id + "-c")])
    raw.put(K.dep_key(K.component(parent.id), K.component(other.id + "-c")), b"")
    assert await backend.dependents([parent.id]) == []


async def test_purge_deletes_the_edges_of_purged_tasks(
    backend: B, make_task: MakeTask, raw: Raw, clock: ManualClock
) -> None:
    parent, keep = make_task(), make_task()
    child = child_of(make_task, parent)
    live = child_of(make_task, keep)
    await backend.enqueue([parent, keep, child, live])
    [p_run, _] = await claim(backend)
    await backend.finish([done(p_run, at=clock.now())])
    assert len(await backend.settle_waiting([child.id])) == 1
    await backend.finish([done(t, at=clock.now()) for t in await claim(backend)])
    clock.advance(10)
    assert await backend.purge(finished_before=clock.now(), events_before=0) == (2, 0)
    assert await backend.get_tasks([parent.id, child.id]) == [None, None]
    # keep still runs (claimed with the parent, never finished): live's edge stays.
    assert raw.keys(K.DEPS_PREFIX) == [K.dep_key(K.component(keep.id), K.component(live.id))]
    assert await backend.dependents([keep.id]) == [live.id]


async def test_purge_deletes_edges_of_a_purged_parent_whose_children_never_arrived(
    backend: B, make_task: MakeTask, raw: Raw, clock: ManualClock
) -> None:
    parent = make_task()
    await backend.enqueue([parent])
    raw.put(K.dep_key(K.component(parent.id), "enqueue-crashed"), b"")
    await run(backend, parent, at=clock.now())
    clock.advance(10)
    assert await backend.purge(finished_before=clock.now(), events_before=0) == (1, 0)
    assert raw.keys(K.DEPS_PREFIX) == []


# -- crashes and races -------------------------------------------------------------------------
class Crash(Exception):
    """The process "dies" here."""


def fail_writes_under(
    backend: B, monkeypatch: pytest.MonkeyPatch, prefix: str, exc: Exception
) -> Callable[[], None]:
    """Make every write of a key under ``prefix`` raise ``exc``; returns the undo."""
    store = backend._s()
    real = store.write

    async def write(key: str, data: bytes) -> None:
        if key.startswith(prefix):
            raise exc
        await real(key, data)

    monkeypatch.setattr(store, "write", write)
    return lambda: monkeypatch.setattr(store, "write", real)


@pytest.mark.parametrize("failure", ["crash", "store error"])
async def test_a_release_that_dies_before_the_due_entry_is_repaired_by_purge(
    backend: B,
    make_task: MakeTask,
    raw: Raw,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    parent = make_task()
    child = child_of(make_task, parent)
    await backend.enqueue([parent, child])
    await run(backend, parent)
    exc = Crash() if failure == "crash" else BackendError("disk full")
    heal = fail_writes_under(backend, monkeypatch, "due/", exc)
    if failure == "crash":
        with pytest.raises(Crash):
            await backend.settle_waiting([child.id])
    else:  # the transition committed: it is reported, the index entry comes later
        assert [t.state for t in await backend.settle_waiting([child.id])] == [TaskState.PENDING]
    heal()
    # Committed: pending, never reported twice, not claimable until purge repairs the index.
    [got] = await backend.get_tasks([child.id])
    assert got is not None and got.state is TaskState.PENDING
    assert await backend.settle_waiting([child.id]) == []
    assert await backend.dependents([parent.id]) == []
    assert await claim(backend) == []
    assert await backend.purge(finished_before=0, events_before=0) == (0, 0)
    [claimed] = await claim(backend)
    assert (claimed.id, claimed.attempt) == (child.id, 1)


async def test_a_cancel_that_dies_after_its_marker_is_finished_by_purge(
    backend: B, make_task: MakeTask, raw: Raw, clock: ManualClock
) -> None:
    parent = make_task()
    child = child_of(make_task, parent)
    await backend.enqueue([parent, child])
    mark = R.CancelMark(at=clock.now(), error=CANCEL)
    raw.put(K.task_key(K.component(child.id), "cancel"), R.encode(mark))  # then "died"
    [got] = await backend.get_tasks([child.id])
    assert got is not None and got.state is TaskState.WAITING
    await backend.purge(finished_before=0, events_before=0)
    [got] = await backend.get_tasks([child.id])
    assert got is not None and (got.state, got.error) == (TaskState.CANCELLED, CANCEL)
    await run(backend, parent)
    assert await backend.settle_waiting([child.id]) == []


async def test_concurrent_settlers_release_each_child_exactly_once(
    url: str, backend: B, make_task: MakeTask, clock: ManualClock, kind: str
) -> None:
    n = 20 if kind == "s3" else 60
    parent = make_task()
    children = [child_of(make_task, parent) for _ in range(n)]
    await backend.enqueue([parent, *children])
    await run(backend, parent)
    others = [ObjectStoreBackend.from_url(url, clock=clock) for _ in range(5)]
    for b in others:
        await b.open()
    try:
        ids = [c.id for c in children]
        calls = [b.settle_waiting(ids[i:] + ids[:i]) for i, b in enumerate([backend, *others])]
        calls += [b.settle_waiting(await b.dependents([parent.id])) for b in others]
        got = await asyncio.gather(*calls)
    finally:
        for b in others:
            await b.close()
    released = Counter(t.id for batch in got for t in batch)
    assert released == Counter(ids)  # every child once, none twice
    assert len(await claim(backend, limit=1000)) == n


async def test_cancel_and_settle_racing_never_both_win(
    url: str, backend: B, make_task: MakeTask, clock: ManualClock, raw: Raw, kind: str
) -> None:
    n = 20 if kind == "s3" else 60
    parent = make_task()
    children = [child_of(make_task, parent) for _ in range(n)]
    await backend.enqueue([parent, *children])
    await run(backend, parent)
    ids = [c.id for c in children]
    other = ObjectStoreBackend.from_url(url, clock=clock)
    await other.open()
    try:
        released, _ = await asyncio.gather(
            backend.settle_waiting(ids), other.cancel(ids[::-1], error=CANCEL)
        )
    finally:
        await other.close()
    won_by_release = {t.id for t in released}
    for c in children:
        key = K.task_key(K.component(c.id), "settled")
        marker = R.decode_marker(key, raw_read(backend, key))
        assert (marker.state is TaskState.PENDING) == (c.id in won_by_release)
    # Whoever won the waiting task, the cancel still holds: released ones were tombstoned.
    states = {t.state for t in await backend.get_tasks(ids) if t is not None}
    assert states == {TaskState.CANCELLED}
    assert await claim(backend, limit=1000) == []

"""Events, listings over every task, and purge (which also repairs index entries).

Nothing here needs atomicity beyond single objects: events are append-only batches, and purge
deletes only what nobody writes any more (terminal tasks, expired results, old event batches).
Purge also *reconciles*: a writer that died between two of its objects (a spec without its
due-index entry, a claim without its running entry, an end without the next due entry, a released
waiting task without its due entry) leaves a task that nothing would ever pick up; purge rewrites
the missing entry, so every such crash heals within one purge period. Purge also deletes the
dependency edges (``deps/``) of the tasks it deletes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from omniq.backend import TaskQuery
from omniq.models import Task, TaskEvent, TaskState
from omniq_obstore import _keys as K
from omniq_obstore import _records as R
from omniq_obstore._claiming import write_due
from omniq_obstore._dependencies import settle
from omniq_obstore._ending import cancel_mark
from omniq_obstore._store import Store
from omniq_obstore._view import View, load, scan

__all__ = ["all_tasks", "append_events", "list_events", "list_tasks", "matches", "purge"]

log = logging.getLogger("omniq.backend.obstore")

_KEY_TIME_SLACK = 1e-3
"""Seconds of rounding allowed for the times written in event-batch keys."""


# -- events ------------------------------------------------------------------------------------
async def append_events(store: Store, events: Sequence[TaskEvent]) -> None:
    """Write one batch object holding ``events``."""
    ats = [e.at for e in events]
    key = K.event_key(min(ats), max(ats), len(events), uuid.uuid4().hex)
    await store.write(key, R.encode(list(events)))


async def _read_batches(store: Store, keys: list[K.EventBatchKey]) -> list[TaskEvent]:
    datas = await store.gather(store.read(k.path) for k in keys)
    out: list[TaskEvent] = []
    for k, data in zip(keys, datas, strict=True):
        if data is None:
            continue  # purged meanwhile
        try:
            events, bad = R.decode_event_batch(k.path, data)
        except R.RecordError as exc:
            log.warning("%s (skipped)", exc)
            continue
        if bad:
            log.warning("%d event(s) in %s cannot be decoded (skipped)", bad, k.path)
        out.extend(events)
    return out


async def list_events(
    store: Store,
    *,
    keep: Callable[[TaskEvent], bool],
    since: float | None,
    limit: int,
) -> list[TaskEvent]:
    """Events passing ``keep``, oldest first (by time, then id), at most ``limit``.

    Batches whose newest event is older than ``since`` are skipped unread (their key says so);
    listing stops at the first hour directory that starts after the ``limit``-th event found.
    """
    buckets = sorted(b for b in await store.dirs("events/") if b.isdigit())
    found: dict[str, TaskEvent] = {}
    for i, bucket in enumerate(buckets):
        keys = [k for k in map(K.parse_event, await store.names(f"events/{bucket}/")) if k]
        if since is not None:
            keys = [k for k in keys if k.last >= since - _KEY_TIME_SLACK]
        for event in await _read_batches(store, keys):
            if keep(event):
                found.setdefault(event.id, event)
        if len(found) >= limit and i + 1 < len(buckets):
            kth = sorted(e.at for e in found.values())[limit - 1]
            if int(buckets[i + 1]) * K.EVENT_BUCKET > kth:
                break  # every later batch starts after the limit-th event
    return sorted(found.values(), key=lambda e: (e.at, e.id))[:limit]


async def _all_event_keys(store: Store) -> list[K.EventBatchKey]:
    keys: list[K.EventBatchKey] = []
    for bucket in await store.dirs("events/"):
        if bucket.isdigit():
            keys += [k for k in map(K.parse_event, await store.names(f"events/{bucket}/")) if k]
    return keys


async def _purge_event_count(store: Store, max_events: int) -> int:
    """Delete the oldest events beyond ``max_events``, counted from the batch keys (no read):
    whole batches oldest first (by newest event), then the oldest part of one batch (rewritten
    under a key derived from the old one, as in :func:`_purge_events`). Batches overlapping in
    time can leave a few more than ``max_events``, never fewer."""
    keys = sorted(await _all_event_keys(store), key=lambda k: (k.last, k.first, k.uid))
    excess = sum(k.size for k in keys) - max_events
    deleted = 0
    whole: list[str] = []
    for k in keys:
        if excess <= 0:
            break
        if k.size <= excess:
            whole.append(k.path)
            excess -= k.size
            deleted += k.size
            continue
        events = sorted(await _read_batches(store, [k]), key=lambda e: (e.at, e.id))
        keep = events[excess:]
        if keep:
            ats = [e.at for e in keep]
            await store.write(
                K.event_key(min(ats), max(ats), len(keep), k.uid + "c"), R.encode(keep)
            )
        whole.append(k.path)
        deleted += k.size - len(keep)
        excess = 0
    await store.delete(whole)
    return deleted


async def _purge_events(store: Store, before: float) -> int:
    """Delete events older than ``before``: whole batches, and the old part of a batch that
    straddles ``before`` (rewritten under a key derived from the old one, so concurrent purgers
    write the same object)."""
    deleted = 0
    for bucket in await store.dirs("events/"):
        if not bucket.isdigit() or int(bucket) * K.EVENT_BUCKET >= before:
            continue
        keys = [k for k in map(K.parse_event, await store.names(f"events/{bucket}/")) if k]
        old = [k for k in keys if k.last < before]
        for k in (k for k in keys if k.first < before <= k.last):
            events = await _read_batches(store, [k])
            keep = [e for e in events if e.at >= before]
            if keep:
                ats = [e.at for e in keep]
                rewritten = K.event_key(min(ats), max(ats), len(keep), k.uid + "p")
                await store.write(rewritten, R.encode(keep))
            deleted += k.size - len(keep)
            old.append(k)
        await store.delete([k.path for k in old])
        deleted += sum(k.size for k in old if k.last < before)
    return deleted


# -- listing every task ------------------------------------------------------------------------
def matches(q: TaskQuery, t: Task) -> bool:
    """Whether ``t`` passes the filters of ``q`` (``limit`` aside)."""
    return (
        (q.states is None or t.state in q.states)
        and (q.queues is None or t.queue in q.queues)
        and (q.worker_id is None or t.worker_id == q.worker_id)
        and (q.before_id is None or t.id < q.before_id)
    )


async def all_tasks(store: Store, query: TaskQuery) -> list[Task]:
    """Every task matching ``query`` (``limit`` aside), read from one listing of ``tasks/``."""
    dirs = await scan(store)
    loaded = await store.gather(load(store, tid, names) for tid, names in dirs.items())
    return [v.task for v in loaded if v is not None and matches(query, v.task)]


async def list_tasks(store: Store, query: TaskQuery) -> list[Task]:
    """Tasks matching ``query``, newest first, at most ``query.limit``; reads in id order.

    Without filters, one listing of the task directories, then one listing per task read (it
    stops at ``limit``). With a filter (which may match few tasks, e.g. the janitor's sweep over
    ``waiting`` ones), one recursive listing of ``tasks/`` up front instead, so that reading
    every task costs no listing per task.
    """
    filtered = query.states is not None or query.queues is not None or query.worker_id is not None
    listing = await scan(store) if filtered else None
    tids = list(listing) if listing is not None else await store.dirs("tasks/")

    def names(tid: str) -> set[str] | None:
        return None if listing is None else listing[tid]

    ids = {t: K.uncomponent(t) for t in tids}
    hashed = [t for t, i in ids.items() if i is None]  # ids too long to keep in a key
    for view in await store.gather(load(store, t, names(t)) for t in hashed):
        if view is not None:
            ids[view.tid] = view.task.id
    order = sorted(((i, t) for t, i in ids.items() if i is not None), reverse=True)
    if query.before_id is not None:
        order = [(i, t) for i, t in order if i < query.before_id]
    out: list[Task] = []
    page = max(query.limit, 64)
    for start in range(0, len(order), page):
        chunk = order[start : start + page]
        views = await store.gather(load(store, t, names(t)) for _, t in chunk)
        out.extend(v.task for v in views if v is not None and matches(query, v.task))
        if len(out) >= query.limit:
            break
    return out[: query.limit]


# -- purge -------------------------------------------------------------------------------------
async def purge(
    store: Store,
    *,
    finished_before: float,
    events_before: float,
    now: float,
    failed_before: float | None = None,
    max_events: int | None = None,
) -> tuple[int, int]:
    """Delete old terminal tasks, expired results, old event batches and the oldest events
    beyond ``max_events``; repair indexes."""
    # Index entries first, tasks second: an entry is written after its task's spec, so every
    # entry listed here whose task is missing from the later scan is a true orphan.
    due: dict[str, set[str]] = {}
    for path in await store.names("due/"):
        d = K.parse_due(path)
        if d is not None:
            due.setdefault(d.tid, set()).add(path)
    running: dict[str, set[str]] = {}
    for path in await store.names("running/"):
        r = K.parse_running(path)
        if r is not None:
            running.setdefault(r.tid, set()).add(path)
    edges: dict[str, list[str]] = {}  # tid -> the edges it is the parent or the child of
    for path in await store.names(K.DEPS_PREFIX):
        edge = K.parse_dep(path)
        if edge is not None:
            for tid in edge:
                edges.setdefault(tid, []).append(path)
    dirs = await scan(store)
    done = await store.gather(
        _purge_task(
            store,
            tid,
            names,
            due.get(tid, set()),
            running.get(tid, set()),
            (finished_before, finished_before if failed_before is None else failed_before),
            now,
        )
        for tid, names in dirs.items()
    )
    orphans = [p for tid, paths in due.items() if tid not in dirs for p in paths]
    orphans += [p for tid, paths in running.items() if tid not in dirs for p in paths]
    purged = [tid for tid, d in zip(dirs, done, strict=True) if d]
    orphans += dict.fromkeys(p for tid in purged for p in edges.get(tid, ()))
    await store.delete(orphans)
    events = await _purge_events(store, events_before)
    if max_events is not None:
        events += await _purge_event_count(store, max_events)
    return sum(done), events


async def _purge_task(
    store: Store,
    tid: str,
    names: set[str],
    due: set[str],
    running: set[str],
    cutoffs: tuple[float, float],
    now: float,
) -> int:
    view = await load(store, tid, names)
    keys = [f"{K.task_prefix(tid)}{n}" for n in names]
    if view is None:  # objects without a spec: left by a claim or cancel on a purged task
        await store.delete(keys)
        return 0
    finished = await _finished_at(store, view)
    before = cutoffs[1] if view.task.state == TaskState.FAILED else cutoffs[0]
    if finished is not None and finished < before:
        spec = view.spec
        if spec is not None and spec.idempotency_key is not None:
            key = K.idempotency_key(spec.idempotency_key)
            holder = await store.read(key)
            try:
                if holder is not None and R.decode_task(key, holder).id == spec.id:
                    keys.append(key)
            except R.RecordError:
                keys.append(key)
        await store.delete([*keys, *due, *running])
        store.cache.forget(K.task_prefix(tid))
        return 1
    await _drop_results(store, view, now)
    await _reconcile(store, view, due, running, now)
    return 0


async def _finished_at(store: Store, view: View) -> float | None:
    """When a terminal task finished; ``None`` while it is not terminal."""
    if view.problem is None:
        return view.task.finished_at if view.task.state.is_terminal else None
    ends = [n for k, n in map(K.marker_name, view.names) if k == "end" and n is not None]
    if not ends:
        return None  # undecodable and never failed by a claimer: left for an operator
    try:
        end = await store.read_immutable(K.task_key(view.tid, "end", max(ends)), R.decode_marker)
    except R.RecordError:
        return None
    return end.finished_at if end is not None and end.state.is_terminal else None


async def _drop_results(store: Store, view: View, now: float) -> None:
    """Delete expired results and results of attempts that did not succeed."""
    keep: str | None = None
    end = view.end
    if (
        end is not None
        and view.slot is not None
        and end.has_result
        and (end.result_expires_at is None or end.result_expires_at > now)
    ):
        keep = f"result-{view.slot:08d}"
    running_result = f"result-{view.slot:08d}" if view.task.state == TaskState.RUNNING else None
    drop = [
        f"{K.task_prefix(view.tid)}{n}"
        for n in view.names
        if n.startswith("result-") and n not in (keep, running_result)
    ]
    await store.delete(drop)


async def _reconcile(
    store: Store, view: View, due: set[str], running: set[str], now: float
) -> None:
    """Rewrite the index entry a crashed writer may have left out (idempotent)."""
    if view.problem is not None:
        return
    t = view.task
    if view.waiting and "cancel" in view.names:  # a canceller died before `settled`
        mark = await cancel_mark(store, view.tid)
        error = mark.error if mark is not None else None
        await settle(store, view, TaskState.CANCELLED, finished_at=now, error=error)
    elif t.state in (TaskState.PENDING, TaskState.SCHEDULED):
        n = view.next_attempt
        if "cancel" in view.names:
            tomb = R.end_marker(
                R.TOMBSTONE, t, state=TaskState.CANCELLED, finished_at=now, cancel_requested=True
            )
            await store.create(K.task_key(view.tid, "claim", n), R.encode(tomb))
            return
        if K.due_key(t.queue, t.priority, t.run_at, view.tid, n, t.executor) not in due:
            log.info("task %s: restoring its due-index entry for attempt %d", t.id, n)
            await write_due(store, t, view.tid, n)
    elif t.state == TaskState.RUNNING and view.claim is not None and view.slot is not None:
        first = view.claim.lease_expires_at
        if first is not None and K.running_key(view.tid, view.slot, first) not in running:
            log.info("task %s: restoring its running-index entry", t.id)
            await store.write(K.running_key(view.tid, view.slot, first), b"")

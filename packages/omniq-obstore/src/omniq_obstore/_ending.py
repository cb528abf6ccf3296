"""Ending attempts (finish, release, lease expiry), heartbeats and cancellation.

Every end of attempt ``n`` is the create-if-absent of ``tasks/{T}/end-n``: whichever of
``finish``, ``release`` and ``requeue_expired`` creates it first owns the outcome, the others
find it taken (stale). An end that leaves the task queued then either makes attempt ``n + 1``
claimable (due-index entry) or, when a cancel was requested, takes slot ``n + 1`` with a cancel
tombstone — the same create-if-absent a claimer races on, so a cancel and a claim never both win.
A waiting task is cancelled by the create of its ``settled`` marker instead, which
``settle_waiting`` races on (:mod:`omniq_obstore._dependencies`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from omniq.backend import Outcome
from omniq.models import ErrorInfo, StoredResult, Task, TaskState
from omniq_obstore import _keys as K
from omniq_obstore import _records as R
from omniq_obstore._claiming import Held, write_due
from omniq_obstore._dependencies import settle
from omniq_obstore._store import Store
from omniq_obstore._view import load

__all__ = ["cancel", "cancel_mark", "extend", "finish", "release", "requeue", "requeue_expired"]

log = logging.getLogger("omniq.backend.obstore")


async def cancel_mark(store: Store, tid: str) -> R.CancelMark | None:
    """The ``cancel`` marker of ``tid`` (escaped id); ``None`` when no cancel was requested."""
    data = await store.read(K.task_key(tid, "cancel"))
    if data is None:
        return None
    try:
        return R.decode_cancel(K.task_key(tid, "cancel"), data)
    except R.RecordError:
        return R.CancelMark(
            at=0.0, error=ErrorInfo(type="omniq.errors.TaskCancelledError", message="cancelled")
        )


async def _requeued(store: Store, tid: str, task: Task, attempt: int, now: float) -> Task:
    """After ``end-attempt`` left ``task`` queued: tombstone the next slot if a cancel was
    requested meanwhile, else make the next attempt claimable. Returns the task as it now is."""
    mark = await cancel_mark(store, tid)
    if mark is None:
        await write_due(store, task, tid, attempt + 1)
        return task
    tomb = R.end_marker(
        R.TOMBSTONE,
        task,
        state=TaskState.CANCELLED,
        finished_at=now,
        error=mark.error,
        cancel_requested=True,
    )
    if await store.create(K.task_key(tid, "claim", attempt + 1), R.encode(tomb)):
        return R.snapshot(task, tomb, attempt)
    view = await load(store, tid)
    return view.task if view is not None else task


async def _close(store: Store, held: Held, tid: str, task: Task, attempt: int) -> None:
    """Forget a held attempt and delete its running-index entry."""
    held.drop(tid, attempt)
    if task.lease_expires_at is not None:
        await store.delete([K.running_key(tid, attempt, task.lease_expires_at)])


# -- finish ------------------------------------------------------------------------------------
async def finish(store: Store, held: Held, outcomes: Sequence[Outcome], now: float) -> list[str]:
    """Apply outcomes; return the ids of the stale ones (not applied)."""
    stale = await store.gather(_finish_one(store, held, o, now) for o in outcomes)
    return [o.task_id for o, s in zip(outcomes, stale, strict=True) if s]


async def _finish_one(store: Store, held: Held, o: Outcome, now: float) -> bool:
    tid = K.component(o.task_id)
    n = o.attempt
    task = await held.claimed(store, tid, n) if n >= 1 else None
    if task is None:
        return True
    end_key = K.task_key(tid, "end", n)
    result_key: str | None = None
    retry = o.state == TaskState.SCHEDULED
    cancelled = retry and await store.exists(K.task_key(tid, "cancel"))
    if retry:
        marker = R.end_marker(
            R.FINISHED,
            task,
            state=TaskState.CANCELLED if cancelled else TaskState.SCHEDULED,
            run_at=o.retry_at,
            error=o.error,
            finished_at=o.finished_at if cancelled else task.finished_at,
            cancel_requested=cancelled,
        )
    else:
        has_result = o.state == TaskState.SUCCESS and o.result is not None
        if has_result:
            assert o.result is not None
            result_key = K.task_key(tid, "result", n)
            stored = StoredResult(
                task_id=o.task_id, data=o.result, stored_at=now, expires_at=o.result_expires_at
            )
            await store.write(result_key, R.encode(stored))  # before the end: atomic with it
        marker = R.end_marker(
            R.FINISHED,
            task,
            state=o.state,
            finished_at=o.finished_at,
            error=o.error,
            has_result=has_result,
            result_expires_at=o.result_expires_at if has_result else None,
        )
    data = R.encode(marker)
    # Taken: stale, unless it is our own earlier try that landed (a retried request).
    if not await store.create(end_key, data) and await store.read(end_key) != data:
        if result_key is not None:
            await store.delete([result_key])
        return True
    store.remember(end_key, marker, len(data))
    if retry and not cancelled:
        await _requeued(store, tid, R.snapshot(task, marker, n), n, now)
    await _close(store, held, tid, task, n)
    return False


# -- release -----------------------------------------------------------------------------------
async def release(
    store: Store, held: Held, leases: Sequence[tuple[str, int]], now: float
) -> list[str]:
    """Give attempts back unfinished; return the ids released (or so cancelled)."""
    done = await store.gather(_release_one(store, held, i, n, now) for i, n in leases)
    return [i for (i, _), ok in zip(leases, done, strict=True) if ok]


async def _release_one(store: Store, held: Held, task_id: str, n: int, now: float) -> bool:
    tid = K.component(task_id)
    task = await held.claimed(store, tid, n) if n >= 1 else None
    if task is None:
        return False
    mark = await cancel_mark(store, tid)
    changes: dict[str, object] = {
        "released": task.released + 1,
        "run_at": min(task.run_at, now),
        "state": TaskState.PENDING,
    }
    if mark is not None:
        changes.update(
            state=TaskState.CANCELLED, finished_at=now, error=mark.error, cancel_requested=True
        )
    marker = R.end_marker(R.RELEASED, task, **changes)
    if not await store.create(K.task_key(tid, "end", n), R.encode(marker)):
        return False
    if mark is None:
        await _requeued(store, tid, R.snapshot(task, marker, n), n, now)
    await _close(store, held, tid, task, n)
    return True


# -- heartbeat ---------------------------------------------------------------------------------
async def extend(
    store: Store, held: Held, leases: Sequence[tuple[str, int]], expires_at: float
) -> tuple[list[str], list[str]]:
    """Push leases to ``expires_at``; return ``(cancel_requested_ids, stale_ids)``."""
    states = await store.gather(_extend_one(store, held, i, n, expires_at) for i, n in leases)
    cancel = [i for (i, _), s in zip(leases, states, strict=True) if s == "cancel"]
    stale = [i for (i, _), s in zip(leases, states, strict=True) if s == "stale"]
    return cancel, stale


async def _extend_one(store: Store, held: Held, task_id: str, n: int, expires_at: float) -> str:
    tid = K.component(task_id)
    if n < 1 or await held.claimed(store, tid, n) is None:
        return "stale"
    ended, cancelled, _ = await asyncio.gather(
        store.exists(K.task_key(tid, "end", n)),
        store.exists(K.task_key(tid, "cancel")),
        store.write(K.task_key(tid, "lease", n), R.encode(R.LeaseMark(expires_at))),
    )  # a lease written after the end is ignored: the end decides
    if ended:
        held.drop(tid, n)
        return "stale"
    return "cancel" if cancelled else "ok"


# -- lease expiry ------------------------------------------------------------------------------
def _when(ts: float | None) -> str:
    if ts is None:
        return "an unknown time"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


async def requeue_expired(store: Store, held: Held, now: float, limit: int) -> list[Task]:
    """End every attempt whose lease expired (``expired`` end); return the tasks as they now are."""
    entries = [K.parse_running(k) for k in await store.names("running/")]
    due = sorted(
        (e for e in entries if e is not None and e.first_expiry < now), key=lambda e: e.first_expiry
    )
    out: list[Task] = []
    for start in range(0, len(due), 64):
        if len(out) >= limit:
            break
        got = await store.gather(_expire_one(store, held, e, now) for e in due[start : start + 64])
        out.extend(t for t in got if t is not None)
    return out[:limit] if len(out) > limit else out


async def _expire_one(store: Store, held: Held, e: K.RunningKey, now: float) -> Task | None:
    task = await held.claimed(store, e.tid, e.attempt)
    if task is None:
        await store.delete([e.path])  # an entry left over by a crash, or a purged task
        return None
    lease_data, mark = await asyncio.gather(
        store.read(K.task_key(e.tid, "lease", e.attempt)), cancel_mark(store, e.tid)
    )
    expires = task.lease_expires_at
    if lease_data is not None:
        try:
            expires = R.decode_lease(K.task_key(e.tid, "lease", e.attempt), lease_data).expires_at
        except R.RecordError:
            pass
    if expires is not None and expires >= now:
        return None
    message = f"worker {task.worker_id} stopped heartbeating; lease expired at {_when(expires)}"
    state = TaskState.PENDING
    used = e.attempt - task.released
    if mark is not None:
        state, message = TaskState.CANCELLED, message + "; its cancellation had been requested"
    elif used > task.max_retries:
        state = TaskState.FAILED
        message += f"; no retries left after {used} run(s)"
    marker = R.end_marker(
        R.EXPIRED,
        task,
        state=state,
        finished_at=None if state == TaskState.PENDING else now,
        run_at=min(task.run_at, now),
        error=ErrorInfo(type=R.WORKER_LOST_ERROR, message=message),
        cancel_requested=mark is not None,
    )
    if not await store.create(K.task_key(e.tid, "end", e.attempt), R.encode(marker)):
        await store.delete([e.path])  # ended meanwhile (finished, released or recovered)
        return None
    log.warning("task %s: %s", task.id, message)
    after = R.snapshot(task, marker, e.attempt)
    if state == TaskState.PENDING:
        after = await _requeued(store, e.tid, after, e.attempt, now)
    held.drop(e.tid, e.attempt)
    await store.delete([e.path])
    return after


# -- cancel ------------------------------------------------------------------------------------
async def cancel(
    store: Store, task_ids: Sequence[str], error: ErrorInfo, now: float
) -> list[Task | None]:
    """Cancel each task; returns each as it now is (``None`` for unknown ids), in input order."""
    return await store.gather(_cancel_one(store, i, error, now) for i in task_ids)


async def _cancel_one(store: Store, task_id: str, error: ErrorInfo, now: float) -> Task | None:
    tid = K.component(task_id)
    view = await load(store, tid)
    if view is None or view.problem is not None or view.task.state.is_terminal:
        return None if view is None else view.task
    await store.create(K.task_key(tid, "cancel"), R.encode(R.CancelMark(at=now, error=error)))
    for _ in range(8):
        view = await load(store, tid)  # read again: the marker is now visible to enders
        if view is None or not view.queued:
            return None if view is None else view.task
        if view.waiting:  # races settle_waiting on the one create of `settled`
            done = await settle(store, view, TaskState.CANCELLED, finished_at=now, error=error)
            if done is not None:
                return done
            continue  # settled meanwhile: cancelled already, or released (then tombstoned)
        n = view.next_attempt
        tomb = R.end_marker(
            R.TOMBSTONE, view.task, state=TaskState.CANCELLED, finished_at=now, error=error
        )
        if await store.create(K.task_key(tid, "claim", n), R.encode(tomb)):
            t = view.task
            due = K.due_key(t.queue, t.priority, t.run_at, tid, n, t.executor)
            await store.delete([due])
            return R.snapshot(t, tomb, n - 1)
        # Slot n was just taken by a claimer (now running, cancel requested) or another cancel.
    return view.task


# -- requeue (dead-letter queue) ---------------------------------------------------------------
async def requeue(store: Store, task_ids: Sequence[str], now: float) -> list[Task | None]:
    """Put failed tasks back; each requeued task as it now is, ``None`` for the others."""
    return await store.gather(_requeue_one(store, i, now) for i in task_ids)


async def _requeue_one(store: Store, task_id: str, now: float) -> Task | None:
    """A failed task whose last attempt ``n`` ended gets ``requeue-n`` (create-if-absent, so
    one requeue wins): a snapshot ``pending`` at ``now``, error cleared, ``released = n`` (a
    fresh retry budget); then attempt ``n + 1`` is made claimable. A crash before the due
    entry is written is repaired by ``purge`` like any missing index entry."""
    tid = K.component(task_id)
    view = await load(store, tid)
    if (
        view is None
        or view.problem is not None
        or view.spec is None
        or view.slot is None
        or view.end is None
        or view.task.state != TaskState.FAILED
        or f"requeue-{view.slot:08d}" in view.names
    ):
        return None
    n = view.slot
    if "cancel" in view.names:  # a cancel asked for during the failed run must not carry over
        await store.delete([K.task_key(tid, "cancel")])
    marker = R.end_marker(
        R.REQUEUED,
        view.task,
        state=TaskState.PENDING,
        run_at=now,
        finished_at=None,
        error=None,
        released=n,
        cancel_requested=False,
    )
    data = R.encode(marker)
    key = K.task_key(tid, "requeue", n)
    if not await store.create(key, data):
        return None  # another requeue won
    store.remember(key, marker, len(data))
    return await _requeued(store, tid, R.snapshot(view.spec, marker, n), n, now)

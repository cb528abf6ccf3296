"""The backend's operations as plain synchronous functions of a ``sqlite3.Connection``.

:class:`~omniq_sqlite.backend.SQLiteBackend` runs each of them as one call on the connection's
aiosqlite thread, so a write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) is never interleaved
with another coroutine's statements and never held open across an ``await``.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from omniq.backend import (
    ClaimGroup,
    Outcome,
    TaskQuery,
    decode_schedule_record,
    decode_worker_record,
    encode_schedule_record,
    encode_worker_record,
    settle_decision,
)
from omniq.models import (
    ErrorInfo,
    Schedule,
    StoredResult,
    Task,
    TaskEvent,
    TaskState,
    WorkerInfo,
)
from omniq_sqlite._queries import MAX_UNION_QUEUES
from omniq_sqlite._queries import QUERIES as Q
from omniq_sqlite._rows import (
    DESERIALIZATION_ERROR,
    RowDecodeError,
    decode_event,
    decode_result,
    decode_task,
    encode_event,
    encode_task,
    error_columns,
    json_list,
    salvage_task,
)

log = logging.getLogger("omniq.backend.sqlite")

WORKER_LOST_ERROR = "omniq.errors.WorkerLostError"
PURGE_BATCH = 5000


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (take the write lock now, waiting up to busy_timeout) … ``COMMIT``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _decode_all(rows: Sequence[Sequence[object]]) -> list[Task]:
    """Decode rows for reading; an undecodable row is returned salvaged, never raised."""
    tasks = []
    for row in rows:
        try:
            tasks.append(decode_task(row))
        except RowDecodeError as exc:
            log.warning("%s (shown as failed)", exc)
            tasks.append(salvage_task(row, exc))
    return tasks


# -- tasks ------------------------------------------------------------------------------------
def enqueue(conn: sqlite3.Connection, tasks: Sequence[Task]) -> list[Task]:
    with write_transaction(conn):
        return _enqueue_rows(conn, tasks)


def _enqueue_rows(conn: sqlite3.Connection, tasks: Sequence[Task]) -> list[Task]:
    """Insert tasks (idempotent by id and key) inside the caller's write transaction."""
    rows = [encode_task(t) for t in tasks]
    if len(rows) > 1:
        # Fast path: one executemany; if every row went in, the inputs are what is stored.
        conn.execute("SAVEPOINT omniq_enqueue")
        if conn.executemany(Q.insert_task, rows).rowcount == len(rows):
            _insert_edges(conn, tasks)
            conn.execute("RELEASE omniq_enqueue")
            return list(tasks)
        conn.execute("ROLLBACK TO omniq_enqueue")
        conn.execute("RELEASE omniq_enqueue")
    # Some inputs already exist: insert one by one to learn which, then read the others.
    inserted = [conn.execute(Q.insert_task, row).rowcount == 1 for row in rows]
    _insert_edges(conn, [t for t, new in zip(tasks, inserted, strict=True) if new])
    out: list[Task] = []
    for task, was_inserted in zip(tasks, inserted, strict=True):
        if was_inserted:
            out.append(task)
            continue
        row = conn.execute(Q.get_task_by_id, (task.id,)).fetchone()
        if row is None and task.idempotency_key is not None:
            row = conn.execute(Q.get_task_by_key, (task.idempotency_key,)).fetchone()
        if row is None:  # pragma: no cover - a constraint we do not know about
            raise sqlite3.IntegrityError(f"task {task.id!r} was neither inserted nor found")
        out.extend(_decode_all([row]))
    return out


def _insert_edges(conn: sqlite3.Connection, tasks: Sequence[Task]) -> None:
    """The dependency edges of newly inserted tasks (same transaction as the rows)."""
    edges = [(parent, t.id) for t in tasks for parent in t.depends_on]
    if edges:
        conn.executemany(Q.insert_dependency, edges)


def dependents(conn: sqlite3.Connection, task_ids: Sequence[str]) -> list[str]:
    return [row[0] for row in conn.execute(Q.dependents, {"ids": json_list(task_ids)})]


def _may_settle(conn: sqlite3.Connection, task_id: str, parents: int | None = None) -> bool:
    """Whether a waiting task's parents decide it now (all succeeded, or one failed, was
    cancelled or is missing), from one index pass over its edges with nothing decoded: a
    fan-in child is looked at after every batch of its parents. ``parents``: how many it
    names; edges that do not match say nothing, and the parents must be read."""
    count, succeeded, ended, missing = conn.execute(Q.parent_tally, (task_id,)).fetchone()
    if parents is not None and count != parents:
        return True
    return bool(ended or missing or succeeded == count)


def settle_candidates(conn: sqlite3.Connection, task_ids: Sequence[str]) -> list[str]:
    """The ids among ``task_ids`` that a settle would change now (a lock-free read;
    :func:`settle_waiting` checks again under the write lock), so the looks at fan-in
    children that change nothing stay off the write lock."""
    return [task_id for task_id in dict.fromkeys(task_ids) if _may_settle(conn, task_id)]


def settle_waiting(conn: sqlite3.Connection, task_ids: Sequence[str], *, now: float) -> list[Task]:
    """Release or cancel waiting tasks per :func:`omniq.backend.settle_decision`, all in one
    write transaction (so each read of parents and its update are one atomic step)."""
    changed: list[Task] = []
    with write_transaction(conn):
        for task_id in dict.fromkeys(task_ids):
            [child] = get_tasks(conn, [task_id])
            if child is None or child.state is not TaskState.WAITING:
                continue
            if not _may_settle(conn, task_id, len(child.depends_on)):
                continue  # some parent is still unfinished, none failed
            decided = settle_decision(child, get_tasks(conn, child.depends_on), now=now)
            if decided is None:
                continue
            etype, emessage, etraceback = error_columns(decided.error)
            row = conn.execute(
                Q.settle_task,
                {
                    "task_id": task_id,
                    "state": str(decided.state),
                    "finished_at": decided.finished_at,
                    "error_type": etype,
                    "error_message": emessage,
                    "error_traceback": etraceback,
                },
            ).fetchone()
            if row is not None:
                changed.extend(_decode_all([row]))
    return changed


def claim_params(
    *,
    now: float,
    queues: Sequence[str],
    worker_id: str,
    groups: Sequence[ClaimGroup],
    limit: int,
    lease: float,
) -> dict[str, object]:
    """Named parameters of the claim queries; ``groups`` come from :func:`omniq.backend.claim_groups`.

    The probe uses the union of the groups' filters; the claim takes each group in turn.
    """
    names = [n for g in groups for n in (g.executors or ())]
    any_executor = any(g.executors is None for g in groups)
    params: dict[str, object] = {
        "queue": queues[0],
        "queues": json_list(queues),
        "executors": None if any_executor else json_list(names),
        "unrouted": any(g.unrouted for g in groups),
        "groups": list(groups),
        "now": now,
        "worker_id": worker_id,
        "lease_expires_at": now + lease,
        "limit": min(limit, sum(g.limit for g in groups)),
        "n_queues": len(queues),
    }
    if 1 < len(queues) <= MAX_UNION_QUEUES:
        params.update({f"queue_{i}": q for i, q in enumerate(queues)})
    return params


def claim(conn: sqlite3.Connection, params: dict[str, object]) -> list[Task]:
    """Probe without the write lock, then claim in one short write transaction."""
    n_queues = int(params["n_queues"])  # type: ignore[call-overload]
    probe_sql = Q.claim_probe_one if n_queues == 1 else Q.claim_probe_many
    # Idle pollers only read: the write lock is taken only when something is due.
    if conn.execute(probe_sql, params).fetchone() is None:
        return []
    with write_transaction(conn):
        return _claim_rows(conn, params)


def _claim_rows(conn: sqlite3.Connection, params: dict[str, object]) -> list[Task]:
    """The claim ``UPDATE … RETURNING``, once per executor group (inside the caller's write
    transaction), until the claim's limit is reached."""
    tasks: list[Task] = []
    total = int(params["limit"])  # type: ignore[call-overload]
    sql = Q.claim(int(params["n_queues"]))  # type: ignore[call-overload]
    groups: list[ClaimGroup] = params["groups"]  # type: ignore[assignment]
    for group in groups:
        room = min(group.limit, total - len(tasks))
        if room <= 0:
            break
        group_params = {
            **params,
            "executors": None if group.executors is None else json_list(group.executors),
            "unrouted": group.unrouted,
            "limit": room,
        }
        for row in conn.execute(sql, group_params).fetchall():
            _decode_claimed(conn, row, params, tasks)
    # RETURNING order is undefined: restore claim order.
    tasks.sort(key=lambda t: (-t.priority, t.run_at, t.id))
    return tasks


def _decode_claimed(
    conn: sqlite3.Connection, row: Any, params: dict[str, object], into: list[Task]
) -> None:
    """Append the claimed row as a task; a row that cannot be decoded is failed instead."""
    try:
        into.append(decode_task(row))
    except RowDecodeError as exc:
        log.error("%s; failing it without running it", exc)
        conn.execute(
            Q.fail_undecodable,
            {
                "task_id": row[0],
                "now": params["now"],
                "error_type": DESERIALIZATION_ERROR,
                "error_message": f"{exc}; the task was failed without running",
            },
        )


def finish_and_claim(
    conn: sqlite3.Connection,
    outcomes: Sequence[Outcome],
    claim_with: dict[str, object] | None,
    *,
    now: float,
) -> tuple[list[str], list[Task]]:
    """Apply outcomes and claim in one write transaction; return ``(stale_ids, claimed)``."""
    with write_transaction(conn):
        stale = _apply_outcomes(conn, outcomes, now=now)
        tasks = _claim_rows(conn, claim_with) if claim_with is not None else []
    return stale, tasks


def extend_leases(
    conn: sqlite3.Connection, leases: Sequence[tuple[str, int]], *, expires_at: float
) -> tuple[list[str], list[str]]:
    """Return ``(cancel_requested_ids, stale_ids)``."""
    cancel: list[str] = []
    stale: list[str] = []
    with write_transaction(conn):
        for task_id, attempt in leases:
            row = conn.execute(
                Q.extend_lease,
                {"task_id": task_id, "attempt": attempt, "lease_expires_at": expires_at},
            ).fetchone()
            if row is None:
                stale.append(task_id)
            elif row[0]:
                cancel.append(task_id)
    return cancel, stale


def finish(conn: sqlite3.Connection, outcomes: Sequence[Outcome], *, now: float) -> list[str]:
    """Apply outcomes in one transaction; return the ids of the stale ones (not applied)."""
    with write_transaction(conn):
        return _apply_outcomes(conn, outcomes, now=now)


def _apply_outcomes(
    conn: sqlite3.Connection, outcomes: Sequence[Outcome], *, now: float
) -> list[str]:
    """Fenced outcome updates plus result rows (inside the caller's write transaction)."""
    stale: list[str] = []
    results = []
    for o in outcomes:
        etype, emessage, etraceback = error_columns(o.error)
        params = {
            "task_id": o.task_id,
            "attempt": o.attempt,
            "state": str(o.state),
            "finished_at": o.finished_at,
            "retry_at": o.retry_at,
            "error_type": etype,
            "error_message": emessage,
            "error_traceback": etraceback,
        }
        sql = Q.finish_retry if o.state == TaskState.SCHEDULED else Q.finish_terminal
        if conn.execute(sql, params).rowcount != 1:
            stale.append(o.task_id)
        elif o.state == TaskState.SUCCESS and o.result is not None:
            results.append((o.task_id, o.result, now, o.result_expires_at))
    if results:
        conn.executemany(Q.put_result, results)
    return stale


def release(
    conn: sqlite3.Connection, leases: Sequence[tuple[str, int]], *, now: float
) -> list[str]:
    released: list[str] = []
    with write_transaction(conn):
        for task_id, attempt in leases:
            params = {"task_id": task_id, "attempt": attempt, "now": now}
            if conn.execute(Q.release_task, params).rowcount == 1:
                released.append(task_id)
    return released


def _when(ts: float | None) -> str:
    if ts is None:
        return "an unknown time"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def requeue_expired(conn: sqlite3.Connection, *, now: float, limit: int) -> list[Task]:
    # Lock-free probe first, as in claim: most calls find nothing.
    if not conn.execute(Q.select_expired, {"now": now, "limit": 1}).fetchall():
        return []
    rows = []
    with write_transaction(conn):
        for task_id, attempt, released, max_retries, worker_id, expired_at, cancel in conn.execute(
            Q.select_expired, {"now": now, "limit": limit}
        ).fetchall():
            message = (
                f"worker {worker_id} stopped heartbeating; lease expired at {_when(expired_at)}"
            )
            state = "pending"
            if cancel:
                state, message = "cancelled", message + "; its cancellation had been requested"
            elif attempt - released > max_retries:
                state = "failed"
                message += f"; no retries left after {attempt - released} run(s)"
            row = conn.execute(
                Q.requeue_task,
                {
                    "task_id": task_id,
                    "attempt": attempt,
                    "now": now,
                    "state": state,
                    "finished_at": None if state == "pending" else now,
                    "error_type": WORKER_LOST_ERROR,
                    "error_message": message,
                },
            ).fetchone()
            if row is not None:
                rows.append(row)
                log.warning("task %s: %s", task_id, message)
    return _decode_all(rows)


def cancel(
    conn: sqlite3.Connection, task_ids: Sequence[str], *, error: ErrorInfo, now: float
) -> list[Task]:
    ids = json_list(task_ids)
    with write_transaction(conn):
        conn.execute(
            Q.cancel_queued,
            {
                "ids": ids,
                "now": now,
                "error_type": error.type,
                "error_message": error.message,
                "error_traceback": error.traceback,
            },
        )
        conn.execute(Q.cancel_running, {"ids": ids})
        rows = conn.execute(Q.get_tasks, {"ids": ids}).fetchall()
    by_id = {t.id: t for t in _decode_all(rows)}
    return [by_id[i] for i in task_ids if i in by_id]


def requeue(conn: sqlite3.Connection, task_ids: Sequence[str], *, now: float) -> list[Task]:
    with write_transaction(conn):
        rows = conn.execute(Q.requeue_failed, {"ids": json_list(task_ids), "now": now}).fetchall()
    by_id = {t.id: t for t in _decode_all(rows)}
    return [by_id[i] for i in dict.fromkeys(task_ids) if i in by_id]


# -- reads ------------------------------------------------------------------------------------
def get_tasks(conn: sqlite3.Connection, task_ids: Sequence[str]) -> list[Task | None]:
    rows = conn.execute(Q.get_tasks, {"ids": json_list(task_ids)}).fetchall()
    by_id = {t.id: t for t in _decode_all(rows)}
    return [by_id.get(i) for i in task_ids]


def _where(query: TaskQuery) -> tuple[str, dict[str, object]]:
    parts: list[str] = []
    params: dict[str, object] = {"limit": query.limit}
    if query.states is not None:
        parts.append(Q.filter_states)
        params["states"] = json_list([str(s) for s in query.states])
    if query.queues is not None:
        parts.append(Q.filter_queues)
        params["queues"] = json_list(query.queues)
    if query.worker_id is not None:
        parts.append(Q.filter_worker)
        params["worker_id"] = query.worker_id
    if query.before_id is not None:
        parts.append(Q.filter_before)
        params["before_id"] = query.before_id
    return (" AND ".join(parts) or "1"), params


def list_tasks(conn: sqlite3.Connection, query: TaskQuery) -> list[Task]:
    where, params = _where(query)
    rows = conn.execute(Q.list_tasks.replace("{where}", where), params).fetchall()
    return _decode_all(rows)


def count_tasks(conn: sqlite3.Connection, query: TaskQuery) -> dict[TaskState, int]:
    where, params = _where(query)
    counts: dict[TaskState, int] = {}
    for state, n in conn.execute(Q.count_tasks.replace("{where}", where), params):
        try:
            counts[TaskState(state)] = n
        except ValueError:
            log.warning("%d task(s) have unknown state %r (not counted)", n, state)
    return counts


def count_by_worker(conn: sqlite3.Connection, query: TaskQuery) -> dict[str, int]:
    where, params = _where(query)
    return dict(conn.execute(Q.count_by_worker.replace("{where}", where), params).fetchall())


def get_results(
    conn: sqlite3.Connection, task_ids: Sequence[str], *, now: float
) -> list[StoredResult | None]:
    rows = conn.execute(Q.get_results, {"ids": json_list(task_ids), "now": now}).fetchall()
    by_id = {r[0]: decode_result(r) for r in rows}
    return [by_id.get(i) for i in task_ids]


# -- events -----------------------------------------------------------------------------------
def append_events(conn: sqlite3.Connection, events: Sequence[TaskEvent]) -> None:
    rows = [encode_event(e) for e in events]
    with write_transaction(conn):
        conn.executemany(Q.insert_event, rows)


def list_events(
    conn: sqlite3.Connection,
    *,
    task_id: str | None,
    types: list[str] | None,
    since: float | None,
    after_id: str | None,
    limit: int,
) -> list[TaskEvent]:
    params = {
        "since": -math.inf if since is None else since,
        "after_id": after_id or "",
        "types": None if types is None else json_list(types),
        "limit": limit,
    }
    if task_id is None:
        rows = conn.execute(Q.list_events, params).fetchall()
    else:
        rows = conn.execute(Q.list_task_events, {**params, "task_id": task_id}).fetchall()
    events = []
    for row in rows:
        event = decode_event(row)
        if event is None:
            log.warning("event %s has unknown type %r (skipped)", row[0], row[2])
        else:
            events.append(event)
    return events


# -- workers ----------------------------------------------------------------------------------
def encode_worker(info: WorkerInfo) -> dict[str, object]:
    """The row of a worker record (encoded here, off the writer's thread).

    Raises:
        ValueError: when ``info`` holds a value of the wrong type.
    """
    record = encode_worker_record(info)
    return {"id": info.id, "expires_at": float(info.expires_at), "record": record}


def put_worker(conn: sqlite3.Connection, row: dict[str, object]) -> None:
    with write_transaction(conn):
        conn.execute(Q.put_worker, row)


def list_workers(conn: sqlite3.Connection, *, now: float) -> list[WorkerInfo]:
    workers = []
    for worker_id, record in conn.execute(Q.list_workers, {"now": now}).fetchall():
        try:
            workers.append(decode_worker_record(record))
        except ValueError as exc:
            log.warning("worker record %r cannot be decoded (skipped): %s", worker_id, exc)
    return workers


def remove_worker(conn: sqlite3.Connection, worker_id: str) -> None:
    with write_transaction(conn):
        conn.execute(Q.delete_worker, {"id": worker_id})


def purge_workers(conn: sqlite3.Connection, *, now: float) -> int:
    """Delete the records of workers whose ``expires_at <= now``; return how many."""
    with write_transaction(conn):
        return int(conn.execute(Q.purge_workers, {"now": now}).rowcount)


# -- housekeeping -----------------------------------------------------------------------------
def purge_step(
    conn: sqlite3.Connection,
    *,
    finished_before: float,
    events_before: float,
    now: float,
    failed_before: float | None = None,
) -> tuple[int, int, bool]:
    """Delete one bounded batch of each kind; return ``(tasks, events, more_left)``."""
    batch = {"batch": PURGE_BATCH}
    cutoffs = {
        "before": finished_before,
        "failed_before": finished_before if failed_before is None else failed_before,
    }
    with write_transaction(conn):
        ids = conn.execute(Q.purge_tasks, {**batch, **cutoffs}).fetchall()
        conn.executemany(Q.delete_result, ids)
        conn.executemany(Q.delete_dependencies_of, ids)
        results = conn.execute(Q.purge_expired_results, {**batch, "now": now}).rowcount
        events = conn.execute(Q.purge_events, {**batch, "before": events_before}).rowcount
    more = max(len(ids), results, events) >= PURGE_BATCH
    return len(ids), events, more


def event_count_cutoff(conn: sqlite3.Connection, *, max_events: int) -> tuple[float, str] | None:
    """The oldest event kept under a count limit, as ``(at, id)``; ``None``: within it."""
    row = conn.execute(Q.event_count_cutoff, {"offset": max_events - 1}).fetchone()
    return None if row is None else (float(row[0]), str(row[1]))


def purge_events_before(conn: sqlite3.Connection, *, at: float, event_id: str) -> tuple[int, bool]:
    """Delete one batch of the events before ``(at, event_id)``; return ``(deleted, more)``."""
    with write_transaction(conn):
        params = {"at": at, "id": event_id, "batch": PURGE_BATCH}
        deleted = int(conn.execute(Q.purge_events_before_key, params).rowcount)
    return deleted, deleted >= PURGE_BATCH


# -- schedules --------------------------------------------------------------------------------
def encode_schedule(schedule: Schedule) -> dict[str, object]:
    """The row of a schedule (encoded here, off the writer's thread).

    Raises:
        ValueError: when ``schedule`` holds a value of the wrong type.
    """
    return {
        "id": schedule.id,
        "next_run_at": schedule.next_run_at,
        "paused": int(schedule.paused),
        "record": encode_schedule_record(schedule),
    }


def put_schedule(conn: sqlite3.Connection, row: dict[str, object]) -> None:
    with write_transaction(conn):
        conn.execute(Q.put_schedule, row)


def _decode_schedules(rows: Sequence[Sequence[Any]]) -> dict[str, Schedule]:
    out: dict[str, Schedule] = {}
    for schedule_id, record in rows:
        try:
            out[schedule_id] = decode_schedule_record(record)
        except ValueError as exc:
            log.warning("schedule record %r cannot be decoded (skipped): %s", schedule_id, exc)
    return out


def get_schedules(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Schedule | None]:
    found = _decode_schedules(conn.execute(Q.get_schedules, {"ids": json_list(ids)}).fetchall())
    return [found.get(i) for i in ids]


def list_schedules(conn: sqlite3.Connection) -> list[Schedule]:
    return list(_decode_schedules(conn.execute(Q.list_schedules).fetchall()).values())


def delete_schedule(conn: sqlite3.Connection, schedule_id: str) -> bool:
    with write_transaction(conn):
        return bool(conn.execute(Q.delete_schedule, {"id": schedule_id}).rowcount)


def fire_schedule(
    conn: sqlite3.Connection,
    schedule_id: str,
    tick: float,
    next_tick: float | None,
    tasks: Sequence[Task],
) -> bool:
    """Advance ``next_run_at`` from ``tick`` to ``next_tick`` and enqueue ``tasks``, in one
    ``BEGIN IMMEDIATE`` transaction; ``False`` (nothing written) when ``next_run_at != tick``."""
    params = {"id": schedule_id, "tick": tick}
    # Lock-free probe: a scheduler that lost the race does not take the write lock.
    if conn.execute(Q.get_schedule_for_fire, params).fetchone() is None:
        return False
    with write_transaction(conn):
        row = conn.execute(Q.get_schedule_for_fire, params).fetchone()
        if row is None:
            return False
        try:
            schedule = decode_schedule_record(row[0])
        except ValueError as exc:
            log.warning("schedule record %r cannot be decoded (not fired): %s", schedule_id, exc)
            return False
        schedule.next_run_at = next_tick
        schedule.last_run_at = tick
        record = encode_schedule_record(schedule)
        updated = conn.execute(
            Q.advance_schedule, {**params, "next_run_at": next_tick, "record": record}
        ).rowcount
        if updated != 1:  # pragma: no cover - the row was checked in this transaction
            return False
        if tasks:
            _enqueue_rows(conn, tasks)
    return True

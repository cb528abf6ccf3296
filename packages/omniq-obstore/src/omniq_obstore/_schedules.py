"""Schedules: a definition object per schedule plus one create-if-absent marker per fired tick.

Layout::

    schedules/{S}              the schedule as last put (msgpack of omniq.models.Schedule)
    ticks/{S}/{K}              tick K (time_key) of schedule S was committed; holds next_tick

Only ``put_schedule`` writes the definition, and only ``fire_schedule`` creates tick markers, so
two writers never overwrite each other's state (the stores offer no conditional update that
works on ``LocalStore``).

**Folding.** The effective schedule is its definition with ``next_run_at``/``last_run_at``
taken from the newest tick marker *whose tick is at or after the definition's own
``next_run_at``*: that marker's ``next_tick`` and tick. Markers older than the definition's
``next_run_at`` belong to an earlier definition and are ignored. ``put_schedule`` stores the
engine's (folded) ``next_run_at`` in the definition, which folds the markers into it.

**Firing** tick T: fold; unless the schedule exists, is unpaused and its folded ``next_run_at``
is T, return ``False``. Else enqueue the tasks first, then create ``ticks/{S}/{T}`` (holding
``next_tick``): the commit point, which exactly one concurrent caller creates. The tasks' ids
derive from (S, T) and enqueue is idempotent by id, so every concurrent caller enqueueing them
stores them once. A crash after the enqueue and before the marker leaves T uncommitted: the
next scheduler fires T again, its enqueue finds the tasks already there, and it commits the
marker — the tick is neither lost nor doubled. (Committing the marker first would lose the tick
on such a crash.)

``purge`` deletes every marker but the newest of each schedule (and all markers of deleted
schedules), so a listing stays short.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec

from omniq.backend import decode_schedule_record, encode_schedule_record
from omniq.models import Schedule, Task
from omniq_obstore import _claiming
from omniq_obstore import _keys as K
from omniq_obstore._store import Store

__all__ = [
    "delete_schedule",
    "fire_schedule",
    "get_schedules",
    "list_schedules",
    "purge_ticks",
    "put_schedule",
]

log = logging.getLogger("omniq.backend.obstore")

SCHEDULES_PREFIX = "schedules/"
TICKS_PREFIX = "ticks/"


class _TickMark(msgspec.Struct, frozen=True):
    next_tick: float | None


def _def_key(schedule_id: str) -> str:
    return SCHEDULES_PREFIX + K.component(schedule_id)


def _ticks_prefix(schedule_id: str) -> str:
    return f"{TICKS_PREFIX}{K.component(schedule_id)}/"


def _tick_key(schedule_id: str, tick: float) -> str:
    return _ticks_prefix(schedule_id) + K.time_key(tick)


async def put_schedule(store: Store, schedule: Schedule) -> None:
    """Create or replace the definition (a plain put: atomic on every store)."""
    await store.write(_def_key(schedule.id), encode_schedule_record(schedule))


async def _ticks(store: Store, schedule_id: str) -> list[tuple[float, str]]:
    """``(tick, key)`` of every marker of the schedule, oldest first."""
    prefix = _ticks_prefix(schedule_id)
    out = []
    for key in await store.names(prefix):
        try:
            out.append((K.untime_key(key[len(prefix) :]), key))
        except ValueError:
            continue
    return sorted(out)


async def _fold(store: Store, schedule: Schedule) -> Schedule:
    """Apply the newest tick marker at or after the definition's ``next_run_at``."""
    if schedule.next_run_at is None:
        return schedule
    for tick, key in reversed(await _ticks(store, schedule.id)):
        if tick < schedule.next_run_at:
            break
        data = await store.read(key)
        if data is None:
            continue  # purged meanwhile
        try:
            mark = msgspec.msgpack.decode(data, type=_TickMark)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("tick marker %s cannot be decoded (ignored)", key)
            continue
        schedule.next_run_at, schedule.last_run_at = mark.next_tick, tick
        break
    return schedule


async def _load(store: Store, schedule_id: str) -> Schedule | None:
    data = await store.read(_def_key(schedule_id))
    if data is None:
        return None
    try:
        schedule = decode_schedule_record(data)
    except ValueError as exc:
        log.warning("schedule %r cannot be decoded (skipped): %s", schedule_id, exc)
        return None
    return await _fold(store, schedule)


async def get_schedules(store: Store, ids: Sequence[str]) -> list[Schedule | None]:
    return await store.gather(_load(store, i) for i in ids)


async def list_schedules(store: Store) -> list[Schedule]:
    keys = [k for k in await store.names(SCHEDULES_PREFIX) if "/" not in k[len(SCHEDULES_PREFIX) :]]
    datas = await store.gather(store.read(k) for k in keys)
    out: list[Schedule] = []
    for key, data in zip(keys, datas, strict=True):
        if data is None:
            continue
        try:
            out.append(decode_schedule_record(data))
        except ValueError as exc:
            log.warning("schedule %s cannot be decoded (skipped): %s", key, exc)
    folded = await store.gather(_fold(store, s) for s in out)
    return sorted(folded, key=lambda s: s.id)


async def delete_schedule(store: Store, schedule_id: str) -> bool:
    key = _def_key(schedule_id)
    existed = await store.exists(key)
    await store.delete([key])
    await store.delete([k for _, k in await _ticks(store, schedule_id)])
    return existed


async def fire_schedule(
    store: Store, schedule_id: str, tick: float, next_tick: float | None, tasks: Sequence[Task]
) -> bool:
    schedule = await _load(store, schedule_id)
    if schedule is None or schedule.paused or schedule.next_run_at != tick:
        return False
    if tasks:
        await _claiming.enqueue(store, tasks)
    body = msgspec.msgpack.encode(_TickMark(next_tick))
    return await store.create(_tick_key(schedule_id, tick), body)


async def purge_ticks(store: Store) -> int:
    """Delete every tick marker but each schedule's newest, and all markers of deleted
    schedules; return how many."""
    doomed: list[str] = []
    for seg in await store.dirs(TICKS_PREFIX):
        exists = await store.exists(SCHEDULES_PREFIX + seg)
        keys = sorted(k for k in await store.names(f"{TICKS_PREFIX}{seg}/"))
        doomed.extend(keys if not exists else keys[:-1])
    await store.delete(doomed)
    return len(doomed)

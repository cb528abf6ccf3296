"""The scheduler loop: turns due schedule ticks into tasks, exactly once per tick.

Every worker runs one (``OMNIQ_SCHEDULER_ENABLED``). Each pass lists the schedules, and for each
unpaused one whose ``next_run_at <= now`` asks :func:`~omniq.schedules._timing.due_ticks` which
ticks to run (misfire policy) and when the next one is, builds one task per tick with the
deterministic id :func:`omniq._ids.tick_task_id` and commits with
:meth:`~omniq.backend.Backend.fire_schedule`. Any number of schedulers may race: the backend's
compare-and-set on ``next_run_at`` (plus idempotent enqueue by id) lets exactly one win a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import traceback
from collections.abc import Callable, Sequence

import msgspec

from omniq._ids import tick_task_id
from omniq.backend import Backend
from omniq.config import Settings
from omniq.models import Schedule, Task, TaskState
from omniq.schedules import _timing

__all__ = ["SCHEDULE_HEADER", "Scheduler", "TaskDefaults", "build_tick_tasks"]

log = logging.getLogger("omniq.scheduler")

SCHEDULE_HEADER = "omniq-schedule"
"""Header naming the schedule that produced a task."""


class TaskDefaults(msgspec.Struct, frozen=True, kw_only=True):
    """Per-task settings a schedule does not carry, stamped on the tasks it produces."""

    max_retries: int = 0
    retry_delay: float = 1.0
    timeout: float | None = None
    result_ttl: float | None = 86400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TaskDefaults:
        return cls(
            max_retries=settings.retry_attempts,
            retry_delay=settings.retry_delay,
            timeout=settings.task_timeout,
            result_ttl=settings.result_ttl,
        )


def _jitter(schedule: Schedule, tick: float) -> float:
    """A delay in ``[0, jitter)`` that every scheduler computes alike for this tick."""
    if schedule.jitter <= 0:
        return 0.0
    digest = hashlib.sha256(f"{schedule.id}\x00{tick!r}\x00jitter".encode()).digest()
    return schedule.jitter * (int.from_bytes(digest[:8], "big") / 2**64)


def build_tick_tasks(
    schedule: Schedule, ticks: Sequence[float], *, now: float, defaults: TaskDefaults
) -> list[Task]:
    """One task per tick, with the deterministic id of ``(schedule.id, tick)``."""
    tasks = []
    for tick in ticks:
        run_at = tick + _jitter(schedule, tick)
        tasks.append(
            Task(
                id=tick_task_id(schedule.id, tick),
                func=schedule.func,
                payload=schedule.payload,
                run_at=run_at,
                created_at=now,
                queue=schedule.queue,
                priority=schedule.priority,
                executor=schedule.executor,
                state=TaskState.SCHEDULED if run_at > now else TaskState.PENDING,
                max_retries=defaults.max_retries,
                retry_delay=defaults.retry_delay,
                timeout=defaults.timeout,
                result_ttl=defaults.result_ttl,
                headers={SCHEDULE_HEADER: schedule.id},
            )
        )
    return tasks


class Scheduler:
    """Fires the due ticks of every schedule in ``backend``.

    Args:
        backend: an open backend.
        defaults: retries, timeout and TTL of the produced tasks.
        poll_interval: longest sleep between two passes (a schedule added by another process
            is seen within this time).
        on_fired: called with the tasks of every tick this scheduler committed.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        defaults: TaskDefaults | None = None,
        poll_interval: float = 0.5,
        on_fired: Callable[[list[Task]], None] | None = None,
    ) -> None:
        self.backend = backend
        self.defaults = defaults or TaskDefaults()
        self.poll_interval = poll_interval
        self.on_fired = on_fired
        self.fired = 0
        """Ticks this scheduler committed (won)."""
        self._wake: asyncio.Event | None = None

    def wake(self) -> None:
        """Start the next pass now instead of after the current sleep."""
        if self._wake is not None:
            self._wake.set()

    async def run_due(self) -> float | None:
        """One pass: fire every due tick. Returns the earliest ``next_run_at`` still ahead
        among unpaused schedules (``None`` when there is none)."""
        earliest: float | None = None
        for schedule in await self.backend.list_schedules():
            nxt = await self._fire_one(schedule)
            if nxt is not None and (earliest is None or nxt < earliest):
                earliest = nxt
        return earliest

    async def _fire_one(self, schedule: Schedule) -> float | None:
        """Fire ``schedule`` if due; return its next tick (``None``: paused or exhausted)."""
        if schedule.paused or schedule.next_run_at is None:
            return None
        now = self.backend.clock.now()
        tick = schedule.next_run_at
        if tick > now:
            return tick
        try:
            ticks, next_tick = _timing.due_ticks(schedule, tick, now)
        except Exception as exc:
            log.warning("schedule %s: cannot compute its ticks (not fired): %s", schedule.id, exc)
            return None
        tasks = build_tick_tasks(schedule, ticks, now=now, defaults=self.defaults)
        if await self.backend.fire_schedule(schedule.id, tick, next_tick, tasks):
            self.fired += 1
            log.info(
                "schedule %s: tick %s fired (%d task(s)); next %s",
                schedule.id,
                tick,
                len(tasks),
                next_tick,
            )
            if tasks and self.on_fired is not None:
                self.on_fired(tasks)
        return next_tick

    async def run(self) -> None:
        """Pass after pass until cancelled: wake at the earliest next tick, or after
        ``poll_interval`` at the latest. A failing pass is logged and retried."""
        self._wake = wake = asyncio.Event()
        while True:
            sleep = self.poll_interval
            wake.clear()
            try:
                earliest = await self.run_due()
                if earliest is not None:
                    sleep = min(sleep, max(0.0, earliest - self.backend.clock.now()))
            except Exception as exc:
                log.warning("scheduler: %s: %s", type(exc).__name__, exc)
                log.debug("scheduler traceback:\n%s", traceback.format_exc())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(sleep, 0.01))

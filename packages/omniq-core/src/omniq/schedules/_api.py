"""What the clients' schedule methods do: build, validate, upsert, pause, list, preview."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from omniq._functions import check_arguments
from omniq._tasks import TaskBuilder
from omniq.backend import Backend
from omniq.errors import ConfigError, ScheduleNotFoundError
from omniq.models import MisfirePolicy, Schedule, ScheduleKind
from omniq.schedules import _timing

__all__ = ["ScheduleManager"]

_ID = re.compile(r"[^\s/]{1,200}")


def _timing_changed(old: Schedule, new: Schedule) -> bool:
    fields = ("kind", "cron", "interval", "at", "timezone", "start_at", "end_at")
    return any(getattr(old, f) != getattr(new, f) for f in fields)


class ScheduleManager:
    """Schedule operations of one client (its backend, clock and task builder)."""

    def __init__(self, backend: Backend, tasks: TaskBuilder) -> None:
        self.backend = backend
        self.tasks = tasks

    def build(
        self,
        func: Callable[..., Any] | str,
        *,
        cron: str | None,
        every: float | timedelta | None,
        at: datetime | float | None,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        id: str | None,
        timezone: str,
        start_at: datetime | float | None,
        end_at: datetime | float | None,
        queue: str | None,
        executor: str | None,
        priority: int,
        jitter: float | timedelta,
        misfire: MisfirePolicy | str,
        misfire_limit: int,
    ) -> Schedule:
        """A validated :class:`Schedule` (``next_run_at`` not yet set).

        Raises:
            ConfigError: not exactly one of cron/every/at, a naive datetime, a bad value.
        """
        if sum(x is not None for x in (cron, every, at)) != 1:
            raise ConfigError("add_schedule: give exactly one of cron=, every= or at=")
        if isinstance(args, str | bytes) or not isinstance(args, Sequence):
            raise TypeError(f"args must be a tuple or list of arguments, got {type(args).__name__}")
        headers: dict[str, str] = {}
        path, func_bytes = self.tasks.function_ref(func, headers)
        if func_bytes is not None or headers:
            raise ConfigError(
                f"{path}: a schedule needs a function workers can import by path "
                "(a module-level function), not a lambda, closure or bound method"
            )
        schedule_id = id if id is not None else path
        if not isinstance(schedule_id, str) or not _ID.fullmatch(schedule_id):
            raise ConfigError(f"id={schedule_id!r}: 1-200 characters, no spaces or '/'")
        if misfire not in MisfirePolicy._value2member_map_:
            raise ConfigError(
                f"misfire={misfire!r}: expected one of {', '.join(m.value for m in MisfirePolicy)}"
            )
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigError(f"priority={priority!r} must be an integer")
        if isinstance(misfire_limit, bool) or not isinstance(misfire_limit, int):
            raise ConfigError(f"misfire_limit={misfire_limit!r} must be an integer")
        interval: float | None = None
        if every is not None:
            interval = every.total_seconds() if isinstance(every, timedelta) else every
            if isinstance(interval, bool) or not isinstance(interval, int | float):
                raise ConfigError(f"every={every!r} must be seconds or a timedelta")
            interval = float(interval)
        jitter_s = jitter.total_seconds() if isinstance(jitter, timedelta) else jitter
        if isinstance(jitter_s, bool) or not isinstance(jitter_s, int | float):
            raise ConfigError(f"jitter={jitter!r} must be seconds or a timedelta")
        schedule = Schedule(
            id=schedule_id,
            func=path,
            payload=self.tasks.serializer.dumps_call(tuple(args), dict(kwargs or {})),
            kind=ScheduleKind.CRON
            if cron is not None
            else ScheduleKind.INTERVAL
            if every is not None
            else ScheduleKind.ONCE,
            cron=cron,
            interval=interval,
            at=None if at is None else _timing.to_epoch(at, "at"),
            timezone=timezone,
            start_at=None if start_at is None else _timing.to_epoch(start_at, "start_at"),
            end_at=None if end_at is None else _timing.to_epoch(end_at, "end_at"),
            queue=queue or "default",
            executor=executor,
            priority=priority,
            jitter=float(jitter_s),
            misfire=MisfirePolicy(misfire),
            misfire_limit=misfire_limit,
        )
        _timing.validate_schedule(schedule)
        if not isinstance(func, str):  # after the timing: a bad definition is reported first
            check_arguments(func, tuple(args), dict(kwargs or {}), path)
        return schedule

    async def upsert(self, schedule: Schedule) -> Schedule:
        """Store ``schedule``; an existing one of the same id is replaced, keeping its
        ``next_run_at``/``last_run_at`` when the timing is unchanged (and its pause state)."""
        [old] = await self.backend.get_schedules([schedule.id])
        now = self.backend.clock.now()
        if old is not None:
            schedule.paused = old.paused
            schedule.last_run_at = old.last_run_at
        if old is not None and not _timing_changed(old, schedule):
            schedule.next_run_at = old.next_run_at
        else:
            after = now
            if old is not None and old.last_run_at is not None:
                after = max(after, old.last_run_at)
            schedule.next_run_at = _timing.next_fire_after(schedule, after)
            # A one-shot time already past still runs once (misfire policy applies).
            if (
                schedule.kind == ScheduleKind.ONCE
                and schedule.at is not None
                and (old is None or old.last_run_at != schedule.at)
            ):
                schedule.next_run_at = schedule.at
        await self.backend.put_schedule(schedule)
        return schedule

    async def get(self, schedule_id: str) -> Schedule:
        [schedule] = await self.backend.get_schedules([schedule_id])
        if schedule is None:
            raise ScheduleNotFoundError(schedule_id)
        return schedule

    async def set_paused(self, schedule_id: str, paused: bool) -> Schedule:
        """Pause or resume. Ticks missed while paused run per the misfire policy on resume."""
        schedule = await self.get(schedule_id)
        if schedule.paused == paused:
            return schedule
        schedule.paused = paused
        await self.backend.put_schedule(schedule)
        return schedule

    async def remove(self, schedule_id: str) -> bool:
        return await self.backend.delete_schedule(schedule_id)

    async def next_runs(self, schedule_id: str, n: int) -> list[datetime]:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
            raise ConfigError(f"n={n!r}: must be an integer between 1 and 1000")
        schedule = await self.get(schedule_id)
        zone = ZoneInfo(schedule.timezone)
        if schedule.next_run_at is None:
            return []
        times = [schedule.next_run_at]
        times += _timing.next_fires(schedule, schedule.next_run_at, n - 1) if n > 1 else []
        return [datetime.fromtimestamp(t, zone) for t in times[:n]]

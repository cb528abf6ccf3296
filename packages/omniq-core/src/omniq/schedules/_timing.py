"""Schedule timing (PLACEHOLDER: replaced by the real module with time-zone and DST rules).

Only the signatures are the contract; this version reads cron expressions in the schedule's
zone through :mod:`zoneinfo` via croniter, without special DST handling.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from omniq.errors import ConfigError
from omniq.models import MisfirePolicy, Schedule, ScheduleKind

__all__ = ["due_ticks", "next_fire_after", "next_fires", "to_epoch", "validate_schedule"]


def to_epoch(value: datetime | float, field: str) -> float:
    """Seconds since the epoch of an aware datetime or a number.

    Raises:
        ConfigError: a naive datetime, or not a time.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigError(f"{field}={value!r} is a naive datetime; give it a time zone")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{field} must be an aware datetime or seconds, got {value!r}")
    return float(value)


def _zone(schedule: Schedule) -> ZoneInfo:
    try:
        return ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"timezone={schedule.timezone!r} is not a known time zone") from exc


def validate_schedule(schedule: Schedule) -> None:
    """Check a schedule's definition.

    Raises:
        ConfigError: naming the bad field.
    """
    _zone(schedule)
    if schedule.kind == ScheduleKind.CRON:
        if not schedule.cron or not croniter.is_valid(schedule.cron):
            raise ConfigError(f"cron={schedule.cron!r} is not a valid cron expression")
    elif schedule.kind == ScheduleKind.INTERVAL:
        if schedule.interval is None or not schedule.interval > 0:
            raise ConfigError(f"every={schedule.interval!r} must be > 0 seconds")
    elif schedule.at is None:
        raise ConfigError("a one-shot schedule needs at=")
    if schedule.misfire_limit < 1:
        raise ConfigError(f"misfire_limit={schedule.misfire_limit} must be >= 1")
    if schedule.jitter < 0:
        raise ConfigError(f"jitter={schedule.jitter} must be >= 0")


def next_fire_after(schedule: Schedule, after: float) -> float | None:
    """The first tick strictly after ``after``, or ``None`` when the schedule is exhausted."""
    start = schedule.start_at
    if schedule.kind == ScheduleKind.ONCE:
        t = schedule.at
        if t is None or t <= after:
            return None
    elif schedule.kind == ScheduleKind.INTERVAL:
        assert schedule.interval is not None
        base = start if start is not None else 0.0
        if after < base:
            t = base
        else:
            t = base + (math.floor((after - base) / schedule.interval) + 1) * schedule.interval
    else:
        zone = _zone(schedule)
        frm = max(after, start - 1e-6) if start is not None else after
        it = croniter(schedule.cron, datetime.fromtimestamp(frm, zone))
        t = float(it.get_next(float))
        while t <= after:
            t = float(it.get_next(float))
    if start is not None and t < start:
        return (
            next_fire_after(schedule, start - 1e-9) if schedule.kind != ScheduleKind.ONCE else None
        )
    if schedule.end_at is not None and t > schedule.end_at:
        return None
    return t


def next_fires(schedule: Schedule, after: float, n: int) -> list[float]:
    """The next ``n`` ticks after ``after`` (fewer when the schedule ends)."""
    out: list[float] = []
    t = after
    while len(out) < n:
        nxt = next_fire_after(schedule, t)
        if nxt is None:
            break
        out.append(nxt)
        t = nxt
    return out


def due_ticks(schedule: Schedule, tick: float, now: float) -> tuple[list[float], float | None]:
    """The ticks to run now for the due ``tick`` (``<= now``) per the misfire policy, and the
    next tick after ``now``."""
    missed = [tick]
    t: float | None = tick
    while t is not None:
        t = next_fire_after(schedule, t)
        if t is None or t > now:
            break
        if len(missed) < schedule.misfire_limit:
            missed.append(t)
    if schedule.misfire == MisfirePolicy.RUN_ALL:
        run = missed
    elif schedule.misfire == MisfirePolicy.SKIP:
        run = missed[-1:] if len(missed) == 1 else []
    else:
        run = missed[-1:]
    return run, t

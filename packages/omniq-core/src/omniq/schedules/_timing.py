"""When a schedule fires: pure computation on :class:`omniq.models.Schedule`, no storage.

All instants are seconds since the epoch (``float``, UTC). The rules, daylight saving included,
are written in ``docs/schedules.md``; in short:

* ``cron`` is read on the wall clock of ``Schedule.timezone``. croniter only ever sees naive wall
  clock seconds (its float mode, which is plain arithmetic); the mapping from wall clock to real
  instants is done here, one segment of constant UTC offset at a time, so croniter's own DST
  handling (which fires a fixed time twice in a fall-back overlap) is never used.
* A cron whose hour field is ``*`` runs on real elapsed time: it fires at every instant whose local
  wall clock matches, so it skips wall times that do not exist and fires at both occurrences of a
  repeated one (an hourly cron fires 23 times on a 23-hour day and 25 times on a 25-hour day).
* Any other cron names wall-clock times: a time that does not exist fires once, at the instant the
  gap ends; a time that occurs twice fires once, at its first occurrence.
* ``interval`` ticks are real elapsed seconds on the grid ``start_at + k * interval`` (the epoch
  when ``start_at`` is ``None``), whatever the zone.
* ``once`` fires at ``at``. ``start_at`` and ``end_at`` are inclusive bounds for every kind.
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from omniq.errors import ConfigError
from omniq.models import MisfirePolicy, Schedule, ScheduleKind

__all__ = [
    "SKIP_GRACE",
    "due_ticks",
    "next_fire_after",
    "next_fires",
    "to_epoch",
    "validate_schedule",
]

SKIP_GRACE: Final = 60.0
"""Seconds: under ``misfire="skip"`` a tick this late (or less) still runs, see :func:`due_ticks`."""

_DAY: Final = 86400.0
_PROBE: Final = _DAY
"""Offsets are probed at most this far apart when looking for a zone transition (two transitions
within one day do not occur in the tz database)."""
_MAX_INSTANT: Final = 253_402_128_000.0  # 9999-12-30T00:00:00Z: datetime's range ends soon after


# --------------------------------------------------------------------------- validation


def _where(schedule: Schedule, field: str) -> str:
    return f"schedule {schedule.id!r}: {field}"


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _load_zone(schedule: Schedule) -> ZoneInfo:
    try:
        return _zone(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{_where(schedule, 'timezone')} {schedule.timezone!r} is not a known IANA time zone "
            f"name (use e.g. 'UTC', 'Europe/Paris', 'America/New_York')"
        ) from exc


class _Cron:
    """A parsed cron expression and whether it runs on elapsed time (hour field ``*``)."""

    __slots__ = ("elapsed", "expr")

    def __init__(self, expr: str, elapsed: bool) -> None:
        self.expr = expr
        self.elapsed = elapsed

    def next_wall(self, wall: float, inclusive: bool) -> float | None:
        """The first matching wall-clock second after ``wall`` (or at it, when ``inclusive``)."""
        start = wall - 1.0 if inclusive else wall
        if start >= _MAX_INSTANT:
            return None
        try:
            nxt = float(croniter(self.expr, start).get_next(float))
        except (CroniterError, OverflowError, ValueError):
            return None
        return nxt if nxt < _MAX_INSTANT else None


@lru_cache(maxsize=1024)
def _parse_cron(expr: str) -> _Cron | str:
    """A :class:`_Cron`, or the reason ``expr`` is not usable (a message for ConfigError)."""
    fields = expr.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        if fields[0].lower() == "@reboot":
            return "'@reboot' has no fire times"
    elif len(fields) not in (5, 6):
        return (
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 (the same "
            f"followed by seconds), got {len(fields)}"
        )
    try:
        parsed = croniter(expr, 0.0)
        expanded = parsed.expanded
        parsed.get_next(float)
    except CroniterError as exc:
        if "Failed to find" in str(exc) or type(exc).__name__ == "CroniterBadDateError":
            return "it never matches a date"
        return f"it is not a valid cron expression ({exc})"
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return f"it is not a valid cron expression ({exc})"
    return _Cron(expr, elapsed=list(expanded[1]) == ["*"])


def _cron_of(schedule: Schedule) -> _Cron:
    if not schedule.cron or not schedule.cron.strip():
        raise ConfigError(
            f"{_where(schedule, 'cron')}: a 'cron' schedule needs a cron expression, "
            f"e.g. '0 9 * * 1-5'"
        )
    parsed = _parse_cron(schedule.cron.strip())
    if isinstance(parsed, str):
        raise ConfigError(f"{_where(schedule, 'cron')} {schedule.cron!r}: {parsed}")
    return parsed


def _check_seconds(schedule: Schedule, field: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(
            f"{_where(schedule, field)} must be a finite number of seconds since the epoch, "
            f"got {value!r}"
        )


def validate_schedule(schedule: Schedule) -> None:
    """Raise :class:`~omniq.errors.ConfigError`, naming the field, unless ``schedule`` is usable.

    Checks the zone (an IANA name), the kind's own field (``cron``: 5 fields, or 6 with seconds
    last, that match some date; ``interval``: seconds > 0; ``once``: ``at`` is set), the bounds
    (``end_at`` not before ``start_at``), ``jitter >= 0`` and ``misfire_limit >= 1``.
    """
    _load_zone(schedule)
    for field in ("start_at", "end_at", "at"):
        _check_seconds(schedule, field, getattr(schedule, field))
    kind = schedule.kind
    if kind is ScheduleKind.CRON:
        _cron_of(schedule)
    elif kind is ScheduleKind.INTERVAL:
        iv = schedule.interval
        if (
            iv is None
            or isinstance(iv, bool)
            or not isinstance(iv, int | float)
            or not math.isfinite(iv)
            or iv <= 0
        ):
            raise ConfigError(
                f"{_where(schedule, 'interval')} must be a number of seconds > 0 for an "
                f"'interval' schedule, got {iv!r}"
            )
    elif kind is ScheduleKind.ONCE:
        if schedule.at is None:
            raise ConfigError(
                f"{_where(schedule, 'at')}: a 'once' schedule needs 'at', the time to run "
                f"(an aware datetime or seconds since the epoch)"
            )
    else:  # pragma: no cover - msgspec only decodes known kinds
        raise ConfigError(f"{_where(schedule, 'kind')}: unknown kind {kind!r}")
    if (
        schedule.start_at is not None
        and schedule.end_at is not None
        and schedule.end_at < schedule.start_at
    ):
        raise ConfigError(
            f"{_where(schedule, 'end_at')} ({schedule.end_at}) is before start_at "
            f"({schedule.start_at})"
        )
    jitter = schedule.jitter
    if not isinstance(jitter, int | float) or not math.isfinite(jitter) or jitter < 0:
        raise ConfigError(f"{_where(schedule, 'jitter')} must be >= 0 seconds, got {jitter!r}")
    if isinstance(schedule.misfire_limit, bool) or schedule.misfire_limit < 1:
        raise ConfigError(
            f"{_where(schedule, 'misfire_limit')} must be an integer >= 1, "
            f"got {schedule.misfire_limit!r}"
        )


def to_epoch(value: datetime | float, field: str) -> float:
    """Seconds since the epoch for an aware ``datetime`` or a number of seconds.

    A naive ``datetime`` is refused (:class:`~omniq.errors.ConfigError` naming ``field``): OmniQ
    cannot guess its zone.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ConfigError(
                f"{field}: naive datetime {value.isoformat()} has no time zone; pass an aware "
                f"datetime, e.g. datetime(..., tzinfo=ZoneInfo('Europe/Paris')) or "
                f"tzinfo=timezone.utc"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{field}: expected an aware datetime or seconds since the epoch, "
            f"got {type(value).__name__}"
        )
    if not math.isfinite(value):
        raise ConfigError(f"{field}: expected a finite number of seconds, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- zone arithmetic


def _offset(zone: ZoneInfo, t: float) -> float:
    """The UTC offset in seconds in force at instant ``t``."""
    delta = datetime.fromtimestamp(t, zone).utcoffset()
    return delta.total_seconds() if delta is not None else 0.0


def _transition_in(zone: ZoneInfo, a: float, b: float) -> float | None:
    """The first instant in ``(a, b]`` whose offset differs from the one at ``a``, or ``None``."""
    off_a = _offset(zone, a)
    lo = a
    while lo < b:
        hi = min(lo + _PROBE, b)
        if _offset(zone, hi) != off_a:
            # Transitions fall on whole seconds: bisect on integers.
            low, high = math.floor(lo), math.ceil(hi)
            while high - low > 1:
                mid = (low + high) // 2
                if _offset(zone, mid) == off_a:
                    low = mid
                else:
                    high = mid
            return float(high)
        lo = hi
    return None


def _transition_before(zone: ZoneInfo, t: float) -> float | None:
    """The latest transition instant ``<= t`` within one day before ``t``, or ``None``."""
    off_t = _offset(zone, t)
    low = math.floor(t - _PROBE)
    if _offset(zone, low) == off_t:
        return None
    high = math.floor(t)
    while high - low > 1:
        mid = (low + high) // 2
        if _offset(zone, mid) == off_t:
            high = mid
        else:
            low = mid
    return float(high)


def _cron_next(cron: _Cron, zone: ZoneInfo, after: float) -> float | None:
    """The first fire instant strictly after ``after`` (see the module docstring for the rules).

    Walks segments of constant UTC offset: inside one, wall clock = instant + offset is monotonic,
    so croniter's next wall time gives the next instant unless a transition comes first.
    """
    t = after
    off = _offset(zone, t)
    lo_wall, inclusive = t + off, False
    if not cron.elapsed:
        # ``after`` in the repeat of a fall-back overlap: those wall times already fired.
        prev = _transition_before(zone, t)
        if prev is not None:
            prev_off = _offset(zone, prev - 1.0)
            if prev_off > off and prev + prev_off > lo_wall:
                lo_wall, inclusive = prev + prev_off, True
    while True:
        wall = cron.next_wall(lo_wall, inclusive)
        if wall is None:
            return None
        instant = wall - off
        boundary = _transition_in(zone, t, instant)
        if boundary is None:
            return instant
        prev_off, off, t = off, _offset(zone, boundary), boundary
        if off > prev_off:
            # Spring forward: wall times [boundary + prev_off, boundary + off) never show.
            if not cron.elapsed:
                skipped = cron.next_wall(boundary + prev_off, inclusive=True)
                if skipped is not None and skipped < boundary + off:
                    return boundary
            lo_wall = boundary + off
        else:
            # Fall back: wall times [boundary + off, boundary + prev_off) show a second time.
            lo_wall = boundary + off if cron.elapsed else boundary + prev_off
        inclusive = True


# --------------------------------------------------------------------------- next fire times


def _interval_next(schedule: Schedule, after: float) -> float:
    interval = float(schedule.interval or 0.0)
    anchor = schedule.start_at if schedule.start_at is not None else 0.0
    if after < anchor:
        return anchor
    k = math.floor((after - anchor) / interval) + 1
    while k > 1 and anchor + (k - 1) * interval > after:  # float rounding
        k -= 1
    while anchor + k * interval <= after:
        k += 1
    return anchor + k * interval


def next_fire_after(schedule: Schedule, after: float) -> float | None:
    """The first fire time strictly after ``after`` within ``[start_at, end_at]``, or ``None``.

    ``None`` means the schedule is exhausted: a one-shot whose ``at`` is not after ``after``, or
    no fire time left before ``end_at``. Raises :class:`~omniq.errors.ConfigError` for an invalid
    schedule.
    """
    validate_schedule(schedule)
    start = schedule.start_at
    kind = schedule.kind
    fire: float | None
    if kind is ScheduleKind.ONCE:
        at = float(schedule.at) if schedule.at is not None else None
        fire = at if at is not None and at > after and (start is None or at >= start) else None
    elif kind is ScheduleKind.INTERVAL:
        fire = _interval_next(schedule, after)
    else:
        effective = after
        if start is not None and start > after:
            # Cron fire times are whole seconds: "> ceil(start) - 1" means ">= start".
            effective = max(after, float(math.ceil(start)) - 1.0)
        fire = _cron_next(_cron_of(schedule), _load_zone(schedule), effective)
    if fire is None or (schedule.end_at is not None and fire > schedule.end_at):
        return None
    return fire


def next_fires(schedule: Schedule, after: float, n: int) -> list[float]:
    """Up to ``n`` fire times strictly after ``after``, oldest first (fewer once exhausted)."""
    fires: list[float] = []
    t = after
    while len(fires) < n:
        nxt = next_fire_after(schedule, t)
        if nxt is None:
            break
        fires.append(nxt)
        t = nxt
    return fires


def _latest_fire(schedule: Schedule, tick: float, now: float) -> float:
    """The latest fire time in ``[tick, now]`` (``tick`` itself when none is later)."""
    window = SKIP_GRACE
    while True:
        lo = now - window
        if lo <= tick:
            latest: float = tick
            lo = tick
        else:
            first = next_fire_after(schedule, lo)
            if first is None or first > now:
                window *= 4.0
                continue
            latest = first
        t = next_fire_after(schedule, latest)
        while t is not None and t <= now:
            latest = t
            t = next_fire_after(schedule, t)
        return latest


def due_ticks(schedule: Schedule, tick: float, now: float) -> tuple[list[float], float | None]:
    """The ticks to run now for the stored next tick ``tick``, and the next tick after ``now``.

    ``tick`` is the schedule's stored ``next_run_at`` (``<= now``); the missed ticks are ``tick``
    and every fire time after it up to ``now``. What runs depends on ``schedule.misfire``:

    * ``run_once``: the latest missed tick, one task (late when more than one was missed).
    * ``skip``: the latest missed tick only if it is at most ``grace`` seconds old, where
      ``grace = min(SKIP_GRACE, (next - latest) / 2)`` (``SKIP_GRACE`` = 60 s; ``next`` is the
      following fire time, and the grace is ``SKIP_GRACE`` when there is none); else nothing.
    * ``run_all``: every missed tick, oldest first, at most ``misfire_limit`` (the oldest ones);
      later missed ticks beyond the limit are dropped.

    The second item is the first fire time strictly after ``now`` (``None`` once exhausted); when
    ``tick > now`` nothing is due and ``([], tick)`` is returned.
    """
    validate_schedule(schedule)
    if tick > now:
        return [], tick
    following = next_fire_after(schedule, now)
    policy = schedule.misfire
    if policy is MisfirePolicy.RUN_ALL:
        ticks = [tick]
        while len(ticks) < schedule.misfire_limit:
            nxt = next_fire_after(schedule, ticks[-1])
            if nxt is None or nxt > now:
                break
            ticks.append(nxt)
        return ticks, following
    latest = _latest_fire(schedule, tick, now)
    if policy is MisfirePolicy.SKIP:
        grace = SKIP_GRACE if following is None else min(SKIP_GRACE, (following - latest) / 2)
        return ([latest] if now - latest <= grace else []), following
    return [latest], following

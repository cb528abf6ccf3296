"""Injectable time: the engine and every backend read "now" from a :class:`Clock`.

Production uses :class:`SystemClock`; tests drive time with :class:`ManualClock` so delays,
lease expiry and TTLs can be checked deterministically without sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Source of wall-clock time in seconds since the epoch (UTC)."""

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...


class SystemClock:
    """The real clock (:func:`time.time`)."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that only moves when told to.

    Args:
        start: the initial time in seconds since the epoch.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must be >= 0).

        Raises:
            ValueError: if ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"ManualClock.advance: seconds must be >= 0, got {seconds}")
        self._now += seconds

    def set(self, when: float) -> None:
        """Jump to ``when`` (seconds since the epoch)."""
        self._now = float(when)

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"

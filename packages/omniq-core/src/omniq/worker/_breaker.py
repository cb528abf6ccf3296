"""A circuit breaker around a worker's backend connection.

Every call the worker's loops make to the store (the exchange round, the lease heartbeat, the
janitor, the health record) goes through one :class:`CircuitBreaker` per worker:

- **closed** (normal): calls go through; ``failure_threshold`` consecutive failures open it;
- **open**: calls are refused at once (:class:`CircuitOpenError`) without touching the store,
  for a backoff of 0.5 s doubling at each failed probe up to ``max_backoff``, with jitter;
- **half-open**: the backoff has passed; exactly one call (the *probe*, whichever loop asks first)
  goes through. Its success closes the breaker; its failure opens it again with the next backoff.

A *failure* is an exception that says the store is unreachable or broken. Answers the store gives
on purpose (:class:`~omniq.errors.LeaseLostError`, a ``ValueError``/``TypeError`` refusing the
data) count as successes: the store is up. A call that started before the breaker opened and
succeeds afterwards closes it too: the store answered.

The breaker has no timers of its own; its loops ask :meth:`CircuitBreaker.retry_in` how long to
wait. Time comes from an injectable monotonic ``clock`` and jitter from an injectable ``rng``, so
the state machine is tested without sleeping.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from omniq.errors import LeaseLostError

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError"]

log = logging.getLogger("omniq.worker")

T = TypeVar("T")

BASE_BACKOFF = 0.5
"""Seconds the breaker stays open the first time; doubled at each failed probe."""

JITTER = 0.2
"""Each backoff is shortened by up to this fraction, at random, so workers do not probe in step."""

NOT_FAILURES: tuple[type[BaseException], ...] = (LeaseLostError, ValueError, TypeError)
"""Exceptions that are answers of a working store, not signs of an unreachable one."""


class BreakerState(enum.StrEnum):
    """Where a :class:`CircuitBreaker` is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """The breaker is open: the call was not made. ``retry_in`` is the seconds left."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"circuit breaker open; next probe in {retry_in:.3g} s")
        self.retry_in = retry_in


class CircuitBreaker:
    """Closed / open / half-open breaker around one backend connection.

    Args:
        failure_threshold: consecutive failures that open it (>= 1).
        max_backoff: the longest time it stays open before a probe, in seconds.
        name: what is protected, for log messages (the worker id).
        clock: monotonic seconds; injectable for tests.
        rng: uniform ``[0, 1)`` numbers for the jitter; injectable for tests.
        on_close: called when it closes again (the worker wakes its loops).
        on_open: called with the last error's text when it opens from closed (the worker
            records a ``circuit_opened`` event); not called again for failed probes.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        max_backoff: float = 30.0,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_close: Callable[[], None] | None = None,
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if max_backoff <= 0:
            raise ValueError("max_backoff must be > 0")
        self.failure_threshold = failure_threshold
        self.max_backoff = max_backoff
        self.name = name
        self._clock = clock
        self._rng = rng
        self._on_close = on_close
        self._on_open = on_open
        self._state = BreakerState.CLOSED
        self.failures = 0
        """Consecutive failures (reset by any success)."""
        self.opened = 0
        """How many times it went from closed to open."""
        self._reopens = 0  # failed probes since it last opened from closed
        self._retry_at = 0.0
        self._opened_at = 0.0
        self._probing = False
        self._last_error = ""

    # -- state -------------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        """The current state; ``open`` turns ``half_open`` once the backoff has passed."""
        if self._state is BreakerState.OPEN and self._clock() >= self._retry_at:
            self._state = BreakerState.HALF_OPEN
        return self._state

    def retry_in(self) -> float:
        """Seconds until a call may go through: 0 when closed or a probe is due, else the
        backoff left (the probe's expected duration is unknown: callers poll again)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return 0.0
        if state is BreakerState.OPEN:
            return max(0.0, self._retry_at - self._clock())
        return 0.0 if not self._probing else BASE_BACKOFF

    def backoff(self, reopens: int) -> float:
        """The open period after ``reopens`` failed probes, before jitter:
        ``min(max_backoff, 0.5 * 2**reopens)``."""
        return min(self.max_backoff, BASE_BACKOFF * 2.0 ** min(reopens, 64))

    # -- calls -------------------------------------------------------------------------------
    def acquire(self) -> bool:
        """May a call go now? ``True`` when closed, or for the single probe when half-open.
        A ``True`` from a half-open breaker makes the caller the probe: it must report with
        :meth:`success` or :meth:`failure` (``probe=True``)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    async def call(self, fn: Callable[[], Awaitable[T]], *, force: bool = False) -> T:
        """Await ``fn()`` through the breaker.

        Args:
            fn: makes the backend call.
            force: make the call even when open (a stopping worker's last writes); its result
                is still recorded.

        Raises:
            CircuitOpenError: the breaker is open (or half-open with its probe in flight) and
                the call was not made.
        """
        probe = self._state is not BreakerState.CLOSED
        if not self.acquire():
            if not force:
                raise CircuitOpenError(self.retry_in())
            probe = False
        try:
            result = await fn()
        except NOT_FAILURES:
            self.success(probe=probe)
            raise
        except Exception as exc:
            self.failure(exc, probe=probe)
            raise
        except BaseException:  # cancelled: nothing learned; let another loop probe
            if probe:
                self._probing = False
            raise
        self.success(probe=probe)
        return result

    def success(self, *, probe: bool = False) -> None:
        """A call answered: reset the failure count; close the breaker if it was not closed."""
        if probe:
            self._probing = False
        self.failures = 0
        if self._state is BreakerState.CLOSED:
            return
        down = self._clock() - self._opened_at
        self._state = BreakerState.CLOSED
        self._reopens = 0
        log.warning(
            "worker %s: store reachable again after %.1f s; circuit breaker closed, resuming "
            "claims, lease heartbeats and the janitor",
            self.name,
            down,
        )
        if self._on_close is not None:
            self._on_close()

    def failure(self, exc: BaseException, *, probe: bool = False) -> None:
        """A call failed: count it; open at the threshold, or again when the probe failed."""
        self._last_error = f"{type(exc).__name__}: {exc}"
        self.failures += 1
        if probe:
            self._probing = False
        if probe and self._state is not BreakerState.CLOSED:
            self._reopens += 1
            self._open()
            log.info(
                "worker %s: store still unavailable (probe failed: %s); circuit breaker open "
                "again, next probe in %.1f s",
                self.name,
                self._last_error,
                self._retry_at - self._clock(),
            )
            return
        if self._state is not BreakerState.CLOSED:
            return  # a call from before it opened: already counted in
        if self.failures >= self.failure_threshold:
            self.opened += 1
            self._reopens = 0
            self._opened_at = self._clock()
            self._open()
            log.warning(
                "worker %s: store unavailable (%d consecutive failures, last: %s); circuit "
                "breaker open: no claims, lease heartbeats or janitor runs for %.1f s; running "
                "tasks continue and their outcomes are kept in memory until the store is back",
                self.name,
                self.failures,
                self._last_error,
                self._retry_at - self._clock(),
            )
            if self._on_open is not None:
                self._on_open(self._last_error)

    def _open(self) -> None:
        delay = self.backoff(self._reopens) * (1.0 - JITTER * self._rng())
        self._state = BreakerState.OPEN
        self._retry_at = self._clock() + delay

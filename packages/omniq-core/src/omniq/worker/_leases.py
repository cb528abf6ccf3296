"""Keeping leases: heartbeats, recovery of dead workers' tasks, purging, and giving tasks back.

:class:`LeaseKeeping` is the part of :class:`~omniq.worker.Worker` that talks to the backend about
leases rather than about running tasks; it is a base class so the state it shares with the worker
(held leases, running attempts) is in one place.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omniq._callbacks import Callbacks
from omniq._dead import purge_accepts
from omniq._events import EventLogger
from omniq._offload import ResultOffload
from omniq.backend import Backend
from omniq.errors import LeaseLostError
from omniq.models import EventType, Task, TaskState
from omniq.worker._breaker import CircuitBreaker, CircuitOpenError
from omniq.worker._options import WorkerOptions

__all__ = ["LEASE_LOST", "SHUTDOWN", "STOP_CANCELLED", "LeaseKeeping", "Run"]

log = logging.getLogger("omniq.worker")

_SWEEP_EVERY = 15.0
"""Seconds between the janitor's sweeps over waiting tasks (see ``worker/_dependents.py``)."""


# Why the worker itself stopped a running attempt.
STOP_CANCELLED, LEASE_LOST, SHUTDOWN = "cancelled", "lease_lost", "shutdown"


@dataclass(slots=True)
class Run:
    """One attempt running here, and why the worker stopped it (if it did)."""

    task: Task
    runner: asyncio.Task[None] | None = None
    stop_reason: str | None = None

    def stop(self, reason: str) -> None:
        if self.runner is not None and not self.runner.done():
            self.stop_reason = reason
            self.runner.cancel()


class LeaseKeeping:
    """Heartbeat, janitor and release, over the state the worker keeps about its attempts."""

    backend: Backend
    options: WorkerOptions
    worker_id: str
    _events: EventLogger
    callbacks: Callbacks
    _runs: dict[str, Run]
    _held: dict[str, int]  # task id -> attempt, until the outcome is stored
    _finishing: set[str]  # ids whose outcome is being written right now
    _breaker: CircuitBreaker  # every loop's calls to the backend go through it
    _offload: ResultOffload  # its expired objects are deleted with the purge
    # implemented by DependencySettling (worker/_dependents.py):
    _settle_children_of: Callable[[Sequence[str]], None]
    _sweep_waiting: Callable[[], Awaitable[None]]

    async def _release_held(self) -> None:
        if not self._held:
            return
        leases = list(self._held.items())
        try:
            released = await self.backend.release(leases)
        except Exception as exc:  # their leases will expire and be recovered instead
            log.warning("could not release %d task(s): %s", len(leases), exc)
            return
        self._held.clear()
        log.info("released %d unfinished task(s) for other workers", len(released))
        try:
            now_stored = await self.backend.get_tasks(released)
        except Exception as exc:  # only the events are missing
            log.warning("could not read released tasks back: %s", exc)
            return
        for task in now_stored:
            if task is not None:  # a task whose cancel was requested ends cancelled instead
                cancelled = task.state is TaskState.CANCELLED
                self._events.record(
                    task,
                    EventType.CANCELLED if cancelled else EventType.RELEASED,
                    worker_id=self.worker_id,
                    detail="cancelled while running" if cancelled else "worker shutting down",
                )
                if cancelled:
                    self._settled_here(task)

    def _settled_here(self, task: Task) -> None:
        """This worker gave ``task`` its final state outside a run's outcome (released while
        its cancellation was requested; recovered from a dead worker as failed or cancelled):
        fire that state's callbacks here."""
        if self.callbacks.active and task.state.is_terminal:
            self.callbacks.spawn(
                task.id,
                self.callbacks.contexts(
                    task, task.state, worker_id=self.worker_id, error=task.error
                ),
            )

    async def _heartbeat_loop(self) -> None:
        interval = self.options.lease / 3
        loop = asyncio.get_running_loop()
        while True:
            slept_from = loop.time()
            await asyncio.sleep(interval)
            late = loop.time() - slept_from - interval
            if late > interval:
                log.warning(
                    "the worker's event loop was blocked for %.1f s: an async task may be calling "
                    "blocking code (time.sleep, sync I/O); leases of %.0f s can expire meanwhile "
                    "and another worker then runs those tasks again",
                    late,
                    self.options.lease,
                )
            if self._held:
                await self._heartbeat(dict(self._held))

    async def _heartbeat(self, sent: dict[str, int]) -> None:
        try:
            to_cancel = await self._breaker.call(
                lambda: self.backend.extend_leases(list(sent.items()), lease=self.options.lease)
            )
        except CircuitOpenError:  # the store is down: skip this beat (leases may expire)
            return
        except LeaseLostError as exc:
            to_cancel = list(exc.cancel_requested)
            lost = [
                task_id
                for task_id in exc.task_ids
                # not finished meanwhile, nor already replaced by a newer attempt here
                if self._held.get(task_id) == sent.get(task_id) and task_id not in self._finishing
            ]
            for task_id in lost:
                del self._held[task_id]
                self._stop(task_id, LEASE_LOST, attempt=sent[task_id])
            if lost:
                log.warning("lease lost for %s; stopped them here", ", ".join(lost))
        except Exception as exc:
            log.warning("lease heartbeat failed: %s: %s", type(exc).__name__, exc)
            return
        for task_id in to_cancel:
            self._stop(task_id, STOP_CANCELLED, attempt=sent.get(task_id))

    async def _purge_offloaded(self, now: float) -> None:
        """Delete offloaded results nobody can read any more (the offload store is not the
        backend: its failures are logged, they do not count against the breaker)."""
        try:
            await self._offload.purge(now)
        except Exception as exc:
            log.warning("janitor: offloaded results: %s: %s", type(exc).__name__, exc)

    def _stop(self, task_id: str, reason: str, *, attempt: int | None) -> None:
        run = self._runs.get(task_id)
        if run is not None and (attempt is None or run.task.attempt == attempt):
            run.stop(reason)

    async def _janitor_loop(self) -> None:
        every = self.options.purge_interval
        interval = min(max(0.2, min(self.options.lease / 4, 5.0)), every)
        since_purge = every  # purge soon after start
        since_sweep = _SWEEP_EVERY  # sweep the waiting tasks soon after start
        while True:
            try:
                recovered = await self._breaker.call(self.backend.requeue_expired)
                for task in recovered:
                    self._events.record(
                        task,
                        EventType.LEASE_EXPIRED,
                        detail=task.error.message if task.error else "",
                    )
                    self._settled_here(task)
                self._settle_children_of([t.id for t in recovered if t.state.is_terminal])
                if since_sweep >= _SWEEP_EVERY:
                    since_sweep = 0.0
                    await self._breaker.call(self._sweep_waiting)
                if since_purge >= every:
                    since_purge = 0.0
                    now = self.backend.clock.now()
                    kwargs: dict[str, Any] = {
                        "finished_before": now - self.options.retention,
                        "events_before": now - self.options.event_retention,
                    }
                    # a backend written before OMNIQ_DEAD_RETENTION / OMNIQ_EVENT_MAX_COUNT
                    if purge_accepts(self.backend, "failed_before"):
                        kwargs["failed_before"] = now - self.options.dead_retention
                    if self.options.event_max_count is not None and purge_accepts(
                        self.backend, "max_events"
                    ):
                        kwargs["max_events"] = self.options.event_max_count
                    purge = functools.partial(self.backend.purge, **kwargs)
                    await self._breaker.call(purge)
                    await self._purge_offloaded(now)
            except CircuitOpenError:  # the store is down: skip this run
                pass
            except Exception as exc:
                log.warning("janitor: %s: %s", type(exc).__name__, exc)
                log.debug("janitor traceback:\n%s", traceback.format_exc())
            await asyncio.sleep(interval)
            since_purge += interval
            since_sweep += interval

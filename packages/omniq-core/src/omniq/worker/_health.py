"""Worker health: the record a worker keeps in the backend so operators can see it.

:class:`HealthReporting` is the part of :class:`~omniq.worker.Worker` that registers the worker
(:meth:`~omniq.backend.Backend.put_worker`) when it starts, rewrites its record every
``options.heartbeat`` seconds, marks it ``stopping`` when a stop begins and removes it on a clean
stop. A record says the worker is alive until ``expires_at = heartbeat_at + 3 * heartbeat``; a
killed worker therefore disappears from :meth:`~omniq.backend.Backend.list_workers` three
heartbeats after its last one, and the janitor's ``purge`` deletes its record.

The store failing never stops the worker: a failed write is logged and retried at the next beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from importlib import metadata
from typing import TYPE_CHECKING

from omniq.backend import Backend
from omniq.models import WorkerInfo, WorkerState
from omniq.worker._breaker import CircuitBreaker, CircuitOpenError
from omniq.worker._options import WorkerOptions

if TYPE_CHECKING:
    from omniq.executors import Executor
    from omniq.models import ExecutorStats
    from omniq.worker._leases import Run

__all__ = ["EXPIRY_BEATS", "HealthReporting", "omniq_version"]

log = logging.getLogger("omniq.worker")

EXPIRY_BEATS = 3
"""A worker not heard from for this many heartbeats is considered dead."""

_STOP_WAIT = 5.0
"""Seconds ``stop`` waits for a health write in flight before cancelling it."""


def omniq_version() -> str:
    """The installed omniq-core version (``"unknown"`` when running from an uninstalled tree)."""
    try:
        return metadata.version("omniq-core")
    except metadata.PackageNotFoundError:
        return "unknown"


class HealthReporting:
    """Registers the worker, refreshes its health record, marks it stopping and removes it."""

    backend: Backend
    options: WorkerOptions
    worker_id: str
    counters: dict[str, int]
    executors: dict[str, Executor]
    _runs: dict[str, Run]
    _stopping: bool
    _breaker: CircuitBreaker

    def executor_snapshot(self) -> list[ExecutorStats]:  # implemented by Worker
        raise NotImplementedError

    def _init_health(self) -> None:
        self._health_task: asyncio.Task[None] | None = None
        self._health_wake = asyncio.Event()
        self._health_done = False
        self._health_failing = False
        self._started_at = 0.0
        self._host = socket.gethostname()
        self._version = omniq_version()

    def health_info(self) -> WorkerInfo:
        """This worker's health record as of now (what the next heartbeat writes)."""
        now = self.backend.clock.now()
        stats = self.executor_snapshot()
        capacity = sum(s.concurrency for s in stats)
        if self.options.max_running is not None:
            capacity = min(capacity, self.options.max_running)
        return WorkerInfo(
            id=self.worker_id,
            host=self._host,
            pid=os.getpid(),
            queues=tuple(self.options.queues),
            executors=tuple(stats),
            capacity=capacity,
            running=tuple(sorted(self._runs)),
            counters=dict(self.counters),
            started_at=self._started_at,
            heartbeat_at=now,
            expires_at=now + EXPIRY_BEATS * self.options.heartbeat,
            state=WorkerState.STOPPING if self._stopping else WorkerState.RUNNING,
            version=self._version,
            breaker=self._breaker.state.value,
            breaker_failures=self._breaker.failures,
            breaker_opened=self._breaker.opened,
        )

    async def _publish_health(self) -> None:
        """Write the record once; a failure is logged (a warning when a failing streak begins)
        and left for the next beat."""
        try:
            # built inside the call: a probe's record says half_open
            await self._breaker.call(lambda: self.backend.put_worker(self.health_info()))
        except CircuitOpenError:  # the store is down: nothing is written until it is back
            return
        except Exception as exc:
            level = logging.DEBUG if self._health_failing else logging.WARNING
            log.log(
                level,
                "worker %s: health record not written (retrying every %.3g s): %s: %s",
                self.worker_id,
                self.options.heartbeat,
                type(exc).__name__,
                exc,
            )
            self._health_failing = True
            return
        if self._health_failing:
            self._health_failing = False
            log.info("worker %s: health record written again", self.worker_id)

    async def _start_health(self) -> None:
        """Register now (so the worker is listed once ``start`` returns), then keep beating."""
        self._started_at = self.backend.clock.now()
        await self._publish_health()
        self._health_task = asyncio.create_task(self._health_loop(), name="omniq-worker-health")

    def _health_now(self) -> None:
        """Write the record at once (the state changed), without waiting for it."""
        self._health_wake.set()

    async def _health_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.heartbeat):
                    await self._health_wake.wait()
            self._health_wake.clear()
            if self._health_done:
                return
            await self._publish_health()

    async def _stop_health(self) -> None:
        """End the heartbeat (letting a write in flight land first), then remove the record."""
        task, self._health_task = self._health_task, None
        if task is None:
            return
        self._health_done = True
        self._health_wake.set()
        done, _ = await asyncio.wait({task}, timeout=_STOP_WAIT)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.backend.remove_worker(self.worker_id)
        except Exception as exc:  # the record expires on its own
            log.warning(
                "worker %s: health record not removed (it expires within %.3g s): %s: %s",
                self.worker_id,
                EXPIRY_BEATS * self.options.heartbeat,
                type(exc).__name__,
                exc,
            )

"""Worker settings that do not belong to one task."""

from __future__ import annotations

import msgspec

from omniq.config import Settings
from omniq.schedules._scheduler import TaskDefaults

__all__ = ["WorkerOptions"]


class WorkerOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a worker claims, heartbeats, retries, shuts down and cleans up.

    Attributes:
        queues: the queues it serves.
        default_executor: executor for tasks that name none.
        max_running: the most tasks running at once across executors; ``None``: the sum of the
            executors' slots.
        lease: seconds a claim stays valid without a heartbeat (visibility timeout).
        poll_interval: longest sleep between claim polls when idle, in seconds.
        shutdown_grace: seconds running tasks get to finish on shutdown.
        retry_delay: base seconds before a retry, for tasks that set no ``retry_delay``.
        retry_backoff, retry_max_delay, retry_jitter: the backoff for tasks that carry none
            (records written before these options existed).
        retention: seconds finished tasks (and their results) are kept before purging.
        dead_retention: seconds failed tasks (the dead-letter queue) are kept before purging.
        event_retention: seconds events are kept.
        purge_interval: seconds between two purges by the janitor.
        event_max_count: most events kept (the oldest beyond it are purged); ``None``: no limit.
        heartbeat: seconds between two writes of the worker's health record; the record
            expires after three of them.
        breaker_threshold: consecutive store failures that open the worker's circuit breaker.
        breaker_max_backoff: longest wait, in seconds, of an open breaker before it probes.
        scheduler: run the scheduler loop (tasks of due schedules) in this worker.
        task_defaults: retries, retry delay, timeout and result TTL of scheduled tasks.
    """

    queues: tuple[str, ...] = ("default",)
    default_executor: str = "async"
    max_running: int | None = None
    lease: float = 30.0
    poll_interval: float = 0.5
    shutdown_grace: float = 30.0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    retry_max_delay: float = 3600.0
    retry_jitter: bool = True
    retention: float = 7 * 86400.0
    dead_retention: float = 30 * 86400.0
    event_retention: float = 7 * 86400.0
    purge_interval: float = 60.0
    event_max_count: int | None = 1_000_000
    heartbeat: float = 5.0
    breaker_threshold: int = 5
    breaker_max_backoff: float = 30.0
    scheduler: bool = True
    task_defaults: TaskDefaults = TaskDefaults()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, queues: tuple[str, ...], executor: str
    ) -> WorkerOptions:
        """Options from the effective settings, serving ``queues`` with ``executor`` as default."""
        return cls(
            queues=queues,
            default_executor=executor,
            max_running=settings.max_workers,
            lease=settings.lease_seconds,
            poll_interval=settings.poll_interval,
            shutdown_grace=settings.shutdown_grace,
            retry_delay=settings.retry_delay,
            retry_backoff=settings.retry_backoff,
            retry_max_delay=settings.retry_max_delay,
            retry_jitter=settings.retry_jitter,
            retention=settings.retention,
            dead_retention=settings.dead_retention,
            event_retention=settings.event_retention,
            purge_interval=settings.purge_interval,
            event_max_count=settings.event_max_count,
            heartbeat=settings.worker_heartbeat,
            breaker_threshold=settings.breaker_threshold,
            breaker_max_backoff=settings.breaker_max_backoff,
            scheduler=settings.scheduler_enabled,
            task_defaults=TaskDefaults.from_settings(settings),
        )

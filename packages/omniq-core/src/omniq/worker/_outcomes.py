"""Turning how a run ended into the :class:`~omniq.backend.Outcome` the worker stores."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from omniq._retrying import RetryDefaults, retry_decision
from omniq.backend import Outcome
from omniq.models import ErrorInfo, EventType, Task, TaskState

__all__ = ["COUNTER_OF", "PendingOutcome", "cancelled", "failure", "success"]

log = logging.getLogger("omniq.worker")

COUNTER_OF = {
    EventType.COMPLETE: "succeeded",
    EventType.ERROR: "failed",
    EventType.RETRY: "retried",
    EventType.CANCELLED: "cancelled",
}
"""Which worker counter an outcome's event increments once the outcome is stored."""


@dataclass(slots=True)
class PendingOutcome:
    """An outcome waiting to be stored, with the event to record once it is.

    Attributes:
        task: the task as claimed.
        event: ``COMPLETE``, ``ERROR``, ``RETRY`` or ``CANCELLED``.
        detail: the event's detail text.
        outcome: what ``Backend.finish`` receives.
        failures: how many times storing it failed so far.
        value: the return value (for ``on_success`` callbacks).
        exc: the exception raised in this process, if any (for ``on_failure``/``on_retry``).
        duration: seconds the run took, if it ran.
    """

    task: Task
    event: EventType
    detail: str
    outcome: Outcome
    failures: int = 0
    value: Any = None
    exc: BaseException | None = None
    duration: float | None = None


def success(task: Task, *, now: float, data: bytes | None) -> PendingOutcome:
    """The task returned; ``data`` is its encoded value (``None`` when ``result_ttl == 0``)."""
    expires = None if task.result_ttl is None or data is None else now + task.result_ttl
    return PendingOutcome(
        task,
        EventType.COMPLETE,
        "",
        Outcome(
            task_id=task.id,
            attempt=task.attempt,
            state=TaskState.SUCCESS,
            finished_at=now,
            result=data,
            result_expires_at=expires,
        ),
    )


def failure(
    task: Task,
    error: ErrorInfo,
    *,
    now: float,
    retry: bool,
    defaults: RetryDefaults,
    exc: BaseException | None = None,
) -> PendingOutcome:
    """The run failed: retried while runs are left (``task.runs_used <= task.max_retries``:
    ``retries=N`` → N+1 runs), ``retry`` is True and the task's policy retries this error
    (``retry_on``/``give_up_on``; an :class:`omniq.Retry` always), after the backed-off delay;
    else final (``failed``: the dead-letter queue).

    Args:
        exc: the exception when it was raised in this process (its MRO is matched), ``None``
            for an error known only as data (a process child's).
    """
    detail = f"{error.type}: {error.message}"
    decision = retry_decision(task, error, exc, defaults) if retry else None
    runs_left = task.runs_used <= task.max_retries
    if decision is not None and decision.retry and runs_left:
        delay = decision.delay
        event, state, retry_at = EventType.RETRY, TaskState.SCHEDULED, now + delay
        detail = f"{detail} (retry in {delay:.3f} s)"
        log.info(
            "task %s (%s) run %d failed, retrying in %.3g s: %s",
            task.id,
            task.func,
            task.runs_used,
            delay,
            detail,
        )
    else:
        if decision is None:
            why = "not retryable"
        else:
            why = decision.why if not decision.retry else "no retries left"
        log.warning(
            "task %s (%s) failed after %d run(s) (%s): %s",
            task.id,
            task.func,
            task.runs_used,
            why,
            detail,
        )
        event, state, retry_at = EventType.ERROR, TaskState.FAILED, None
    return PendingOutcome(
        task,
        event,
        detail,
        Outcome(
            task_id=task.id,
            attempt=task.attempt,
            state=state,
            finished_at=now,
            error=error,
            retry_at=retry_at,
        ),
    )


def cancelled(task: Task, message: str, *, now: float) -> PendingOutcome:
    """The run was stopped because its cancellation was requested."""
    error = ErrorInfo(type="omniq.errors.TaskCancelledError", message=message)
    return PendingOutcome(
        task,
        EventType.CANCELLED,
        message,
        Outcome(
            task_id=task.id,
            attempt=task.attempt,
            state=TaskState.CANCELLED,
            finished_at=now,
            error=error,
        ),
    )

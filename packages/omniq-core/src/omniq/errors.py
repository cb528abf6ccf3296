"""Every error OmniQ raises, under one root, :class:`OmniQError`.

Messages say what was wrong and what to do about it. Errors that describe a task's remote
failure carry data (type path, message, traceback text), never pickles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omniq.models import ErrorInfo

__all__ = [
    "BackendError",
    "BackendNotFoundError",
    "CallFailedError",
    "ConfigError",
    "DependencyCycleError",
    "DependencyError",
    "DependencyFailedError",
    "DeserializationError",
    "WaitDeadlockError",
    "ExecutorNotFoundError",
    "LeaseLostError",
    "NotSupportedError",
    "OmniQError",
    "PayloadTooLargeError",
    "PluginConflictError",
    "ResultExpiredError",
    "ResultNotStoredError",
    "ResultTimeoutError",
    "Retry",
    "SerializationError",
    "SignatureError",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskNotFoundError",
    "ScheduleNotFoundError",
    "TaskTimeoutError",
    "WorkerLostError",
]


class OmniQError(Exception):
    """Root of every OmniQ error."""


class ConfigError(OmniQError, ValueError):
    """A setting (argument or ``OMNIQ_*`` variable) has a value OmniQ cannot use.

    The message names the variable or argument and the accepted values.
    """


class BackendNotFoundError(OmniQError, LookupError):
    """No installed plugin serves a storage URI's scheme; the message names the package to install."""


class ExecutorNotFoundError(OmniQError, LookupError):
    """No installed plugin provides the named executor; the message names the package to install."""


class PluginConflictError(OmniQError):
    """Two installed distributions claim the same backend scheme or executor name."""


class NotSupportedError(OmniQError):
    """The backend does not declare the capability an operation needs."""


class BackendError(OmniQError):
    """The backend failed in a way OmniQ cannot hide (connection lost, disk full, corrupt store)."""


class SerializationError(OmniQError, ValueError):
    """A value cannot be encoded for storage; raised in the caller at enqueue time."""


class PayloadTooLargeError(SerializationError):
    """An encoded payload exceeds the configured limit (``OMNIQ_MAX_PAYLOAD_BYTES``)."""


class DeserializationError(OmniQError):
    """Stored bytes cannot be decoded; the task they belong to fails alone."""


class SignatureError(DeserializationError):
    """A dill payload is unsigned or its HMAC-SHA256 signature does not match ``OMNIQ_SECRET_KEY``."""


class LeaseLostError(OmniQError):
    """A finish or lease extension used a stale fencing token: a newer attempt owns the task.

    Attributes:
        task_ids: ids of the tasks whose operation was rejected.
        cancel_requested: for ``extend_leases``, ids among the *valid* leases whose cancellation
            was requested (what the call would have returned had no lease been lost).
    """

    def __init__(self, task_ids: Iterable[str], *, cancel_requested: Iterable[str] = ()) -> None:
        self.task_ids: tuple[str, ...] = tuple(task_ids)
        self.cancel_requested: tuple[str, ...] = tuple(cancel_requested)
        super().__init__(
            f"lease lost for {len(self.task_ids)} task(s): {', '.join(self.task_ids[:5])}"
            + (" …" if len(self.task_ids) > 5 else "")
            + "; a newer attempt owns them, this outcome was not recorded"
        )


class ScheduleNotFoundError(OmniQError, LookupError):
    """No schedule with this id exists (never added, or removed)."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"no schedule with id {schedule_id!r}")


class TaskNotFoundError(OmniQError, LookupError):
    """No task with this id exists (never enqueued, or purged by retention)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"no task with id {task_id!r} (never enqueued, or purged by retention)")


class ResultNotStoredError(OmniQError, LookupError):
    """The task succeeded but was enqueued with ``result_ttl=0``, so no result was kept."""


class ResultExpiredError(OmniQError, LookupError):
    """The task's result outlived its ``result_ttl`` and is gone."""


class ResultTimeoutError(OmniQError, TimeoutError):
    """``get_result`` (or ``get_results``, ``as_completed``) waited ``timeout`` seconds and a
    task had not finished.

    Attributes:
        task_ids: the ids still unfinished (empty when not known).
    """

    def __init__(self, message: str, *, task_ids: Iterable[str] = ()) -> None:
        self.task_ids = tuple(task_ids)
        super().__init__(message)


class RemoteTaskError(OmniQError):
    """Base of errors that describe what happened to a task elsewhere.

    Attributes:
        task_id: the task's id.
        remote_type: import path of the exception type raised by the task, e.g. ``"builtins.ValueError"``.
        remote_message: ``str()`` of that exception.
        remote_traceback: the formatted traceback text, or ``""``.
    """

    def __init__(
        self,
        task_id: str,
        remote_type: str,
        remote_message: str,
        remote_traceback: str = "",
    ) -> None:
        self.task_id = task_id
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        super().__init__(f"task {task_id} {self._verb}: {remote_type}: {remote_message}")

    _verb = "ended"

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.task_id, self.remote_type, self.remote_message, self.remote_traceback),
        )


class TaskFailedError(RemoteTaskError):
    """The task ended in the ``failed`` state; ``remote_*`` describe its last error."""

    _verb = "failed"


class TaskCancelledError(RemoteTaskError):
    """The task was cancelled before it produced a result."""

    _verb = "was cancelled"


class TaskTimeoutError(OmniQError, TimeoutError):
    """Raised inside the worker when a task exceeds its ``timeout`` (seconds)."""


class CallFailedError(OmniQError):
    """Raised by an executor whose call ran out of this process (a ``process`` child) when the
    function raised: the original exception is described by ``info`` because it may not survive
    the trip back (unpicklable, or its class not importable here).

    Attributes:
        info: the function's own error as data (type path, message, traceback text).
    """

    def __init__(self, info: ErrorInfo) -> None:
        self.info = info
        super().__init__(f"{info.type}: {info.message}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.info,))


class DependencyError(OmniQError, ValueError):
    """A dependency that cannot be registered: an unknown parent id, or a task listed as its
    own parent. Raised at enqueue; nothing is stored. (A ``depends_on`` of the wrong type, such
    as one string instead of a list, raises ``TypeError``.)"""


class DependencyCycleError(DependencyError):
    """The graph given to ``enqueue_graph`` has a cycle; the message lists the nodes on it.

    Attributes:
        cycle: the node names on the cycle, the first repeated at the end.
    """

    def __init__(self, cycle: Iterable[str]) -> None:
        self.cycle: tuple[str, ...] = tuple(cycle)
        super().__init__(
            "the task graph has a cycle: " + " -> ".join(self.cycle) + "; nothing was enqueued"
        )


class DependencyFailedError(OmniQError):
    """Recorded on a task cancelled because a parent failed, was cancelled or no longer exists
    (the message names the parent and why)."""


class WaitDeadlockError(OmniQError, RuntimeError):
    """A sync task blocked waiting for another task's result while its worker had no free slot:
    the awaited task could never run there, so the wait would hang. Make the task ``async def``
    (an async task awaiting frees its slot), raise the worker's concurrency, or express the
    wait as a dependency (``depends_on``, a chain or a chord) instead."""


class WorkerLostError(OmniQError):
    """Recorded when a task's worker died or vanished and its lease expired."""


class Retry(OmniQError):
    """Raise from a task to have it retried, whatever its ``retry_on``/``give_up_on``.

    The retry still counts as a run and is bounded by the task's ``retries``: once none are left
    the task ends ``failed`` like after any error.

    Args:
        delay: seconds (or a ``timedelta``) before the retry; ``None`` uses the task's backoff.
        reason: free text stored as the error message of this run.

    Example::

        @queue.task(retries=5)
        def poll(url):
            if not ready(url):
                raise omniq.Retry(delay=30, reason="not ready yet")
    """

    def __init__(self, delay: float | timedelta | None = None, reason: str = "") -> None:
        if isinstance(delay, timedelta):
            delay = delay.total_seconds()
        if delay is not None:
            if isinstance(delay, bool) or not isinstance(delay, int | float):
                raise TypeError(f"Retry delay must be a number of seconds, got {delay!r}")
            if not math.isfinite(delay) or delay < 0:
                raise ConfigError(f"Retry delay={delay!r}: must be finite seconds >= 0")
            delay = float(delay)
        self.delay: float | None = delay
        self.reason = reason
        super().__init__(reason or "retry requested")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.delay, self.reason))

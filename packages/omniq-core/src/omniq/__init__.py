"""OmniQ: a Python task queue from one laptop (embedded SQLite) to PostgreSQL, Redis and NATS.

Start with :class:`TaskQueue` (sync) or :class:`AsyncTaskQueue` (async).
"""

from omniq._context import TaskContext, current_task
from omniq._defaults import DEFAULT
from omniq._sync_client import TaskQueue
from omniq.client import AsyncTaskQueue
from omniq.errors import (
    OmniQError,
    ResultExpiredError,
    ResultNotStoredError,
    ResultTimeoutError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
)
from omniq.models import EventType, Task, TaskEvent, TaskResult, TaskState

__all__ = [
    "DEFAULT",
    "AsyncTaskQueue",
    "EventType",
    "OmniQError",
    "ResultExpiredError",
    "ResultNotStoredError",
    "ResultTimeoutError",
    "Task",
    "TaskCancelledError",
    "TaskContext",
    "TaskEvent",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskQueue",
    "TaskResult",
    "TaskState",
    "TaskTimeoutError",
    "current_task",
]

__version__ = "0.1.0"

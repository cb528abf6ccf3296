"""Reading results: waiting for tasks to finish and turning outcomes into values or errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from omniq._context import lending_slot
from omniq.backend import Backend
from omniq.errors import (
    ResultExpiredError,
    ResultNotStoredError,
    ResultTimeoutError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
)
from omniq.models import ErrorInfo, Task, TaskState
from omniq.serialization import Serializer

__all__ = ["ResultReader"]

_FIRST_POLL = 0.005
_MAX_POLL = 0.2


class ResultReader:
    """Waits for tasks of one backend and reads their values.

    A wait polls the task record with backoff (5 ms, growing by half each time up to 200 ms) and is woken at
    once by :meth:`notify`, which the embedded worker calls as soon as it stored an outcome.

    Args:
        backend: where tasks and results are read.
        serializer: decodes stored values.
    """

    def __init__(self, backend: Backend, serializer: Serializer) -> None:
        self.backend = backend
        self.serializer = serializer
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    async def task(self, task_id: str) -> Task:
        """The stored task.

        Raises:
            TaskNotFoundError: no such task.
        """
        [task] = await self.backend.get_tasks([task_id])
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    async def wait(self, task_id: str, timeout: float | None) -> Any:
        """Wait up to ``timeout`` seconds (``None``: no limit) and return the task's value.

        Raises: as :meth:`omniq.AsyncTaskQueue.get_result`.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        poll = _FIRST_POLL
        task = await self.task(task_id)
        if task.state.is_terminal:
            return await self.value_of(task)
        async with lending_slot():  # inside a task: the awaited task may run in our slot
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise ResultTimeoutError(
                        f"task {task_id} is still {task.state.value} after {timeout} s"
                    )
                await self._wait_finished(
                    task_id, poll if remaining is None else min(poll, remaining)
                )
                poll = min(poll * 1.5, _MAX_POLL)
                task = await self.task(task_id)
                if task.state.is_terminal:
                    return await self.value_of(task)

    async def value_of(self, task: Task) -> Any:
        """The value of a finished task, or the error that describes its end."""
        error = task.error or ErrorInfo(type="", message="")
        if task.state is TaskState.FAILED:
            raise TaskFailedError(task.id, error.type, error.message, error.traceback)
        if task.state is TaskState.CANCELLED:
            raise TaskCancelledError(task.id, error.type, error.message, error.traceback)
        [stored] = await self.backend.get_results([task.id])
        if stored is not None:
            return self.serializer.loads(stored.data)
        if task.result_ttl == 0:
            raise ResultNotStoredError(f"task {task.id} was enqueued with result_ttl=0")
        raise ResultExpiredError(
            f"the result of task {task.id} expired (result_ttl={task.result_ttl} s)"
        )

    async def _wait_finished(self, task_id: str, timeout: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await future
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(future)
                if not waiters:
                    del self._waiters[task_id]

    def notify(self, task_ids: Sequence[str]) -> None:
        """Wake the waits of these tasks now (their outcome was just stored)."""
        for task_id in task_ids:
            for future in self._waiters.get(task_id, ()):
                if not future.done():
                    future.set_result(None)

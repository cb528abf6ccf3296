"""Reading results: waiting for tasks to finish and turning outcomes into values or errors.

Every wait, for one id or many, is the same loop (:meth:`ResultReader.finished`): one
``get_tasks`` round trip per round for all the ids still unfinished, then one ``get_results``
round trip for the ones that succeeded in that round, then a sleep that polls with backoff and is
cut short by :meth:`ResultReader.notify` (the embedded worker calls it as soon as it stored an
outcome).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Collection, Sequence
from typing import Any

from omniq._context import lending_slot
from omniq._offload import ResultOffload
from omniq.backend import Backend
from omniq.errors import (
    DeserializationError,
    ResultExpiredError,
    ResultNotStoredError,
    ResultTimeoutError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
)
from omniq.models import ErrorInfo, StoredResult, Task, TaskResult, TaskState, ValueState
from omniq.serialization import Serializer

__all__ = ["ResultReader"]

_FIRST_POLL = 0.005
_MAX_POLL = 0.2
_SHOWN_IDS = 5

_VALUE_ERRORS = (
    TaskFailedError,
    TaskCancelledError,
    ResultNotStoredError,
    ResultExpiredError,
    DeserializationError,
)
"""What :meth:`TaskResult.value_or_raise` raises for a finished task."""


class ResultReader:
    """Waits for tasks of one backend and reads their values.

    A wait polls the task records with backoff (5 ms, growing by half each round up to 200 ms)
    and is woken at once by :meth:`notify`.

    Args:
        backend: where tasks and results are read.
        serializer: decodes stored values.
        offload: resolves results offloaded to ``OMNIQ_RESULT_OFFLOAD_URL``.
    """

    def __init__(
        self, backend: Backend, serializer: Serializer, offload: ResultOffload | None = None
    ) -> None:
        self.backend = backend
        self.serializer = serializer
        self.offload = offload or ResultOffload()
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

    # -- one snapshot ----------------------------------------------------------------------
    async def task_result(self, task_id: str) -> TaskResult:
        """The task's :class:`TaskResult` now (finished or not), without waiting.

        Raises:
            TaskNotFoundError: no such task.
            omniq.errors.DeserializationError: its stored value cannot be decoded here.
        """
        [result] = await self.results_of([await self.task(task_id)])
        return result

    async def results_of(self, tasks: Sequence[Task]) -> list[TaskResult]:
        """:class:`TaskResult` of each task, in order; values of successes read in one round
        trip (offloaded ones fetched concurrently)."""
        wanted = [t.id for t in tasks if t.state is TaskState.SUCCESS and t.result_ttl != 0]
        found = await self.backend.get_results(wanted) if wanted else []
        stored = dict(zip(wanted, found, strict=True))
        decoded = await asyncio.gather(*(self._decode(i, s) for i, s in stored.items()))
        values = dict(zip(stored, decoded, strict=True))
        out = []
        for t in tasks:
            value = values.get(t.id)
            if isinstance(value, _Unreadable):  # this task's value alone is lost, not the batch
                out.append(value.snapshot(t, stored.get(t.id)))
            else:
                out.append(_snapshot(t, stored.get(t.id), value))
        return out

    async def _decode(self, task_id: str, stored: StoredResult | None) -> Any:
        if stored is None:
            return None
        try:
            return self.serializer.loads(await self.offload.resolve(task_id, stored.data))
        except (ResultExpiredError, DeserializationError) as exc:  # a gone or damaged object
            return _Unreadable(exc)

    # -- waiting ---------------------------------------------------------------------------
    async def finished(
        self, task_ids: Sequence[str], timeout: float | None
    ) -> AsyncGenerator[list[TaskResult], None]:
        """Yield the tasks of ``task_ids`` (distinct ids) as they finish, a batch per round.

        The first round reads every id, so unknown ids are reported before anything is yielded.

        Args:
            timeout: seconds from the first round; ``None``: no limit; ``0``: one round.

        Raises:
            TaskNotFoundError: an id is unknown (or its task was purged meanwhile).
            ResultTimeoutError: ``timeout`` passed with tasks unfinished (named on the error's
                ``task_ids``).
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pending = list(task_ids)
        poll = _FIRST_POLL
        lent = False
        async with contextlib.AsyncExitStack() as lending:
            while pending:
                tasks = await self.backend.get_tasks(pending)
                done: list[Task] = []
                still: list[Task] = []
                for task_id, task in zip(pending, tasks, strict=True):
                    if task is None:
                        raise TaskNotFoundError(task_id)
                    (done if task.state.is_terminal else still).append(task)
                if done:
                    yield await self.results_of(done)
                if not still:
                    return
                if not lent:  # inside a running task, lend its slot to the awaited tasks
                    await lending.enter_async_context(lending_slot())
                    lent = True
                pending = [t.id for t in still]
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise _timeout(still, timeout)
                await self._wait_any(pending, poll if remaining is None else min(poll, remaining))
                poll = min(poll * 1.5, _MAX_POLL)

    async def wait(self, task_id: str, timeout: float | None) -> Any:
        """Wait up to ``timeout`` seconds (``None``: no limit) and return the task's value.

        Raises: as :meth:`omniq.AsyncTaskQueue.get_result`.
        """
        async with contextlib.aclosing(self.finished([task_id], timeout)) as rounds:
            async for [result] in rounds:
                return result.value_or_raise()
        raise AssertionError("unreachable: finished() yields the task or raises")

    async def values(
        self, task_ids: Sequence[str], timeout: float | None, *, return_exceptions: bool
    ) -> list[Any]:
        """The values of ``task_ids`` in input order (duplicates allowed).

        Without ``return_exceptions``, the first error in input order is raised as soon as it
        is known, i.e. once every task before it has succeeded: the same error waiting for all
        of them would raise, without waiting for the tasks after it.

        Raises: as :meth:`omniq.AsyncTaskQueue.get_results`.
        """
        ids = list(dict.fromkeys(task_ids))
        seen: dict[str, TaskResult] = {}
        cursor = 0  # ids[:cursor] finished and, unless return_exceptions, succeeded
        async with contextlib.aclosing(self.finished(ids, timeout)) as rounds:
            async for batch in rounds:
                seen.update((r.task_id, r) for r in batch)
                while not return_exceptions and cursor < len(ids) and ids[cursor] in seen:
                    seen[ids[cursor]].value_or_raise()
                    cursor += 1
        out: list[Any] = []
        for task_id in task_ids:
            try:
                out.append(seen[task_id].value_or_raise())
            except _VALUE_ERRORS as exc:
                if not return_exceptions:
                    raise
                out.append(exc)
        return out

    async def as_completed(
        self, task_ids: Sequence[str], timeout: float | None
    ) -> AsyncGenerator[TaskResult, None]:
        """Yield one :class:`TaskResult` per distinct id as each task finishes (failures too).

        Tasks seen finished in the same round come by ``finished_at``, then input order.

        Raises:
            TaskNotFoundError: an id is unknown (before anything is yielded).
            ResultTimeoutError: ``timeout`` passed with tasks unfinished.
        """
        ids = list(dict.fromkeys(task_ids))
        order = {task_id: i for i, task_id in enumerate(ids)}
        async with contextlib.aclosing(self.finished(ids, timeout)) as rounds:
            async for batch in rounds:
                batch.sort(key=lambda r: (r.finished_at or 0.0, order[r.task_id]))
                for result in batch:
                    yield result

    # -- wake-ups --------------------------------------------------------------------------
    async def _wait_any(self, task_ids: Collection[str], timeout: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for task_id in task_ids:
            self._waiters.setdefault(task_id, []).append(future)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await future
        finally:
            for task_id in task_ids:
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


class _Unreadable:
    """A stored value that could not be read here: its offloaded object is gone (reads as
    expired) or it cannot be decoded; ``error`` says which and why."""

    def __init__(self, error: ResultExpiredError | DeserializationError) -> None:
        self.error = error

    def snapshot(self, task: Task, stored: StoredResult | None) -> TaskResult:
        gone = isinstance(self.error, ResultExpiredError)
        result = _snapshot(task, None if gone else stored, None)
        result.value_state = ValueState.EXPIRED if gone else ValueState.UNREADABLE
        kind = "ResultExpiredError" if gone else "DeserializationError"
        result.error = ErrorInfo(type=f"omniq.errors.{kind}", message=str(self.error))
        return result


def _snapshot(task: Task, stored: StoredResult | None, value: Any) -> TaskResult:
    if not task.state.is_terminal:
        value_state = ValueState.UNFINISHED
    elif task.state is not TaskState.SUCCESS:
        value_state = ValueState.NO_VALUE
    elif task.result_ttl == 0:
        value_state = ValueState.NOT_STORED
    elif stored is None:
        value_state = ValueState.EXPIRED
    else:
        value_state = ValueState.AVAILABLE
    return TaskResult(
        task_id=task.id,
        state=task.state,
        value=value,
        value_state=value_state,
        error=task.error,
        attempts=task.attempt,
        worker_id=task.worker_id,
        enqueued_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        result_expires_at=stored.expires_at if stored is not None else None,
    )


def _timeout(unfinished: Sequence[Task], timeout: float | None) -> ResultTimeoutError:
    ids = [t.id for t in unfinished]
    if len(unfinished) == 1:
        message = f"task {ids[0]} is still {unfinished[0].state.value} after {timeout} s"
    else:
        shown = ", ".join(ids[:_SHOWN_IDS]) + (", …" if len(ids) > _SHOWN_IDS else "")
        message = f"{len(ids)} tasks are still unfinished after {timeout} s: {shown}"
    return ResultTimeoutError(message, task_ids=ids)

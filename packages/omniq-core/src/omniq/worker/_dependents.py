"""The worker's part in task dependencies and in waiting inside tasks.

- After a terminal outcome is stored, the task's waiting children are settled (released when
  every parent succeeded, cancelled with the reason when one failed or was cancelled) by a loop
  of their own, so settling never delays the exchange of outcomes and claims.
- The janitor settles the children of tasks whose lease expired into ``failed``/``cancelled``,
  and sweeps the waiting tasks now and then, which repairs a settle lost to a crash.
- A running task waiting for other tasks lends its slot (:class:`WorkerSlots`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from omniq._callbacks import Callbacks
from omniq._dependencies import report_settled, settle, settle_dependents
from omniq._events import EventLogger
from omniq.backend import Backend, TaskQuery
from omniq.executors import Executor
from omniq.models import Task, TaskState
from omniq.worker._breaker import CircuitBreaker, CircuitOpenError

__all__ = ["DependencySettling", "WorkerSlots"]

log = logging.getLogger("omniq.worker")

_COALESCE = 0.05
"""Seconds the settle loop waits after a round that found children but changed none."""

_LOOKUP_BATCH = 0.02
"""Seconds the settle loop waits after a round that found no children at all (a child is then
released at most this much later than it could be)."""

_SWEEP_LIMIT = 1000
"""Waiting tasks looked at per sweep (the oldest are settled first by the next sweeps)."""


class WorkerSlots:
    """A running task's view of its worker's slots (see :class:`omniq._context.SlotLender`).

    Args:
        executors: the worker's executors by name.
        executor: the name of the executor running the task.
        default_executor: the executor of tasks that name none.
        wake: makes the worker claim now (called when a slot is lent).
        queues: the queues the worker serves.
    """

    def __init__(
        self,
        executors: dict[str, Executor],
        executor: str,
        default_executor: str,
        wake: Callable[[], None],
        queues: Sequence[str],
    ) -> None:
        self._executors = executors
        self._queues = frozenset(queues)
        self._executor = executors[executor]
        self.default_executor = default_executor
        self._wake = wake

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[None]:
        """While inside, the task's slot is free for another task (the worker may then run
        one task more than its concurrency once the wait ends, until a task finishes)."""
        self._executor.lent += 1
        self._wake()
        try:
            yield
        finally:
            self._executor.lent -= 1

    @contextlib.contextmanager
    def blocking(self) -> Iterator[None]:
        """While inside, the task's slot is held by a sync task blocked waiting for others."""
        self._executor.blocked += 1
        try:
            yield
        finally:
            self._executor.blocked -= 1

    def could_run(self, executor: str | None, queue: str) -> bool:
        """True when this worker serves ``queue`` and hosts ``executor`` (``None``: the
        default) with a slot that no blocked waiter holds: the task runs there sooner or
        later."""
        hosted = self._executors.get(executor or self.default_executor)
        return (
            queue in self._queues and hosted is not None and hosted.concurrency - hosted.blocked > 0
        )


class DependencySettling:
    """Settles the children of the tasks this worker finished (mixed into the worker)."""

    backend: Backend
    worker_id: str
    _events: EventLogger
    callbacks: Callbacks
    _breaker: CircuitBreaker
    _wake: asyncio.Event

    def _init_dependents(self) -> None:
        self._to_settle: list[str] = []  # parents whose children must be settled
        self._settle_wake = asyncio.Event()
        self._sweep_cursor: str | None = None  # where the next sweep of waiting tasks goes on

    def _settle_children_of(self, task_ids: Sequence[str]) -> None:
        """Queue the children of these (terminal) tasks for settling."""
        if task_ids:
            self._to_settle.extend(task_ids)
            self._settle_wake.set()

    def _on_settled(self, changed: list[Task]) -> None:
        """Events and callbacks for children just released or cancelled; claim the released."""
        released = report_settled(
            changed, events=self._events, callbacks=self.callbacks, worker_id=self.worker_id
        )
        if released:
            self._wake.set()

    async def _settle_loop(self) -> None:
        """Settle queued parents' children, one batch at a time, keeping them on failure."""
        failures = 0
        while True:
            if not self._to_settle:
                self._settle_wake.clear()
                await self._settle_wake.wait()
            batch, self._to_settle = self._to_settle, []
            try:
                children, changed = await self._breaker.call(
                    functools.partial(settle_dependents, self.backend, batch, self._on_settled)
                )
                failures = 0
                if not children:
                    # Most finished tasks have no children: look for them in batches, not
                    # after every exchange round (one lookup per _LOOKUP_BATCH seconds at most).
                    await asyncio.sleep(_LOOKUP_BATCH)
                elif not changed:
                    # A fan-in child whose other parents are still running: gather more parents
                    # before looking again, instead of reading all its parents per outcome.
                    await asyncio.sleep(_COALESCE)
            except Exception as exc:  # the janitor's sweep repairs what is never settled
                self._to_settle[:0] = batch
                failures += 1
                if not isinstance(exc, CircuitOpenError):
                    log.warning("settling dependents failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def _settle_now(self) -> None:
        """At stop: one last try for what is queued (never raises)."""
        batch, self._to_settle = self._to_settle, []
        if batch:
            with contextlib.suppress(Exception):
                await settle_dependents(self.backend, batch, self._on_settled)

    async def _sweep_waiting(self) -> None:
        """Janitor: settle the waiting tasks whose parents have all finished (repairs settles
        lost to a crash between storing a parent's outcome and settling its children).

        One page of ``_SWEEP_LIMIT`` waiting tasks per sweep, newest first, the next sweep going
        on from where this one stopped and starting over after the oldest: however many tasks
        legitimately wait, every one is looked at within ``waiting / _SWEEP_LIMIT`` sweeps."""
        waiting = await self.backend.list_tasks(
            TaskQuery(states=(TaskState.WAITING,), limit=_SWEEP_LIMIT, before_id=self._sweep_cursor)
        )
        self._sweep_cursor = waiting[-1].id if len(waiting) == _SWEEP_LIMIT else None
        if waiting:
            await settle(self.backend, [t.id for t in waiting], self._on_settled)

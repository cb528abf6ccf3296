"""Blocking waits inside sync tasks: refuse the ones that could never end.

A sync task that blocks waiting for other tasks keeps its slot (its thread cannot be given
back). The wait can only end if some worker will run the awaited tasks: this worker, when it
serves their queue and hosts their executor with at least one slot that is not held by a task
blocked in such a wait, or another live worker serving that queue and hosting that executor.
Otherwise every slot that could run them is held by waiters: a deadlock, reported at once with
:class:`~omniq.errors.WaitDeadlockError` instead of a wait that never ends. (Celery refuses
every wait inside a task, ``disable_sync_subtasks``; this refuses only those that cannot end.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from omniq._context import SlotLender, current_task
from omniq.errors import WaitDeadlockError
from omniq.models import Task, TaskState, WorkerInfo, WorkerState

__all__ = ["sync_wait"]

ReadTasks = Callable[[list[str]], list[Task | None]]
LiveWorkers = Callable[[], list[WorkerInfo]]


@contextlib.contextmanager
def sync_wait(
    task_ids: Sequence[str], read_tasks: ReadTasks, live_workers: LiveWorkers
) -> Iterator[None]:
    """Around a blocking wait for ``task_ids``: inside a running sync task, count its slot as
    held by a waiter for the wait's duration, and refuse the wait if it could never end.

    Raises:
        WaitDeadlockError: naming the awaited task no worker could run.
    """
    ctx = current_task()
    if ctx is None or ctx.slots is None or isinstance(task_ids, str):
        yield
        return
    slots = ctx.slots
    with slots.blocking():
        stuck = [
            t
            for t in read_tasks(list(dict.fromkeys(task_ids)))
            if t is not None  # unknown ids: the wait itself says so
            and not (t.state.is_terminal or t.state is TaskState.RUNNING)
            and not slots.could_run(t.executor, t.queue)
        ]
        if stuck:
            others = [w for w in live_workers() if w.id != ctx.worker_id]
            for awaited in stuck:
                if not any(_serves(w, awaited, slots) for w in others):
                    raise WaitDeadlockError(
                        f"task {ctx.task_id} blocks waiting for task {awaited.id} "
                        f"({awaited.state.value}, queue {awaited.queue!r}), but every "
                        f"{awaited.executor or slots.default_executor} slot of its worker "
                        f"{ctx.worker_id} that could run it is held by a waiting task, and no "
                        "other live worker serves that queue, so the wait could not end. Make "
                        "the waiting task `async def` (an awaiting task lends its slot), give "
                        "the workers more slots, or express the wait as a dependency "
                        "(depends_on, chain, chord)"
                    )
        yield


def _serves(worker: WorkerInfo, task: Task, slots: SlotLender) -> bool:
    """Whether ``worker`` serves ``task``'s queue and hosts its executor (a task naming none
    runs on any worker's default executor)."""
    if worker.state is not WorkerState.RUNNING or task.queue not in worker.queues:
        return False
    return task.executor is None or any(e.name == task.executor for e in worker.executors)

"""The engine's side of task dependencies: checking new edges, releasing and cancelling children.

A task with parents is stored ``waiting``. Whoever changes a parent's fate settles its children
through two backend primitives, :meth:`~omniq.backend.Backend.dependents` and
:meth:`~omniq.backend.Backend.settle_waiting` (one atomic, conditional transition per child, so
each child is released or cancelled exactly once however many workers race):

- the producer, right after enqueueing waiting tasks (their parents may already be finished);
- the worker, after storing a terminal outcome (success releases, failure or cancel cascades);
- a client's ``cancel``;
- the janitor, for tasks whose lease expired into ``failed``/``cancelled``, and in a sweep over
  every waiting task, which repairs a settle lost to a crash between "outcome stored" and
  "children settled".

The order "store the edge, then read the parent" (producer) against "store the outcome, then
read the edges" (worker) guarantees that at least one side sees the other, so no child is left
waiting for a parent that already finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from omniq._callbacks import Callbacks
from omniq._events import EventLogger
from omniq._results import ResultReader
from omniq.backend import Backend
from omniq.errors import (
    DependencyError,
    ResultExpiredError,
    ResultNotStoredError,
)
from omniq.models import EventType, Task, TaskState

__all__ = ["check_parents", "parent_values", "report_settled", "settle", "settle_dependents"]

OnSettled = Callable[[list[Task]], None]


async def check_parents(backend: Backend, tasks: Sequence[Task]) -> None:
    """Refuse a batch whose ``depends_on`` names a task that neither exists nor comes earlier in
    the batch, or a task that depends on itself.

    Raises:
        DependencyError: naming the task and the unknown parent ids.
    """
    earlier: set[str] = set()
    outside: dict[str, None] = {}
    for task in tasks:
        if task.id in task.depends_on:
            raise DependencyError(f"task {task.id} ({task.func}) cannot depend on itself")
        outside.update((p, None) for p in task.depends_on if p not in earlier)
        earlier.add(task.id)
    if not outside:
        return
    found = await backend.get_tasks(list(outside))
    missing = [p for p, t in zip(outside, found, strict=True) if t is None]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise DependencyError(
            f"depends_on names {len(missing)} unknown task id(s): {shown} "
            "(never enqueued, or purged by retention); nothing was enqueued"
        )


def report_settled(
    changed: Sequence[Task],
    *,
    events: EventLogger,
    callbacks: Callbacks,
    worker_id: str | None = None,
) -> bool:
    """Record what a settle did: a ``ready`` event per released task, a ``cancelled`` event
    (with the reason) and the ``on_cancel``/``on_complete`` callbacks per cancelled one.

    Returns:
        True when a task was released (the caller's worker may claim it now).
    """
    released = False
    for task in changed:
        if task.state is not TaskState.CANCELLED:
            released = True
            events.record(task, EventType.READY, worker_id=worker_id)
            continue
        detail = task.error.message if task.error else ""
        events.record(
            task, EventType.CANCELLED, worker_id=worker_id, detail=detail, error=task.error
        )
        if callbacks.active:
            callbacks.spawn(
                task.id,
                callbacks.contexts(task, task.state, worker_id=worker_id, error=task.error),
            )
    return released


async def settle(backend: Backend, task_ids: Iterable[str], on_settled: OnSettled) -> int:
    """Settle these waiting tasks, then cascade through the children of any it cancelled.

    ``on_settled`` receives each batch of tasks that changed (released or cancelled), for
    events and wake-ups. Returns how many changed.
    """
    ids = list(dict.fromkeys(task_ids))
    count = 0
    while ids:
        changed = await backend.settle_waiting(ids)
        if changed:
            count += len(changed)
            on_settled(changed)
        cancelled = [t.id for t in changed if t.state is TaskState.CANCELLED]
        ids = await backend.dependents(cancelled) if cancelled else []
    return count


async def settle_dependents(
    backend: Backend, parent_ids: Iterable[str], on_settled: OnSettled
) -> tuple[int, int]:
    """Settle the waiting children of tasks that just reached a terminal state (and, through
    :func:`settle`, the descendants of every child it cancels).

    Returns:
        ``(children, changed)``: the waiting children found, and how many tasks changed.
    """
    parents = list(dict.fromkeys(parent_ids))
    children = await backend.dependents(parents) if parents else []
    if not children:
        return 0, 0
    return len(children), await settle(backend, children, on_settled)


async def parent_values(reader: ResultReader, task: Task) -> Any:
    """The first positional argument a task with ``pass_results`` receives: the list of its
    parents' return values in ``pass_results`` order, or the one value with ``pass_single``.
    Values are read as every result is (:meth:`ResultReader.results_of`: one batched read,
    offloaded ones fetched).

    Raises:
        DependencyError: ``pass_results`` names a task that is not a succeeded parent.
        ResultNotStoredError: a parent was enqueued with ``result_ttl=0``.
        ResultExpiredError: a parent's result is gone (``result_ttl`` passed, or purged).
        omniq.errors.DeserializationError: a parent's value cannot be decoded here.
    """
    ids = list(task.pass_results or ())
    parents = await reader.backend.get_tasks(ids) if ids else []
    succeeded: list[Task] = []
    for parent_id, parent in zip(ids, parents, strict=True):
        if parent is None or parent.state is not TaskState.SUCCESS:
            state = "missing" if parent is None else parent.state.value
            raise DependencyError(
                f"task {task.id}: the result of parent {parent_id} is passed to it but that "
                f"task is {state}, not success"
            )
        succeeded.append(parent)
    values = []
    for result in await reader.results_of(succeeded):
        try:
            values.append(result.value_or_raise())
        except (ResultNotStoredError, ResultExpiredError) as exc:  # say who needed it
            raise type(exc)(
                f"{exc}; task {task.id} receives that value, so it cannot run"
            ) from None
    return values[0] if task.pass_single and len(values) == 1 else values

"""Conformance of task dependencies: the backend primitives (``dependents``,
``settle_waiting``) and the graphs seen through both clients (DESIGN §4 invariant 6)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from omniq._canvas import Graph, chain, chord, group, signature
from omniq.backend import Backend, Outcome
from omniq.errors import DependencyError, TaskCancelledError
from omniq.models import ErrorInfo, Task, TaskState
from omniq.testing import tasks
from omniq.testing._fixtures import MakeTask
from omniq.testing._support import claim

__all__ = ["DependencyConformance"]

_FAILED_PARENT = "omniq.errors.DependencyFailedError"


def _waiting(make: MakeTask, *parents: Task, **fields: Any) -> Task:
    return make(state=TaskState.WAITING, depends_on=tuple(p.id for p in parents), **fields)


async def _finish(backend: Backend, task: Task, state: TaskState) -> None:
    """Claim what is due (the test's parents) and end ``task`` with ``state``; the others
    stay running."""
    await claim(backend, limit=100)
    [claimed] = await backend.get_tasks([task.id])
    assert claimed is not None and claimed.state is TaskState.RUNNING
    error = (
        None if state is TaskState.SUCCESS else ErrorInfo(type="builtins.ValueError", message="x")
    )
    await backend.finish(
        [
            Outcome(
                task_id=task.id,
                attempt=claimed.attempt,
                state=state,
                finished_at=backend.clock.now(),
                result=b"\xc0" if state is TaskState.SUCCESS else None,
                error=error,
            )
        ]
    )


class DependencyConformance:
    """Dependency release and cancellation, exactly once, on every backend."""

    # -- the primitives ----------------------------------------------------------------------
    @pytest.mark.asyncio
    async def test_a_waiting_task_keeps_its_graph_fields_and_is_never_claimed(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        parent = omniq_make_task()
        child = _waiting(omniq_make_task, parent, pass_results=(parent.id,), pass_single=True)
        await omniq_backend.enqueue([parent, child])
        [stored] = await omniq_backend.get_tasks([child.id])
        assert stored is not None and stored.state is TaskState.WAITING
        assert (stored.depends_on, stored.pass_results, stored.pass_single) == (
            (parent.id,),
            (parent.id,),
            True,
        )
        assert [t.id for t in await claim(omniq_backend, limit=10)] == [parent.id]
        assert await omniq_backend.dependents([parent.id]) == [child.id]
        assert await omniq_backend.dependents([child.id]) == []

    @pytest.mark.asyncio
    async def test_a_child_is_released_once_when_every_parent_succeeded(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        first, second = omniq_make_task(), omniq_make_task()
        child = _waiting(omniq_make_task, first, second)
        await omniq_backend.enqueue([first, second, child])
        await _finish(omniq_backend, first, TaskState.SUCCESS)
        assert await omniq_backend.settle_waiting([child.id]) == []  # second still unfinished
        await _finish(omniq_backend, second, TaskState.SUCCESS)
        [released] = await omniq_backend.settle_waiting([child.id])
        assert released.id == child.id and released.state is TaskState.PENDING
        assert await omniq_backend.settle_waiting([child.id]) == []
        assert await omniq_backend.dependents([first.id, second.id]) == []
        assert [t.id for t in await claim(omniq_backend)] == [child.id]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("end", [TaskState.FAILED, TaskState.CANCELLED])
    async def test_a_failed_or_cancelled_parent_cancels_the_child_with_the_reason(
        self, omniq_backend: Backend, omniq_make_task: MakeTask, end: TaskState
    ) -> None:
        parent, other = omniq_make_task(), omniq_make_task()
        child = _waiting(omniq_make_task, other, parent)
        await omniq_backend.enqueue([parent, other, child])
        if end is TaskState.FAILED:
            await _finish(omniq_backend, parent, TaskState.FAILED)
        else:
            await omniq_backend.cancel([parent.id], error=ErrorInfo(type="x", message="stop"))
        [cancelled] = await omniq_backend.settle_waiting([child.id])
        assert cancelled.state is TaskState.CANCELLED
        assert cancelled.error is not None and cancelled.error.type == _FAILED_PARENT
        assert parent.id in cancelled.error.message
        assert cancelled.finished_at is not None
        [stored] = await omniq_backend.get_tasks([child.id])
        assert stored is not None and stored.state is TaskState.CANCELLED

    @pytest.mark.asyncio
    async def test_a_missing_parent_cancels_and_a_delayed_child_becomes_scheduled(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        orphan = omniq_make_task(state=TaskState.WAITING, depends_on=("no-such-task",))
        parent = omniq_make_task()
        later = omniq_backend.clock.now() + 3600
        delayed = _waiting(omniq_make_task, parent, run_at=later)
        await omniq_backend.enqueue([orphan, parent, delayed])
        [gone] = await omniq_backend.settle_waiting([orphan.id])
        assert (
            gone.state is TaskState.CANCELLED
            and "no-such-task" in (gone.error or ErrorInfo(type="", message="")).message
        )
        await _finish(omniq_backend, parent, TaskState.SUCCESS)
        [due_later] = await omniq_backend.settle_waiting([delayed.id])
        assert due_later.state is TaskState.SCHEDULED and due_later.run_at == later
        assert await claim(omniq_backend) == []

    @pytest.mark.asyncio
    async def test_cancel_of_a_waiting_task_wins_once_against_a_release(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        parent = omniq_make_task()
        child = _waiting(omniq_make_task, parent)
        await omniq_backend.enqueue([parent, child])
        [cancelled] = await omniq_backend.cancel(
            [child.id], error=ErrorInfo(type="x", message="no")
        )
        assert cancelled.state is TaskState.CANCELLED
        await _finish(omniq_backend, parent, TaskState.SUCCESS)
        assert await omniq_backend.settle_waiting([child.id]) == []
        [stored] = await omniq_backend.get_tasks([child.id])
        assert stored is not None and stored.state is TaskState.CANCELLED

    @pytest.mark.asyncio
    async def test_concurrent_settlers_release_each_child_exactly_once(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        parents = [omniq_make_task() for _ in range(3)]
        children = [_waiting(omniq_make_task, *parents) for _ in range(30)]
        await omniq_backend.enqueue([*parents, *children])
        claimed = await claim(omniq_backend, limit=10)
        await omniq_backend.finish(
            [
                Outcome(task_id=t.id, attempt=t.attempt, state=TaskState.SUCCESS, finished_at=0.0)
                for t in claimed
            ]
        )
        ids = [c.id for c in children]
        rounds = await asyncio.gather(
            *(omniq_backend.settle_waiting(ids[k:] + ids[:k]) for k in range(0, 30, 5))
        )
        released = [t.id for batch in rounds for t in batch]
        assert sorted(released) == sorted(ids)
        assert {t.id for t in await claim(omniq_backend, limit=100)} == set(ids)

    # -- through the clients -------------------------------------------------------------------
    @pytest.mark.asyncio
    async def test_chain_passes_each_value_and_a_chord_gets_the_list_in_order(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client()
        links = await client.call(
            "enqueue_graph", chain(signature(tasks.add, 1, 2), signature(tasks.add, 10))
        )
        assert await client.call("get_result", links, timeout=20) == 13
        fan = await client.call(
            "enqueue_graph",
            chord(
                group(signature(tasks.echo, i) for i in range(12)), signature(tasks.collect, "end")
            ),
        )
        assert await client.call("get_result", fan, timeout=20) == [*range(12), "end"]

    @pytest.mark.asyncio
    async def test_empty_and_one_member_groups(self, omniq_make_client: Callable[..., Any]) -> None:
        client = await omniq_make_client()
        empty = await client.call("enqueue_graph", group())
        assert empty.ids == () and await client.call("get_result", empty, timeout=0) == []
        callback = await client.call("enqueue_graph", chord([], signature(tasks.collect)))
        assert await client.call("get_result", callback, timeout=20) == []
        single = await client.call(
            "enqueue_graph", chord([signature(tasks.echo, "only")], signature(tasks.collect))
        )
        assert await client.call("get_result", single, timeout=20) == ["only"]
        members = await client.call("enqueue_graph", group(signature(tasks.echo, 7)))
        assert await client.call("get_result", members, timeout=20) == [7]

    @pytest.mark.asyncio
    async def test_dependencies_on_finished_unknown_and_retried_parents(
        self, omniq_make_client: Callable[..., Any], tmp_path: Any
    ) -> None:
        client = await omniq_make_client()
        done = await client.call("enqueue", tasks.echo, args=(1,))
        await client.call("get_result", done, timeout=20)
        after_done = await client.call("enqueue", tasks.echo, args=(2,), depends_on=[done])
        assert await client.call("get_result", after_done, timeout=20) == 2
        with pytest.raises(DependencyError, match="no-such-id"):
            await client.call("enqueue", tasks.echo, args=(3,), depends_on=["no-such-id"])
        flaky = await client.call(
            "enqueue", tasks.fail_times, args=(str(tmp_path / "runs"), 2), retries=3
        )
        child = await client.call("enqueue", tasks.echo, args=(4,), depends_on=[flaky])
        assert await client.call("get_result", child, timeout=20) == 4
        assert (await client.call("get_task", flaky)).attempt == 3

    @pytest.mark.asyncio
    async def test_a_failure_cancels_every_descendant_with_the_reason(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        client = await omniq_make_client()
        cancelled: list[str] = []
        client.queue.on("cancel", lambda ctx: cancelled.append(ctx.task_id))
        run = await client.call(
            "enqueue_graph",
            chain(
                signature(tasks.fail, "broken", immutable=True),
                group(signature(tasks.echo), signature(tasks.echo)),
                signature(tasks.collect),
            ),
        )
        last = run.ids[-1]
        with pytest.raises(TaskCancelledError, match="parent task"):
            await client.call("get_result", last, timeout=20)
        for task_id in run.ids[1:]:
            task = await client.call("get_task", task_id)
            assert task.state is TaskState.CANCELLED
            assert task.error.type == _FAILED_PARENT
        for _ in range(200):  # on_cancel runs in the background, after the store
            if len(cancelled) == 3:
                break
            await asyncio.sleep(0.05)
        assert sorted(cancelled) == sorted(run.ids[1:])  # each descendant's on_cancel, once

    @pytest.mark.asyncio
    async def test_cancelling_a_parent_cancels_the_graph_below_it(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        producer = await omniq_make_client(workers=0)
        graph = Graph()
        graph.add("root", signature(tasks.echo, 0))
        graph.add("left", signature(tasks.echo, 1), after=["root"])
        graph.add("right", signature(tasks.echo, 2), after=["root"])
        graph.add("join", signature(tasks.collect), after=["left", "right"], pass_results=True)
        run = await producer.call("enqueue_graph", graph)
        assert await producer.call("cancel", run.names["root"]) is True
        for name in ("left", "right", "join"):
            task = await producer.call("get_task", run.names[name])
            assert task.state is TaskState.CANCELLED, name

    @pytest.mark.asyncio
    async def test_fan_in_under_concurrent_workers_releases_the_aggregate_once(
        self, omniq_make_client: Callable[..., Any]
    ) -> None:
        producer = await omniq_make_client(workers=0)
        for _ in range(3):
            await omniq_make_client()
        run = await producer.call(
            "enqueue_graph",
            chord(group(signature(tasks.add, i) for i in range(60)), signature(tasks.collect)),
        )
        assert await producer.call("get_result", run, timeout=60) == list(range(60))
        [aggregate] = run.result_ids
        task = await producer.call("get_task", aggregate)
        assert task.state is TaskState.SUCCESS and task.attempt == 1

    @pytest.mark.asyncio
    async def test_cancelling_a_running_parent_cancels_its_dependents_at_once(
        self, omniq_make_client: Callable[..., Any], tmp_path: Any
    ) -> None:
        client = await omniq_make_client()
        marker = tmp_path / "started"
        run = await client.call(
            "enqueue_graph",
            chain(
                signature(tasks.hold, str(marker)),
                signature(tasks.echo, 1, immutable=True),
                signature(tasks.echo, 2, immutable=True),
            ),
        )
        for _ in range(400):
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        assert marker.exists(), "the parent never started"
        assert await client.call("cancel", run) is True  # the whole graph
        for task_id in run.ids[1:]:  # before the parent's worker even learns of the request
            task = await client.call("get_task", task_id)
            assert task.state is TaskState.CANCELLED, task
            assert task.error.type == _FAILED_PARENT
        with pytest.raises(TaskCancelledError):
            await client.call("get_result", run.ids[0], timeout=30)

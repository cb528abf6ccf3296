"""Conformance of lifecycle callbacks, through both clients with an embedded worker: the hooks
fire once the outcome is stored, in layer order (global → queue → task), and a callback that
raises or hangs changes nothing but a ``callback_error`` event."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omniq import _middleware
from omniq._middleware import CallbackContext, Middleware
from omniq.backend import Backend
from omniq.errors import TaskCancelledError, TaskFailedError
from omniq.models import EventType, TaskState
from omniq.plugins import hookimpl, plugin_manager
from omniq.testing import tasks

__all__ = ["CallbackConformance", "CallbackLog"]

_ALL = ("on_enqueue", "on_start", "on_success", "on_failure", "on_retry", "on_cancel")


class CallbackLog:
    """Every callback call, as ``(layer, context)``, across threads."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, CallbackContext]] = []
        self._lock = threading.Lock()

    def add(self, layer: str, ctx: CallbackContext) -> None:
        with self._lock:
            self.calls.append((layer, ctx))

    def of(self, task_id: str) -> list[tuple[str, str]]:
        """``(layer, hook)`` of one task's calls, in call order."""
        return [(layer, ctx.hook) for layer, ctx in self.calls if ctx.task_id == task_id]

    def contexts(self, task_id: str, layer: str) -> list[CallbackContext]:
        return [ctx for name, ctx in self.calls if ctx.task_id == task_id and name == layer]


class Recorder(Middleware):
    """Sync hooks recording every call under ``layer``."""

    def __init__(self, layer: str, log: CallbackLog) -> None:
        self.layer, self.log = layer, log

    def on_enqueue(self, ctx: CallbackContext) -> None:
        self.log.add(self.layer, ctx)

    on_start = on_success = on_failure = on_retry = on_cancel = on_complete = on_enqueue


class AsyncRecorder(Recorder):
    """The same, with ``async def`` hooks."""

    async def on_enqueue(self, ctx: CallbackContext) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.log.add(self.layer, ctx)

    on_start = on_success = on_failure = on_retry = on_cancel = on_complete = on_enqueue  # type: ignore[assignment]


class Raiser(Middleware):
    """Raises from every hook (sync and async ones)."""

    def on_enqueue(self, ctx: CallbackContext) -> None:
        raise RuntimeError(f"{ctx.hook} broke")

    on_start = on_success = on_enqueue

    async def on_complete(self, ctx: CallbackContext) -> None:
        raise RuntimeError(f"{ctx.hook} broke")


class Hanger(Middleware):
    """An async ``on_success`` that never returns."""

    async def on_success(self, ctx: CallbackContext) -> None:
        await asyncio.Event().wait()


class _GlobalPlugin:
    def __init__(self, middleware: object) -> None:
        self.middleware = middleware

    @hookimpl
    def omniq_add_middleware(self) -> list[Any]:
        return [self.middleware]


async def _wait_for_file(path: Path) -> None:
    for _ in range(2000):  # up to 20 s, in case the worker is slow to start the task
        if os.path.exists(path):  # noqa: ASYNC240 - a stat, in a test
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


class CallbackConformance:
    """Lifecycle callbacks, end to end, on every backend and both clients."""

    @pytest.fixture
    def omniq_callback_log(self) -> Iterator[CallbackLog]:
        """A log with a global middleware (a pluggy plugin) recording into it; the plugin and
        every per-task callback registered meanwhile are removed at teardown."""
        log = CallbackLog()
        plugin = _GlobalPlugin(Recorder("global", log))
        saved = dict(_middleware._registry)
        plugin_manager().register(plugin)
        try:
            yield log
        finally:
            plugin_manager().unregister(plugin)
            _middleware._registry.clear()
            _middleware._registry.update(saved)

    @pytest.mark.asyncio
    async def test_callbacks_fire_in_layer_order_after_success(
        self, omniq_make_client: Callable[..., Any], omniq_callback_log: CallbackLog
    ) -> None:
        log = omniq_callback_log
        client = await omniq_make_client()
        client.queue.add_middleware(AsyncRecorder("queue", log))
        task_layer = {hook: functools.partial(log.add, "task") for hook in (*_ALL, "on_complete")}
        client.queue.task(**task_layer)(tasks.echo)
        task_id = await client.call("enqueue", tasks.echo, args=("v",))
        assert await client.call("get_result", task_id, timeout=20) == "v"
        await client.close()  # waits for the callbacks still running
        layers = ("global", "queue", "task")
        hooks = ("on_enqueue", "on_start", "on_success", "on_complete")
        assert log.of(task_id) == [(layer, hook) for hook in hooks for layer in layers]
        success, complete = log.contexts(task_id, "task")[2:]
        assert success.value == "v" and success.state is TaskState.SUCCESS
        assert success.duration is not None and success.duration >= 0
        assert success.worker_id is not None and success.attempt == 1
        assert complete.state is TaskState.SUCCESS and complete.value == "v"
        [enqueued] = [c for c in log.contexts(task_id, "global") if c.hook == "on_enqueue"]
        assert enqueued.worker_id is None and enqueued.state is TaskState.PENDING

    @pytest.mark.asyncio
    async def test_retries_fire_on_retry_then_on_failure_once(
        self, omniq_make_client: Callable[..., Any], omniq_callback_log: CallbackLog
    ) -> None:
        log = omniq_callback_log
        client = await omniq_make_client()
        client.queue.on("retry", functools.partial(log.add, "queue"))
        client.queue.on("on_failure", functools.partial(log.add, "queue"))
        client.queue.on("complete", functools.partial(log.add, "queue"))
        task_id = await client.call("enqueue", tasks.fail, args=("kaputt",), retries=1)
        with pytest.raises(TaskFailedError):
            await client.call("get_result", task_id, timeout=20)
        await client.close()
        assert log.of(task_id) == [
            ("global", "on_enqueue"),
            ("global", "on_start"),
            ("global", "on_retry"),
            ("queue", "on_retry"),
            ("global", "on_start"),
            ("global", "on_failure"),
            ("queue", "on_failure"),
            ("global", "on_complete"),
            ("queue", "on_complete"),
        ]
        retry, failure, complete = log.contexts(task_id, "queue")
        assert (retry.attempt, retry.state, failure.attempt) == (1, TaskState.SCHEDULED, 2)
        assert retry.retry_at is not None and failure.retry_at is None
        assert retry.error is not None and retry.error.message == "kaputt"
        assert isinstance(failure.exception, ValueError)  # raised in this very process
        assert failure.state is complete.state is TaskState.FAILED

    @pytest.mark.asyncio
    async def test_cancel_fires_on_cancel_where_the_task_ends(
        self,
        omniq_make_client: Callable[..., Any],
        omniq_callback_log: CallbackLog,
        tmp_path: Path,
    ) -> None:
        log = omniq_callback_log
        producer = await omniq_make_client(workers=0)
        queued = await producer.call("enqueue", tasks.echo, args=("never",))
        assert await producer.call("cancel", queued) is True
        assert log.of(queued) == [
            ("global", "on_enqueue"),
            ("global", "on_cancel"),
            ("global", "on_complete"),
        ]
        [cancelled] = log.contexts(queued, "global")[1:2]
        assert cancelled.worker_id is None and cancelled.state is TaskState.CANCELLED
        worker = await omniq_make_client(lease_seconds=1.5)
        marker = tmp_path / "started"
        running = await worker.call("enqueue", tasks.hold, args=(str(marker),))
        await _wait_for_file(marker)
        assert await worker.call("cancel", running) is True
        with pytest.raises(TaskCancelledError):
            await worker.call("get_result", running, timeout=20)
        await worker.close()
        assert log.of(running) == [
            ("global", "on_enqueue"),
            ("global", "on_start"),
            ("global", "on_cancel"),
            ("global", "on_complete"),
        ]
        assert log.contexts(running, "global")[2].worker_id is not None

    @pytest.mark.asyncio
    async def test_a_raising_or_hanging_callback_changes_nothing_but_an_event(
        self,
        omniq_make_client: Callable[..., Any],
        omniq_callback_log: CallbackLog,
        omniq_backend: Backend,
    ) -> None:
        log = omniq_callback_log
        client = await omniq_make_client(callback_timeout=0.2)
        client.queue.add_middleware(Raiser())
        client.queue.add_middleware(Hanger())
        client.queue.add_middleware(Recorder("after", log))
        first = await client.call("enqueue", tasks.echo, args=(1,))
        assert await client.call("get_result", first, timeout=20) == 1
        second = await client.call("enqueue", tasks.echo, args=(2,))  # the worker still serves
        assert await client.call("get_result", second, timeout=20) == 2
        await client.close()
        hooks = ("on_enqueue", "on_start", "on_success", "on_complete")
        for task_id in (first, second):
            assert [h for layer, h in log.of(task_id) if layer == "after"] == list(hooks)
            [task] = await omniq_backend.get_tasks([task_id])
            assert task is not None and task.state is TaskState.SUCCESS
            events = await omniq_backend.list_events(task_id=task_id, limit=100)
            errors = sorted(e.detail for e in events if e.type is EventType.CALLBACK_ERROR)
            assert len(errors) == 5, errors
            assert [d.split()[0] for d in errors] == [
                "on_complete",
                "on_enqueue",
                "on_start",
                "on_success",
                "on_success",
            ]
            assert "RuntimeError: on_complete broke" in errors[0]
            assert any("did not return within 0.2 s" in d for d in errors)

"""Lifecycle callbacks on a real SQLite file: validation, ``.options`` copies, the sync client's
decorator form, and hooks of outcomes reached outside a run (a dead worker's task)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import e2e_tasks
import pytest

from omniq import AsyncTaskQueue, CallbackContext, Middleware, TaskQueue, TaskState
from omniq import _middleware as registry
from omniq._callbacks import Callbacks
from omniq._events import EventLogger
from omniq._setup import create_backend
from omniq.clock import ManualClock
from omniq.config import Settings, load_settings
from omniq.errors import ConfigError
from omniq.plugins import hookimpl, plugin_manager
from omniq.testing import tasks


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    saved = dict(registry._registry)
    yield
    registry._registry.clear()
    registry._registry.update(saved)


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, CallbackContext]] = []
        self._lock = threading.Lock()

    def recorder(self, label: str) -> Any:
        def record(ctx: CallbackContext) -> None:
            with self._lock:
                self.seen.append((label, ctx.hook, ctx))

        return record

    def of(self, task_id: str) -> list[tuple[str, str]]:
        return [(label, hook) for label, hook, ctx in self.seen if ctx.task_id == task_id]


def test_bad_callbacks_are_refused_naming_what_is_wrong(settings: Settings) -> None:
    queue = AsyncTaskQueue(settings=settings, workers=0)
    with pytest.raises(ConfigError, match=r"unknown callback hook 'succes'.*success"):
        queue.on("succes", print)
    with pytest.raises(TypeError, match="must be callable"):
        queue.on("success", "print")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="implements none of the hooks"):
        queue.add_middleware(object())
    with pytest.raises(TypeError, match="implements none of the hooks"):
        queue.add_middleware(Middleware())  # only the base class's no-ops
    with pytest.raises(TypeError, match="on_failure must be a callable"):
        queue.task(on_failure=[print, 42])(e2e_tasks.add)  # type: ignore[list-item]


def test_global_objects_without_hooks_are_ignored() -> None:
    class Sink:  # an event sink for someone else: no on_* method
        def write(self, event: object) -> None: ...

    class Plugin:
        @hookimpl
        def omniq_add_middleware(self) -> list[Any]:
            return [Sink()]

    plugin = Plugin()
    plugin_manager().register(plugin)
    try:
        callbacks = Callbacks.from_plugins(events=EventLogger(create_backend("memory://x")))
    finally:
        plugin_manager().unregister(plugin)
    assert callbacks._hooks == {}  # nothing of the global layer


def test_options_copies_replace_the_hooks_they_name_for_their_tasks_only(
    settings: Settings,
) -> None:
    calls = Calls()
    with TaskQueue(settings=settings) as queue:
        add = queue.task(
            on_success=calls.recorder("base-success"), on_complete=calls.recorder("base-complete")
        )(e2e_tasks.add)
        loud = add.options(on_success=[calls.recorder("loud-1"), calls.recorder("loud-2")])
        later = loud.options(priority=0)  # an options copy of a copy keeps its callbacks
        plain_id, loud_id, later_id = add.enqueue(1, 2), loud.enqueue(3, 4), later.enqueue(5, 6)
        assert [queue.get_result(i, timeout=10) for i in (plain_id, loud_id, later_id)] == [
            3,
            7,
            11,
        ]
        assert "omniq-callbacks" not in queue.get_task(plain_id).headers
        assert queue.get_task(loud_id).headers["omniq-callbacks"].startswith("e2e_tasks:add#")
    assert calls.of(plain_id) == [("base-success", "on_success"), ("base-complete", "on_complete")]
    for task_id in (loud_id, later_id):
        assert calls.of(task_id) == [
            ("loud-1", "on_success"),
            ("loud-2", "on_success"),
            ("base-complete", "on_complete"),
        ]


def test_the_sync_client_takes_callbacks_as_decorators(settings: Settings) -> None:
    calls = Calls()
    with TaskQueue(settings=settings) as queue:

        @queue.on("failure")
        def failed(ctx: CallbackContext) -> None:
            calls.recorder("queue")(ctx)

        task_id = queue.enqueue(tasks.fail, args=("no",), retries=0)
        with pytest.raises(Exception, match="no"):
            queue.get_result(task_id, timeout=10)
    [(label, hook, ctx)] = calls.seen
    assert (label, hook, ctx.state) == ("queue", "on_failure", TaskState.FAILED)
    assert ctx.error is not None and ctx.error.message == "no"


async def test_a_dead_workers_last_run_fires_on_failure_in_the_worker_that_recovers_it(
    db_url: str,
) -> None:
    clock = ManualClock(start=dt.datetime.now().timestamp())
    settings = load_settings({}, storage_url=db_url, lease_seconds=1.0, poll_interval=0.05)
    calls = Calls()
    async with AsyncTaskQueue(settings=settings, workers=0, clock=clock) as producer:
        task_id = await producer.enqueue(e2e_tasks.add, args=(1, 2), retries=0)
        [claimed] = await producer.backend.claim(
            queues=["default"], worker_id="dead", limit=1, lease=1.0
        )
        assert claimed.id == task_id
    clock.advance(5)  # the dead worker's lease is long gone
    queue = AsyncTaskQueue(settings=settings, clock=clock)
    queue.on("failure", calls.recorder("queue"))
    queue.on("complete", calls.recorder("queue"))
    async with queue:
        with pytest.raises(Exception, match=r"WorkerLostError|stopped heartbeating"):
            await queue.get_result(task_id, timeout=20)
    assert calls.of(task_id) == [("queue", "on_failure"), ("queue", "on_complete")]
    ctx = calls.seen[0][2]
    assert ctx.error is not None and ctx.error.type == "omniq.errors.WorkerLostError"
    assert ctx.exception is None and ctx.worker_id == queue.worker.worker_id  # type: ignore[union-attr]


def test_hung_sync_callbacks_do_not_starve_the_store(tmp_path: Path) -> None:
    release = threading.Event()
    settings = load_settings(
        {}, storage_url=f"file://{tmp_path / 'store'}", poll_interval=0.05, callback_timeout=0.2
    )
    with TaskQueue(settings=settings) as queue:
        queue.on("success", lambda ctx: release.wait(60))  # hangs past its timeout
        first = queue.enqueue_many(e2e_tasks.add, [(i, 1) for i in range(12)])
        assert queue.get_results(first, timeout=30) == [i + 1 for i in range(12)]
        later = queue.enqueue_many(e2e_tasks.add, [(i, 2) for i in range(5)])
        assert queue.get_results(later, timeout=30) == [i + 2 for i in range(5)]
        release.set()

"""Fixtures of the conformance suite: a backend opened through its public URI, a fresh
namespace per test, a controllable clock, and factories for tasks and extra backend instances."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from omniq._ids import new_id
from omniq._setup import create_backend
from omniq.backend import Backend
from omniq.clock import ManualClock
from omniq.models import Task

__all__ = [
    "BackendFactory",
    "MakeTask",
    "OpenBackend",
    "omniq_backend",
    "omniq_backend_factory",
    "omniq_make_task",
    "omniq_clock",
    "omniq_namespace",
    "omniq_open_backend",
]

MakeTask = Callable[..., Task]
OpenBackend = Callable[[], Awaitable[Backend]]
BackendFactory = Callable[[str, ManualClock], Backend]

CLOCK_START = 1_900_000_000.0
"""The controllable clock starts here (2030-03-17), far from the real time, so a backend that reads
the wall clock instead of its injected clock fails the time-driven tests."""

NOOP_PAYLOAD = b"\x01\x92\x90\x80"
"""An encoded ``((), {})`` call: valid for the engine, opaque to a omniq_backend."""


@pytest.fixture
def omniq_namespace() -> str:
    """A fresh name per test, for backends that separate tests by name (``memory://NAME``,
    ``redis://…/0?prefix=NAME``). File-based backends can use ``tmp_path`` instead."""
    return f"omniq-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def omniq_clock() -> ManualClock:
    """The clock every backend of the test reads; move it with ``advance``/``set``."""
    return ManualClock(CLOCK_START)


@pytest.fixture
def omniq_backend_factory() -> BackendFactory:
    """How the suite builds a backend from ``(url, clock)``: through the plugin registry, like
    users do. Override only to test a backend class that is not registered (the suite's own tests
    use it to prove that deliberately broken backends fail)."""
    return lambda url, clock: create_backend(url, clock=clock)


@pytest_asyncio.fixture
async def omniq_open_backend(
    backend_url: str, omniq_clock: ManualClock, omniq_backend_factory: BackendFactory
) -> AsyncIterator[OpenBackend]:
    """A factory of extra, separately opened instances on ``backend_url`` (several workers'
    connections); all are closed at teardown."""
    opened: list[Backend] = []

    async def open_one() -> Backend:
        instance = omniq_backend_factory(backend_url, omniq_clock)
        await instance.open()
        opened.append(instance)
        return instance

    yield open_one
    for instance in reversed(opened):
        await instance.close()


@pytest_asyncio.fixture
async def omniq_backend(omniq_open_backend: OpenBackend) -> Backend:
    """The backend under test, opened through its URI (``backend_url``) with ``omniq_clock``."""
    return await omniq_open_backend()


@pytest.fixture
def omniq_make_task(omniq_clock: ManualClock) -> MakeTask:
    """``omniq_make_task(**fields)``: a new :class:`~omniq.models.Task` due now, with a no-op call."""

    def make(**fields: Any) -> Task:
        now = omniq_clock.now()
        base: dict[str, Any] = {
            "id": new_id(),
            "func": "omniq.testing.tasks:echo",
            "payload": NOOP_PAYLOAD,
            "run_at": now,
            "created_at": now,
        }
        base.update(fields)
        return Task(**base)

    return make

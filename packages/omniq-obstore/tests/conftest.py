"""Fixtures of the obstore backend tests: one store per test, for each kind of store.

``kind`` is ``memory``, ``file`` or ``s3``. S3 runs against moto's server mode on 127.0.0.1
(``moto[server]``, started once per session); without moto the S3 tests are skipped, unless
``OMNIQ_TEST_REQUIRE_SERVICES=1`` (CI), which makes a missing server a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import obstore as obs
import pytest
from moto_s3 import moto_s3

from omniq._ids import new_id
from omniq.clock import ManualClock
from omniq.models import Task
from omniq_obstore.backend import ObjectStoreBackend

MakeTask = Callable[..., Task]
BUCKET = "omniq-test"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server with the bucket ``omniq-test``."""
    with moto_s3(BUCKET) as endpoint:
        yield endpoint


def make_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of ``kind`` for one test."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    if kind == "memory":
        return f"memory://{name}"
    if kind == "file":
        return f"file://{tmp_path}/{name}"
    endpoint = request.getfixturevalue("s3_endpoint")
    return f"s3://{BUCKET}/{name}?endpoint={endpoint}&region=us-east-1&allow_http=true"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "file", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return make_url(kind, tmp_path, request)


@pytest.fixture
async def backend(url: str, clock: ManualClock) -> AsyncIterator[ObjectStoreBackend]:
    b = ObjectStoreBackend.from_url(url, clock=clock)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def make_task(clock: ManualClock) -> MakeTask:
    """``make_task(**fields)``: a due pending task with a fresh time-ordered id."""

    def make(**fields: Any) -> Task:
        fields.setdefault("id", new_id())
        fields.setdefault("func", "tests.jobs:work")
        fields.setdefault("payload", b"\x92\x90\x80")
        fields.setdefault("run_at", clock.now())
        fields.setdefault("created_at", clock.now())
        return Task(**fields)

    return make


class Raw:
    """Direct access to a backend's objects (obstore's sync API), bypassing its cache."""

    def __init__(self, backend: ObjectStoreBackend) -> None:
        self.backend = backend

    def put(self, key: str, data: bytes) -> None:
        obs.put(self.backend.store, key, data)
        self.backend._s().cache.forget("")

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(m["path"] for m in obs.list(self.backend.store, prefix or None).collect())

    def delete(self, key: str) -> None:
        obs.delete(self.backend.store, key)
        self.backend._s().cache.forget("")


@pytest.fixture
def raw(backend: ObjectStoreBackend) -> Raw:
    return Raw(backend)

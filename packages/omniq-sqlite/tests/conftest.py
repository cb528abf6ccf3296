"""Fixtures for the SQLite backend tests: a real database file per test, time driven by hand."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from omniq._ids import new_id
from omniq.clock import ManualClock
from omniq.models import Task
from omniq_sqlite.backend import SQLiteBackend

MakeTask = Callable[..., Task]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "omniq.db"


@pytest.fixture
async def backend(db_path: Path, clock: ManualClock) -> AsyncIterator[SQLiteBackend]:
    b = SQLiteBackend(db_path, clock=clock)
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


@pytest.fixture
def raw_db(db_path: Path) -> Iterator[Callable[..., list[Any]]]:
    """``raw_db(sql, params)``: run SQL on the file with the plain sqlite3 module, committed."""
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:

        def run(sql: str, params: Any = ()) -> list[Any]:
            return conn.execute(sql, params).fetchall()

        yield run

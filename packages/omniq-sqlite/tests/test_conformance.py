"""The SQLite backend against the shared conformance suite (``omniq.testing``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from omniq.backend import Backend
from omniq.testing import BackendConformance


class TestSQLiteConformance(BackendConformance):
    @pytest.fixture
    def backend_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'conformance.db'}"

    async def corrupt_task(self, backend: Backend, task_id: str) -> None:
        path = backend.path  # type: ignore[attr-defined]
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE omniq_tasks SET headers = '{not json' WHERE id = ?", (task_id,))

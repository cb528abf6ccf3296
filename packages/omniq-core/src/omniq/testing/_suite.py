"""``BackendConformance``: every invariant of the omniq_backend protocol, for any omniq_backend."""

from __future__ import annotations

import pytest

from omniq.backend import Backend, TaskQuery
from omniq.models import TaskState
from omniq.testing._callbacks import CallbackConformance
from omniq.testing._claims import ClaimConformance
from omniq.testing._clients import ClientConformance
from omniq.testing._dead import DeadLetterConformance
from omniq.testing._dependencies import DependencyConformance
from omniq.testing._events import EventConformance
from omniq.testing._fixtures import MakeTask
from omniq.testing._leases import LeaseConformance
from omniq.testing._records import RecordConformance
from omniq.testing._results import ResultConformance
from omniq.testing._schedules import ScheduleConformance
from omniq.testing._support import claim
from omniq.testing._workers import WorkerConformance

__all__ = ["BackendConformance"]


class BackendConformance(
    ClaimConformance,
    LeaseConformance,
    RecordConformance,
    WorkerConformance,
    ClientConformance,
    ResultConformance,
    ScheduleConformance,
    DeadLetterConformance,
    DependencyConformance,
    EventConformance,
    CallbackConformance,
):
    """Subclass this in your backend's tests and give it the URL of a fresh store::

        # conftest.py
        pytest_plugins = ["omniq.testing"]

        # test_conformance.py
        class TestMyBackend(BackendConformance):
            @pytest.fixture
            def backend_url(self, omniq_namespace: str) -> str:
                return f"mybackend://localhost/{omniq_namespace}"

    Every test gets a fresh namespace (``omniq_namespace``; or use ``tmp_path``), a backend opened
    through that URL with a controllable clock (``omniq_clock``), and runs against the public
    protocol only. What a backend cannot do is declared with its capability flags (tests that need
    a capability it lacks are skipped with the reason) or, for a known gap, with a strict xfail in
    the subclass — never with a special case inside the suite.

    Override :meth:`corrupt_task` to prove that a stored record the backend cannot decode fails
    that task alone.
    """

    async def corrupt_task(self, omniq_backend: Backend, task_id: str) -> None:
        """Damage the stored record of ``task_id`` so the backend cannot decode it (backend-specific,
        e.g. write garbage into the row or object). The default skips the test that needs it."""
        pytest.skip(f"{type(self).__name__} does not override corrupt_task()")

    @pytest.mark.asyncio
    async def test_a_corrupted_record_fails_that_task_alone(
        self, omniq_backend: Backend, omniq_make_task: MakeTask
    ) -> None:
        broken, healthy = omniq_make_task(), omniq_make_task()
        await omniq_backend.enqueue([broken, healthy])
        await self.corrupt_task(omniq_backend, broken.id)
        claimed = await claim(omniq_backend, limit=10)
        assert [t.id for t in claimed] == [healthy.id]
        listed = {t.id: t for t in await omniq_backend.list_tasks(TaskQuery())}
        error = listed[broken.id].error
        assert listed[broken.id].state is TaskState.FAILED
        assert error is not None and error.type == "omniq.errors.DeserializationError"
        [again] = await omniq_backend.get_tasks([broken.id])
        assert again is not None and again.state is TaskState.FAILED

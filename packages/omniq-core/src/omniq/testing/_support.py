"""Helpers shared by the conformance suite's test classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from omniq.backend import Backend, Outcome
from omniq.models import Task, TaskState

__all__ = ["claim", "outcome", "requires"]


def requires(omniq_backend: Backend, capability: str) -> None:
    """Skip the test unless the backend declares ``capability`` (gaps are declared, not guessed)."""
    if not getattr(omniq_backend.capabilities, capability):
        pytest.skip(f"{type(omniq_backend).__name__} declares {capability}=False")


async def claim(
    omniq_backend: Backend,
    *,
    limit: int = 100,
    lease: float = 30.0,
    worker_id: str = "w1",
    queues: Sequence[str] = ("default",),
    executors: Mapping[str, int] | None = None,
    default_executor: str | None = None,
) -> list[Task]:
    """``omniq_backend.claim`` with the suite's defaults."""
    return await omniq_backend.claim(
        queues=list(queues),
        worker_id=worker_id,
        limit=limit,
        lease=lease,
        executors=executors,
        default_executor=default_executor,
    )


def outcome(task: Task, state: TaskState | str = TaskState.SUCCESS, **fields: Any) -> Outcome:
    """An :class:`~omniq.backend.Outcome` for the attempt ``task`` was claimed with."""
    fields.setdefault("finished_at", 0.0)
    return Outcome(task_id=task.id, attempt=task.attempt, state=TaskState(state), **fields)

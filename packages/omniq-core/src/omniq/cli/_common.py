"""Options and helpers shared by the ``omniq`` sub-commands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from omniq.client import AsyncTaskQueue
from omniq.config import load_settings

__all__ = ["producer", "run", "storage_option"]

T = TypeVar("T")

storage_option = click.option(
    "--storage",
    "storage_url",
    metavar="URL",
    default=None,
    help="Storage URI (sqlite:///jobs.db, redis://…); default OMNIQ_STORAGE_URL or OMNIQ_STORAGE_TYPE.",
)


def producer(storage_url: str | None) -> AsyncTaskQueue:
    """A producer-only client (no embedded worker) on the given storage."""
    return AsyncTaskQueue(settings=load_settings(storage_url=storage_url), workers=0)


def run(fn: Callable[[AsyncTaskQueue], Coroutine[Any, Any, T]], storage_url: str | None) -> T:
    """Open a producer client, run ``fn(queue)``, close it; returns what ``fn`` returned."""

    async def main() -> T:
        async with producer(storage_url) as queue:
            return await fn(queue)

    return asyncio.run(main())

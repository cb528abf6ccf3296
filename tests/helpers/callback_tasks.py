"""A task module whose decorators declare lifecycle callbacks (closures, found again by any
worker that imports this module). Every callback appends ``layer hook task_id pid state`` to
the file named by ``$CALLBACK_LOG``; the module's producer-only client uses ``$CALLBACK_URL``."""

from __future__ import annotations

import os
from collections.abc import Callable

from callback_notes import note

from omniq import CallbackContext, TaskQueue

queue = TaskQueue(storage_url=os.environ["CALLBACK_URL"], workers=0)


def noting(layer: str) -> Callable[[CallbackContext], None]:
    """A closure: it cannot be imported by path, yet workers find it (registered on import)."""
    return lambda ctx: note(layer, ctx)


@queue.task(
    executor="process",
    on_enqueue=noting("task"),
    on_start=noting("task"),
    on_success=[noting("task"), noting("task2")],
    on_complete=noting("task"),
)
def where() -> int:
    """The pid of the process running the function (a ``process`` executor child)."""
    return os.getpid()


@queue.task(retries=0, on_failure=noting("task"), on_complete=noting("task"))
def broken() -> None:
    """Fail at once."""
    raise ValueError("broken on purpose")


@queue.task(on_success=noting("base"))
def plain() -> str:
    """Succeed; ``.options(on_success=...)`` copies replace its callback."""
    return "ok"


loud = plain.options(on_success=noting("loud"))
"""A copy made at import time: workers that import this module know its callbacks too."""

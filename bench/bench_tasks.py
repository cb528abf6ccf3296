"""The benchmark's task functions, imported by the benchmark and by the worker processes.

Both queues run the same body: ``stamp`` returns ``time.time()`` taken when the task starts, so
processing and latency are measured from timestamps taken the same way for OmniQ and Huey.

The Huey consumer imports ``bench_tasks.huey``: the SQLite file comes from the environment
variable ``BENCH_HUEY_DB`` (set by the benchmark for the consumer process).
"""

from __future__ import annotations

import os
import time
from typing import Any


# -- OmniQ: plain module-level functions, found by the worker as "bench_tasks:stamp" ------------
def stamp(enqueued_at: float = 0.0) -> float:
    """A no-op task that returns the time it started (``enqueued_at`` travels as the argument)."""
    return time.time()


async def astamp(enqueued_at: float = 0.0) -> float:
    """:func:`stamp` as a coroutine: what the ``async`` executor runs on its event loop (a plain
    function routed to the async executor runs on a helper thread instead)."""
    return time.time()


# -- Huey ---------------------------------------------------------------------------------------
def make_huey(path: str) -> tuple[Any, Any]:
    """A ``SqliteHuey`` on ``path`` and its ``h_stamp`` task (same body as :func:`stamp`).

    SQLite is opened with ``synchronous=NORMAL`` in WAL mode, the setting OmniQ's SQLite backend
    uses, so both pay the same price per commit (Huey's own default is ``FULL``: one fsync per
    commit). ``fsync=None`` keeps Huey from setting ``synchronous`` itself.
    """
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class NormalSyncSqliteStorage(SqliteStorage):  # type: ignore[misc]
        def _create_connection(self) -> Any:
            conn = super()._create_connection()
            conn.execute("pragma synchronous=NORMAL")
            return conn

    huey = SqliteHuey("bench", filename=path, storage_class=NormalSyncSqliteStorage)

    @huey.task()  # type: ignore[untyped-decorator]
    def h_stamp(enqueued_at: float = 0.0) -> float:
        return time.time()

    return huey, h_stamp


huey: Any = None
h_stamp: Any = None
if os.environ.get("BENCH_HUEY_DB"):
    huey, h_stamp = make_huey(os.environ["BENCH_HUEY_DB"])

"""Huey's side of the executor benchmarks: ``g_nap`` (gevent sleeps) and ``h_burn`` (CPU-bound)
on a ``SqliteHuey`` whose file comes from ``BENCH_HUEY_DB``. A greenlet consumer sets
``BENCH_HUEY_GEVENT=1`` so this module applies gevent's monkey patching first, as Huey's
documentation asks of greenlet consumers; the benchmark process imports it unpatched to
enqueue."""

from __future__ import annotations

import os

if os.environ.get("BENCH_HUEY_GEVENT") == "1":
    from gevent import monkey

    monkey.patch_all()

import time
from typing import Any

from _cpu_bench import burn
from huey import SqliteHuey

huey: Any = SqliteHuey("executor-bench", filename=os.environ.get("BENCH_HUEY_DB", "huey-x.db"))


@huey.task()  # type: ignore[untyped-decorator]
def g_nap(seconds: float) -> bool:
    """Block in ``time.sleep`` (a greenlet switch once gevent has patched ``time``)."""
    time.sleep(seconds)
    return True


@huey.task()  # type: ignore[untyped-decorator]
def h_burn(iterations: int) -> int:
    """The CPU-bound task of ``_cpu_bench`` (pure-Python arithmetic)."""
    return burn(iterations)

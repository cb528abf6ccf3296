"""A pool of daemon threads that hands results back to an asyncio loop.

``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter exit, so one stuck task
would keep a script from exiting; a queue must never do that. These threads are daemons and are
started lazily, up to ``size``.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DaemonThreadPool"]

_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"] | None


def _deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class DaemonThreadPool:
    """Runs callables on at most ``size`` daemon threads.

    Args:
        size: the most threads that run at once (>= 1).
        name: prefix of the thread names.
    """

    def __init__(self, size: int, *, name: str = "omniq-thread") -> None:
        if size < 1:
            raise ValueError(f"thread pool size must be >= 1, got {size}")
        self.size = size
        self._name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        """Jobs submitted and not yet returned (a timed-out job stays busy until it returns)."""
        return self._busy

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``fn()`` in a pool thread with a copy of the caller's context.

        Returns an asyncio future of the running loop, done when ``fn`` returns or raises.
        Cancelling the future does not stop the thread; the callable should watch its cancellation
        token (:func:`omniq.current_task`).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        ctx = contextvars.copy_context()
        self._jobs.put((lambda: ctx.run(fn), loop, future))
        with self._lock:
            self._busy += 1
            if self._idle == 0 and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            elif self._idle:
                self._idle -= 1  # an idle thread will take this job
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, loop, future = job
            try:
                ok, value = True, fn()
            except BaseException as exc:  # delivered to the awaiting coroutine
                ok, value = False, exc
            try:
                loop.call_soon_threadsafe(_deliver, future, ok, value)
            except RuntimeError:  # the loop closed while the job ran; nobody is waiting
                pass
            with self._lock:
                self._busy -= 1
                self._idle += 1

    def shutdown(self) -> None:
        """Ask every thread to exit once its current job ends (does not wait)."""
        with self._lock:
            for _ in self._threads:
                self._jobs.put(None)
            self._threads.clear()
            self._idle = 0

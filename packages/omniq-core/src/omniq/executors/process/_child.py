"""A ``process`` executor child: runs tasks the parent sends, one at a time, until told to stop.

Two threads share the child's end of the socket pair. The **listener** (a daemon thread) reads
every message: a :class:`~._messages.Run` goes to the main thread's inbox, a
:class:`~._messages.Cancel` sets that task's cancel token at once (even while it runs), a
:class:`~._messages.Stop` ends the inbox, and end-of-file — the parent exited or was killed —
ends the child on the spot with ``os._exit``, so no child outlives its parent. The **main thread**
decodes each task with its own :class:`~omniq.serialization.Serializer` (rebuilt from the parent's
settings), runs it (coroutine functions through :func:`asyncio.run`) with
:func:`omniq.current_task` set, and sends back a :class:`~._messages.Done`.

This module is imported by the fork server ahead of time (``set_forkserver_preload``), so it
imports only what every child needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from omniq._context import TaskContext, reset_current_task, set_current_task
from omniq._functions import FunctionResolver
from omniq._process_role import mark_worker_process
from omniq.executors._base import is_async_callable
from omniq.executors.process._messages import (
    Cancel,
    Done,
    Ready,
    Run,
    Stop,
    encode,
    read_message,
)
from omniq.models import ErrorInfo
from omniq.serialization import Serializer, error_info

__all__ = ["child_main", "resident_bytes"]

_Inbox = queue.SimpleQueue[tuple[Run, TaskContext] | None]


def resident_bytes() -> int:
    """This process's resident set size in bytes (Linux: current, from ``/proc/self/statm``;
    elsewhere: the peak, from :func:`resource.getrusage`)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class _Listener:
    """Reads the parent's messages on a daemon thread; keeps the contexts of queued tasks."""

    def __init__(self, sock: socket.socket, inbox: _Inbox) -> None:
        self._sock = sock
        self._inbox = inbox
        self._contexts: dict[str, TaskContext] = {}
        self._lock = threading.Lock()

    def forget(self, task_id: str) -> None:
        """Drop a finished task's context (a late Cancel for it is then ignored)."""
        with self._lock:
            self._contexts.pop(task_id, None)

    def listen(self) -> None:
        while True:
            try:
                message = read_message(self._sock)
            except Exception:  # an undecodable frame: the stream cannot be trusted any more
                os._exit(70)
            if message is None:  # the parent is gone: stop whatever runs (and started), now
                with contextlib.suppress(OSError):
                    os.killpg(0, signal.SIGKILL)  # this child leads its own process group
                os._exit(0)
            if isinstance(message, Run):
                context = TaskContext(
                    task_id=message.task_id,
                    attempt=message.attempt,
                    queue=message.queue,
                    worker_id=message.worker_id,
                )
                with self._lock:
                    self._contexts[message.task_id] = context
                self._inbox.put((message, context))
            elif isinstance(message, Cancel):
                with self._lock:
                    target = self._contexts.get(message.task_id)
                if target is not None:
                    target.cancel_event.set()
            elif isinstance(message, Stop):
                self._inbox.put(None)


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if is_async_callable(fn):

        async def main() -> Any:
            return await fn(*args, **kwargs)

        return asyncio.run(main())
    return fn(*args, **kwargs)


def _execute(
    run: Run, context: TaskContext, serializer: Serializer, resolver: FunctionResolver
) -> Done:
    if context.cancelled():  # cancelled while queued here: never started
        error = ErrorInfo(type="asyncio.CancelledError", message="cancelled before it started")
        return Done(task_id=run.task_id, error=error, rss_bytes=resident_bytes())
    try:
        # The enqueuing process's local-function token means nothing in a child: not passed.
        fn = resolver.resolve(run.func, run.func_bytes)
        args, kwargs = serializer.loads_call(run.payload)
    except Exception as exc:
        return Done(
            task_id=run.task_id, error=error_info(exc), refused=True, rss_bytes=resident_bytes()
        )
    token = set_current_task(context)
    try:
        value = _call(fn, args, kwargs)
    except BaseException as exc:  # the task's own error, whatever its type (SystemExit too)
        return Done(task_id=run.task_id, error=error_info(exc), rss_bytes=resident_bytes())
    finally:
        reset_current_task(token)
    try:  # a result that cannot be encoded is not the task's error: it is never retried
        data = serializer.dumps(value) if run.want_result else None
    except Exception as exc:
        return Done(
            task_id=run.task_id, error=error_info(exc), refused=True, rss_bytes=resident_bytes()
        )
    return Done(task_id=run.task_id, value=data, rss_bytes=resident_bytes())


def child_main(sock: socket.socket, serializer_kwargs: dict[str, Any]) -> None:
    """The child's entry point (the target of its :class:`multiprocessing.Process`).

    Args:
        sock: the child's end of the socket pair to the parent (blocking).
        serializer_kwargs: :meth:`Serializer.init_kwargs` of the parent's serializer.
    """
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Its own process group, so that killing the child takes the processes its task started.
    with contextlib.suppress(OSError):
        os.setpgrp()
    mark_worker_process()
    sock.setblocking(True)
    serializer = Serializer(**serializer_kwargs)
    resolver = FunctionResolver(serializer)
    inbox: _Inbox = queue.SimpleQueue()
    listener = _Listener(sock, inbox)
    threading.Thread(target=listener.listen, name="omniq-child-listener", daemon=True).start()
    sock.sendall(encode(Ready(pid=os.getpid())))
    while (item := inbox.get()) is not None:
        run, context = item
        done = _execute(run, context, serializer, resolver)
        listener.forget(run.task_id)
        sock.sendall(encode(done))

"""The pool of children: starting them lazily, handing them out, replacing and stopping them.

At most ``size`` children are alive or starting (children being retired are not counted: they
are on their way out). A child is *idle* (waiting in the pool) or *lent* to one call. A child the
parent takes out of service — killed for a timeout or a cancellation, stopped for having run its
quota or grown too large — and a child that dies on its own are both replaced at once by a fresh
one, started in the background, so the pool keeps its size. Children start on first demand only.

Starting a child (:meth:`multiprocessing.Process.start`) runs on a helper thread, since the first
start of the fork server imports the preloaded modules and may take a moment; children are reaped
on that same thread (``Process.start`` polls every child, so reaping elsewhere could race it).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import logging
import multiprocessing
import multiprocessing.util  # its atexit hook (join children) must run after ours
import socket
from multiprocessing.process import BaseProcess
from typing import Any

from omniq._process_role import CHILD_NAME_PREFIX
from omniq.errors import WorkerLostError
from omniq.executors._threads import DaemonThreadPool
from omniq.executors.process._child import child_main
from omniq.executors.process._handle import ChildProcess, describe_exit, kill_group

__all__ = ["ChildPool"]

log = logging.getLogger("omniq.executors.process")

_CHILD_MODULE = "omniq.executors.process._child"
_READY_TIMEOUT = 120.0  # seconds for a new child to import what it needs and say it is ready
_STOP_GRACE = 3.0  # seconds a child asked to stop may take before it is killed
_KILL_WAIT = 10.0  # seconds to wait for killed children to be reported gone at shutdown

_processes: set[BaseProcess] = set()  # every child started here and not reaped yet


@atexit.register
def _kill_leftover_children() -> None:
    """At interpreter exit, kill the children nobody shut down (a client never closed, an event
    loop that ended mid-start), so ``multiprocessing``'s own exit hook, which joins child
    processes, cannot wait forever."""
    for process in list(_processes):
        with contextlib.suppress(Exception):
            kill_group(process)


def _children_skip_main() -> None:
    """Children named ``CHILD_NAME_PREFIX…`` do not re-import the parent's ``__main__``.

    :mod:`multiprocessing` runs the parent's main script again in every spawn/forkserver child
    (as ``__mp_main__``) so that functions defined there can be unpickled by reference. Our
    children never need that: a task's function travels by import path, or as signed dill bytes
    that carry ``__main__`` functions by value. Re-running the script would run its unguarded
    top-level code (an ``enqueue`` and a blocking ``get_result``) inside the child, which then
    never becomes ready. Installed once; other processes' preparation data is left unchanged.
    """
    from multiprocessing import spawn

    original = spawn.get_preparation_data
    if getattr(original, "__omniq_skip_main__", False):
        return

    def get_preparation_data(name: str) -> dict[str, Any]:
        data: dict[str, Any] = original(name)
        if name.startswith(CHILD_NAME_PREFIX):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    get_preparation_data.__omniq_skip_main__ = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = get_preparation_data


def _preload_fork_server(ctx: Any) -> None:
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    # Python's default preload is ["__main__"], which makes the fork server itself run the
    # parent's main script; our children need only their own module.
    current = [m for m in getattr(server, "_preload_modules", None) or () if m != "__main__"]
    if _CHILD_MODULE not in current:
        ctx.set_forkserver_preload([*current, _CHILD_MODULE])


class ChildPool:
    """Up to ``size`` children started with ``start_method``.

    Args:
        size: the most children alive at once (>= 1).
        start_method: ``"forkserver"`` or ``"spawn"`` (never ``"fork"``).
        serializer_kwargs: how children rebuild the parent's serializer.
    """

    def __init__(self, size: int, *, start_method: str, serializer_kwargs: dict[str, Any]) -> None:
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method must be 'forkserver' or 'spawn', got {start_method!r}")
        self.size = size
        self._start_method = start_method
        self._serializer_kwargs = serializer_kwargs
        self._ctx: Any = None
        self._children: set[ChildProcess] = set()  # alive, in service (idle or lent)
        self._idle: collections.deque[ChildProcess] = collections.deque()
        self._retiring: set[ChildProcess] = set()
        self._starting = 0
        self._starts: set[asyncio.Task[None]] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._threads = DaemonThreadPool(1, name="omniq-process-start")
        self._serial = 0
        self.closed = False

    @property
    def pids(self) -> tuple[int, ...]:
        """Process ids of the children in service, sorted."""
        return tuple(sorted(child.pid for child in self._children))

    # -- lending ----------------------------------------------------------------------------
    async def acquire(self) -> ChildProcess:
        """An idle child, starting one when fewer than ``size`` exist.

        Raises:
            WorkerLostError: a child could not be started.
            RuntimeError: the pool is shut down.
        """
        while True:
            if self.closed:
                raise RuntimeError("the process executor is shut down")
            while self._idle:
                child = self._idle.popleft()
                if child.alive:
                    return child
            if len(self._children) + self._starting < self.size:
                self._spawn()
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass the wake-up on
                raise

    def release(self, child: ChildProcess, *, recycle: bool) -> None:
        """Take a child back after a call; ``recycle`` retires it (stopped politely, replaced)."""
        if child not in self._children:
            return  # it died meanwhile; already handled
        if recycle or self.closed:
            self.retire(child, kill=False)
            return
        self._idle.append(child)
        self._wake_one()

    def retire(self, child: ChildProcess, *, kill: bool) -> None:
        """Take ``child`` out of service and replace it: SIGKILL now, or ask it to stop and kill
        it if it has not exited after a short grace."""
        if child.retired:
            return
        child.retired = True
        self._children.discard(child)
        with contextlib.suppress(ValueError):
            self._idle.remove(child)
        if child.alive:
            self._retiring.add(child)
            if kill:
                child.kill()
            else:
                child.stop()
                handle = asyncio.get_running_loop().call_later(_STOP_GRACE, child.kill)
                child.exited.add_done_callback(lambda _: handle.cancel())
        self._replace()

    def _wake_one(self, error: BaseException | None = None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
                return True
        return False

    # -- starting ---------------------------------------------------------------------------
    def _replace(self) -> None:
        if not self.closed and len(self._children) + self._starting < self.size:
            self._spawn()

    def _spawn(self) -> None:
        self._starting += 1
        start = asyncio.get_running_loop().create_task(self._start_one())
        self._starts.add(start)
        start.add_done_callback(self._starts.discard)

    async def _start_one(self) -> None:
        try:
            child = await self._start_child()
        except Exception as exc:
            self._starting -= 1
            if not isinstance(exc, WorkerLostError):  # e.g. EOFError from a killed fork server
                exc = WorkerLostError(
                    f"could not start a process child: {type(exc).__name__}: {exc}"
                )
            if not self._wake_one(exc):
                log.warning("%s", exc)
            return
        self._starting -= 1
        if self.closed:
            child.retired = True
            self._retiring.add(child)
            child.stop()
            return
        self._children.add(child)
        self._idle.append(child)
        self._wake_one()

    async def _start_child(self) -> ChildProcess:
        if self._ctx is None:
            self._ctx = multiprocessing.get_context(self._start_method)
            _children_skip_main()
            if self._start_method == "forkserver":
                _preload_fork_server(self._ctx)
        self._serial += 1
        parent_sock, child_sock = socket.socketpair()
        process = self._ctx.Process(
            target=child_main,
            args=(child_sock, self._serializer_kwargs),
            name=f"{CHILD_NAME_PREFIX}{self._serial}",
            daemon=False,  # children may start processes of their own
        )
        _processes.add(process)
        try:
            await self._threads.submit(process.start)
        except BaseException:
            _processes.discard(process)
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        child = ChildProcess(process, parent_sock, self._exited, self._threads)
        try:
            async with asyncio.timeout(_READY_TIMEOUT):
                ready = await asyncio.shield(child.ready)
        except TimeoutError:
            child.retired = True
            self._retiring.add(child)
            child.kill()
            raise WorkerLostError(
                f"process child {child.pid} did not start within {_READY_TIMEOUT:.0f} s"
            ) from None
        if not ready:
            raise WorkerLostError(
                f"process child {child.pid} exited while starting, with "
                f"{describe_exit(child.exited.result())} (see its output on stderr)"
            )
        return child

    # -- exits ------------------------------------------------------------------------------
    def _exited(self, child: ChildProcess) -> None:
        _processes.discard(child.process)
        self._retiring.discard(child)
        if child in self._children:  # died on its own
            self._children.discard(child)
            with contextlib.suppress(ValueError):
                self._idle.remove(child)
            child.retired = True
            log.warning(
                "process child %d exited unexpectedly with %s; replacing it",
                child.pid,
                describe_exit(child.exited.result()),
            )
            self._replace()
        self._wake_one()

    # -- shutting down ----------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop every child: ask politely, SIGKILL those still alive after a short grace."""
        self.closed = True
        error = RuntimeError("the process executor is shut down")
        while self._wake_one(error):
            pass
        if self._starts:
            await asyncio.wait(set(self._starts))
        for child in list(self._children):
            self.retire(child, kill=False)
        exits: set[asyncio.Future[int | None]] = {c.exited for c in self._retiring}
        if exits:
            _, pending = await asyncio.wait(exits, timeout=_STOP_GRACE)
            if pending:
                self.kill_all()
                await asyncio.wait(pending, timeout=_KILL_WAIT)
        self._threads.shutdown()

    def kill_all(self) -> None:
        """SIGKILL every child now (used at shutdown and at interpreter exit)."""
        for child in [*self._children, *self._retiring]:
            child.kill()

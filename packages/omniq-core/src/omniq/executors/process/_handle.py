"""The parent's side of one child process: non-blocking messaging and death detection.

Nothing here blocks the event loop. Reads and writes go through the parent's end of a
non-blocking socket pair watched with ``loop.add_reader`` / ``loop.add_writer``. The child's
``Process.sentinel`` is watched with ``loop.add_reader`` too: it becomes readable when the child
has exited, for whatever reason (normal exit, ``os._exit``, a signal, the OOM killer). Then the
bytes the child managed to send are drained (a last :class:`~._messages.Done` is not lost), the
child is reaped, the reply it owed (if any) is resolved as :class:`Lost`, and the pool is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import msgspec

from omniq.executors._threads import DaemonThreadPool
from omniq.executors.process._messages import (
    ChildMessage,
    Done,
    FrameReader,
    ParentMessage,
    Ready,
    Run,
    Stop,
    encode,
)

__all__ = ["ChildProcess", "Lost", "Reply", "describe_exit", "kill_group"]


def kill_group(process: BaseProcess) -> None:
    """SIGKILL a child's process group: the child (its leader, see ``child_main``) and whatever
    it started — a task's own subprocesses or forks die with it, on timeout, cancel, or
    shutdown. Falls back to the child alone if it has no group of its own."""
    pid = process.pid
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.kill()


_READS_PER_CALLBACK = 16
_CHUNK = 1 << 16
_REAP_WAIT = 10.0  # seconds; the exit status follows the sentinel within moments


class Lost(msgspec.Struct, frozen=True):
    """The child exited before it answered.

    Attributes:
        exitcode: its exit code; negative: killed by that signal number; ``None``: unknown.
    """

    exitcode: int | None


Reply = Done | Lost


def describe_exit(exitcode: int | None) -> str:
    """``"exit code 3"``, ``"signal SIGSEGV"`` or ``"an unknown exit status"``."""
    if exitcode is None:
        return "an unknown exit status"
    if exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"signal {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"signal {-exitcode}"


class ChildProcess:
    """One started child, driven from the event loop it was created on.

    Args:
        process: the started :class:`multiprocessing.Process`.
        sock: the parent's end of the socket pair (made non-blocking here; closed on exit).
        on_exit: called once, on the loop, after the child has exited and been reaped.
        threads: the pool's helper thread (the one that starts children), for reaping.
    """

    def __init__(
        self,
        process: BaseProcess,
        sock: socket.socket,
        on_exit: Callable[[ChildProcess], None],
        threads: DaemonThreadPool,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._threads = threads
        self.process = process
        """The :class:`multiprocessing.Process` (closed once the child has been reaped)."""
        self._sock = sock
        self._on_exit = on_exit
        self._frames = FrameReader()
        self._out = bytearray()
        self._out_sent = 0
        self._writing = False
        self._reading = True
        self._sentinel = process.sentinel
        self.pid: int = process.pid or 0
        self.tasks_run = 0
        """Tasks this child has answered."""
        self.retired = False
        """Taken out of the pool by the parent (stopping or killed): its exit is expected."""
        self.ready: asyncio.Future[bool] = self._loop.create_future()
        """``True`` once the child said it is ready, ``False`` if it exited first."""
        self.exited: asyncio.Future[int | None] = self._loop.create_future()
        """The exit code (negative: signal), once the child has exited and been reaped."""
        self._reply: asyncio.Future[Reply] | None = None
        self._reply_task: str | None = None
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._loop.add_reader(self._sentinel, self._on_sentinel)

    def __repr__(self) -> str:
        return f"<ChildProcess pid={self.pid} tasks_run={self.tasks_run} retired={self.retired}>"

    @property
    def alive(self) -> bool:
        """The child has not been seen to exit yet."""
        return not self.exited.done()

    # -- talking ----------------------------------------------------------------------------
    def submit(self, run: Run) -> asyncio.Future[Reply]:
        """Send ``run`` and return the future of its reply (a :class:`Done` or :class:`Lost`).

        Raises:
            RuntimeError: the child is already answering another run.
        """
        if self._reply is not None and not self._reply.done():
            raise RuntimeError(f"process child {self.pid} is busy with task {self._reply_task}")
        reply: asyncio.Future[Reply] = self._loop.create_future()
        self._reply, self._reply_task = reply, run.task_id
        if not self.alive:
            reply.set_result(Lost(self.exited.result()))
        else:
            self.send(run)
        return reply

    def send(self, message: ParentMessage) -> None:
        """Queue ``message`` for the child; written without blocking, in order (dropped if the
        child is gone)."""
        if not self.alive or self._sock.fileno() < 0:
            return
        self._out += encode(message)
        self._flush()

    def _flush(self) -> None:
        view = memoryview(self._out)
        try:
            while self._out_sent < len(view):
                try:
                    self._out_sent += self._sock.send(view[self._out_sent :])
                except BlockingIOError:
                    break
                except OSError:  # the child closed its end: it is exiting
                    self._out_sent = len(view)
        finally:
            view.release()
        if self._out_sent >= len(self._out):
            self._out.clear()
            self._out_sent = 0
        if self._out and not self._writing:
            self._loop.add_writer(self._sock.fileno(), self._flush)
            self._writing = True
        elif not self._out and self._writing:
            self._loop.remove_writer(self._sock.fileno())
            self._writing = False

    def _on_readable(self) -> None:
        self._read(_READS_PER_CALLBACK)

    def _read(self, chunks: int | None) -> None:
        """Read up to ``chunks`` chunks (``None``: until nothing is left) and dispatch messages."""
        done = 0
        while self._reading and (chunks is None or done < chunks):
            done += 1
            try:
                chunk = self._sock.recv(_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:  # the child closed its end; its sentinel tells when it has exited
                self._stop_reading()
                return
            try:
                messages = self._frames.feed(chunk)
            except msgspec.DecodeError:  # a corrupt stream: this child cannot be trusted
                self._stop_reading()
                self.kill()
                return
            for message in messages:
                self._dispatch(message)

    def _dispatch(self, message: ChildMessage) -> None:
        if isinstance(message, Ready):
            if not self.ready.done():
                self.ready.set_result(True)
        elif self._reply is not None and message.task_id == self._reply_task:
            self.tasks_run += 1
            if not self._reply.done():
                self._reply.set_result(message)
            self._reply = self._reply_task = None

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._sock.fileno())

    # -- stopping ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the child to exit once its current task (if any) is done."""
        self.send(Stop())

    def kill(self) -> None:
        """SIGKILL the child and every process it started (no-op once it has exited)."""
        if self.alive:
            kill_group(self.process)

    # -- exit -------------------------------------------------------------------------------
    def _on_sentinel(self) -> None:
        self._loop.remove_reader(self._sentinel)
        self._read(None)  # what the child sent before it exited is all in the socket buffer
        # Reaping happens on the pool's start thread: Process.start() polls every child of this
        # process too, and two threads reading one exit status could misread it.
        self._threads.submit(self._wait_exit).add_done_callback(self._reaped)

    def _wait_exit(self) -> int | None:
        """On the helper thread: the exit status (ready, or about to be: the sentinel fired)."""
        self.process.join(_REAP_WAIT)
        return self.process.exitcode

    def _reaped(self, future: asyncio.Future[int | None]) -> None:
        self._finish_exit(None if future.exception() is not None else future.result())

    def _finish_exit(self, exitcode: int | None) -> None:
        self._stop_reading()
        if self._writing:
            self._loop.remove_writer(self._sock.fileno())
            self._writing = False
        self._sock.close()
        with contextlib.suppress(ValueError):
            self.process.close()
        self.exited.set_result(exitcode)
        if not self.ready.done():
            self.ready.set_result(False)
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(Lost(exitcode))
        self._reply = self._reply_task = None
        self._on_exit(self)

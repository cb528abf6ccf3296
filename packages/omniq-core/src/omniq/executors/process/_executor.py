"""The ``process`` executor: each call runs in a child process of a pool."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Self

from omniq.errors import (
    CallFailedError,
    DeserializationError,
    PayloadTooLargeError,
    SerializationError,
    SignatureError,
    TaskTimeoutError,
    WorkerLostError,
)
from omniq.executors._base import Call, Executor
from omniq.executors.process._handle import ChildProcess, Lost, Reply, describe_exit
from omniq.executors.process._messages import Cancel, Done, Run
from omniq.executors.process._pool import ChildPool
from omniq.serialization import Serializer, type_path

if TYPE_CHECKING:
    from omniq.config import Settings

__all__ = ["ProcessExecutor"]

log = logging.getLogger("omniq.executors.process")

_MIB = 1024 * 1024


class ProcessExecutor(Executor):
    """Runs each call in one of up to ``concurrency`` child processes, for CPU-bound work.

    Children are started on the first call (hosting this executor costs nothing until a task
    needs it), with :mod:`multiprocessing`'s ``forkserver`` (default) or ``spawn`` method, never a
    plain ``fork`` of the threaded worker. A child gets the task as stored — the function's import
    path or its signed dill bytes, and the encoded arguments — decodes it with a serializer
    rebuilt from ``serializer`` (same signing key), runs it (``async def`` functions through
    :func:`asyncio.run`) with :func:`omniq.current_task` set, and sends the encoded result back.
    The worker's event loop never blocks on a child: heartbeats keep flowing while children burn
    CPU.

    Guarantees, per call:

    - the function's own exception comes back as :class:`~omniq.errors.CallFailedError` (its type
      path, message and traceback text), since it may not survive the trip as an object;
    - past ``call.timeout`` seconds the child is killed (SIGKILL) and replaced, and
      :class:`~omniq.errors.TaskTimeoutError` is raised;
    - a child that dies while running (crash, ``os._exit``, OOM kill) fails only its own call with
      :class:`~omniq.errors.WorkerLostError` naming its pid and exit code or signal; it is
      replaced;
    - cancelling the awaiting coroutine sets the task's cancel token, then kills and replaces the
      child (``terminate_on_cancel``), or sends the token to the child and keeps the slot busy
      until the function returns, discarding its result;
    - children exit promptly when the parent dies, however it dies.

    Unlike plain :mod:`multiprocessing`, children do not re-import the parent's ``__main__``
    script (functions defined there travel by value as signed dill), so a script needs no
    ``if __name__ == "__main__":`` guard for its top level to run once.

    Args:
        concurrency: the most children (and calls) at once (>= 1).
        serializer: the worker's serializer; children rebuild an equivalent one (same secret key).
            Default: one without a key (dill refused).
        start_method: ``"forkserver"`` (default; children fork from a server process that has
            already imported omniq) or ``"spawn"`` (a fresh interpreter per child).
        max_tasks_per_child: tasks a child runs before it is replaced; ``None``: no limit.
        max_memory_mb: resident set size in MiB (measured in the child after each task) above
            which the child is replaced after that task; ``None``: no limit.
        terminate_on_cancel: kill the child when its call is cancelled (default) instead of
            letting it finish with its cancel token set.

    Raises:
        ValueError: ``concurrency``, ``max_tasks_per_child`` or ``max_memory_mb`` is below 1, or
            ``start_method`` is not ``"forkserver"`` or ``"spawn"``.
    """

    name = "process"

    def __init__(
        self,
        *,
        concurrency: int,
        serializer: Serializer | None = None,
        start_method: str = "forkserver",
        max_tasks_per_child: int | None = None,
        max_memory_mb: int | None = None,
        terminate_on_cancel: bool = True,
    ) -> None:
        super().__init__(concurrency=concurrency)
        for option, value in (
            ("max_tasks_per_child", max_tasks_per_child),
            ("max_memory_mb", max_memory_mb),
        ):
            if value is not None and value < 1:
                raise ValueError(f"ProcessExecutor: {option} must be >= 1 or None, got {value}")
        self._serializer = serializer if serializer is not None else Serializer()
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_mb = max_memory_mb
        self.terminate_on_cancel = terminate_on_cancel
        self._pool = ChildPool(
            concurrency,
            start_method=start_method,
            serializer_kwargs=self._serializer.init_kwargs(),
        )
        self._busy = 0

    @classmethod
    def from_settings(cls, settings: Settings, *, concurrency: int, serializer: Serializer) -> Self:
        """Build it from ``OMNIQ_PROCESS_*`` settings (start method, child limits, cancel mode).

        Args:
            settings: the worker's effective settings.
            concurrency: how many children (>= 1).
            serializer: the worker's serializer (children get its secret key).
        """
        return cls(
            concurrency=concurrency,
            serializer=serializer,
            start_method=settings.process_start_method,
            max_tasks_per_child=settings.process_max_tasks_per_child,
            max_memory_mb=settings.process_max_memory_mb,
            terminate_on_cancel=settings.process_terminate_on_cancel,
        )

    @property
    def in_flight(self) -> int:
        """Calls holding a child, including cooperatively cancelled ones still finishing."""
        return self._busy

    @property
    def child_pids(self) -> tuple[int, ...]:
        """Process ids of the children in service (idle or busy), sorted; empty before the first
        call and after :meth:`shutdown`."""
        return self._pool.pids

    async def run(self, call: Call) -> Any:
        """Run ``call`` in a child and return the function's return value (``None`` when the task
        keeps no result, ``result_ttl=0``). ``call.timeout`` (seconds) counts from the moment a
        child has the task, so the start of a first child does not eat into it.

        Raises:
            CallFailedError: the function raised; ``info`` describes its exception.
            TaskTimeoutError: ``call.timeout`` seconds elapsed; the child was killed.
            WorkerLostError: the child died while running the call, or could not be started.
            DeserializationError: the child could not load the function or the arguments
                (:class:`~omniq.errors.SignatureError` for a dill payload signed with another
                key), or the parent could not decode the result.
            asyncio.CancelledError: the awaiting coroutine was cancelled.
            RuntimeError: the executor is shut down.
        """
        self._busy += 1
        try:
            child = await self._pool.acquire()
        except BaseException as exc:
            self._busy -= 1
            if isinstance(exc, asyncio.CancelledError):
                call.context.cancel_event.set()
            raise
        reply = child.submit(_run_message(call))
        try:
            async with asyncio.timeout(call.timeout) as scope:
                outcome = await asyncio.shield(reply)
        except TimeoutError:
            if not scope.expired():
                raise
            call.context.cancel_event.set()
            if not reply.done():
                self._busy -= 1
                self._pool.retire(child, kill=True)
                raise TaskTimeoutError(
                    f"task exceeded its timeout of {call.timeout} s; its process child "
                    f"(pid {child.pid}) was killed"
                ) from None
            outcome = reply.result()  # it answered as the time ran out
        except asyncio.CancelledError:
            call.context.cancel_event.set()
            self._stop_cancelled(child, reply, call.context.task_id)
            raise
        self._busy -= 1
        self._give_back(child, outcome)
        return self._value(child, outcome, call)

    def _stop_cancelled(
        self, child: ChildProcess, reply: asyncio.Future[Reply], task_id: str
    ) -> None:
        if reply.done() or self.terminate_on_cancel:
            self._busy -= 1
            if reply.done():
                self._give_back(child, reply.result())
            else:
                self._pool.retire(child, kill=True)
            return
        child.send(Cancel(task_id=task_id))  # the slot stays busy until the function returns

        def finished(done: asyncio.Future[Reply]) -> None:
            self._busy -= 1
            self._give_back(child, done.result())

        reply.add_done_callback(finished)

    def _give_back(self, child: ChildProcess, outcome: Reply) -> None:
        if isinstance(outcome, Lost):
            return  # the pool saw it exit and replaces it
        recycle = False
        if self.max_tasks_per_child is not None and child.tasks_run >= self.max_tasks_per_child:
            recycle = True
        if self.max_memory_mb is not None and outcome.rss_bytes > self.max_memory_mb * _MIB:
            log.info(
                "process child %d uses %.0f MiB (limit %d MiB); replacing it",
                child.pid,
                outcome.rss_bytes / _MIB,
                self.max_memory_mb,
            )
            recycle = True
        self._pool.release(child, recycle=recycle)

    def _value(self, child: ChildProcess, outcome: Reply, call: Call) -> Any:
        if isinstance(outcome, Lost):
            raise WorkerLostError(
                f"process child (pid {child.pid}) died while running task {call.context.task_id}, "
                f"with {describe_exit(outcome.exitcode)}"
            )
        return _decode(self._serializer, outcome)

    async def shutdown(self) -> None:
        """Stop the children: each is asked to exit, and killed if it has not after a few
        seconds. Calls after this raise :class:`RuntimeError`."""
        await self._pool.shutdown()


def _run_message(call: Call) -> Run:
    task, context = call.task, call.context
    return Run(
        task_id=context.task_id,
        attempt=context.attempt,
        queue=context.queue,
        worker_id=context.worker_id,
        func=task.func,
        func_bytes=task.func_bytes,
        payload=task.payload,
        want_result=task.result_ttl != 0,
    )


def _decode(serializer: Serializer, done: Done) -> Any:
    if done.error is not None:
        if not done.refused:
            raise CallFailedError(done.error)
        for refusal in (SignatureError, PayloadTooLargeError, SerializationError):
            if done.error.type == type_path(refusal):
                raise refusal(done.error.message)
        raise DeserializationError(done.error.message)
    return None if done.value is None else serializer.loads(done.value)

"""The worker: claims due tasks under a lease, runs them on an executor, records the outcome.

Four coroutines cooperate on one event loop:

- the **claim loop** takes up to the free capacity in one ``claim`` call and starts each task;
  when nothing is due it sleeps with exponential backoff (5 ms up to ``poll_interval``), and an
  in-process enqueue or a freed slot wakes it at once;
- the **heartbeat** extends every held lease each ``lease / 3`` seconds, learns about requested
  cancellations, and stops tasks whose lease was lost;
- the **finisher** writes outcomes in batches (group commit: whatever accumulated while the previous
  write ran goes in the next one), so throughput grows with load while an idle worker writes each
  outcome at once;
- the **janitor** recovers expired leases of dead workers and purges old records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omniq._context import TaskContext
from omniq._events import EventRecorder
from omniq._functions import LOCAL_TOKEN_HEADER, FunctionResolver
from omniq._ids import new_id
from omniq.backend import Backend, Outcome
from omniq.errors import DeserializationError, LeaseLostError, SerializationError, TaskTimeoutError
from omniq.executors import Call, Executor
from omniq.models import ErrorInfo, EventType, Task, TaskState
from omniq.serialization import Serializer, error_info
from omniq.worker._options import WorkerOptions

__all__ = ["Worker"]

log = logging.getLogger("omniq.worker")

_MIN_SLEEP = 0.005
_PURGE_EVERY = 60.0

# Why a running asyncio task was cancelled by the worker itself.
_CANCELLED, _LEASE_LOST, _SHUTDOWN = "cancelled", "lease_lost", "shutdown"


_COUNTER_OF = {
    EventType.COMPLETE: "succeeded",
    EventType.ERROR: "failed",
    EventType.RETRY: "retried",
    EventType.CANCELLED: "cancelled",
}


@dataclass(slots=True)
class _Pending:
    """An outcome waiting to be stored, with the event to record once it is."""

    task: Task
    event: EventType
    detail: str
    outcome: Outcome
    failures: int = 0


def default_worker_id() -> str:
    """``host:pid:random`` — unique per worker, readable in listings."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


class Worker:
    """Claims and runs tasks from one backend.

    Args:
        backend: an opened backend.
        executors: the executors this worker hosts, by name; tasks naming another executor are
            left for workers that host it.
        options: queues, lease, polling, shutdown grace and retention (see :class:`WorkerOptions`).
        serializer: decodes arguments and encodes results.
        events: where task events go.
        worker_id: this worker's id; defaults to ``host:pid:random``.
        on_finished: called with the ids of tasks whose outcome was just stored (used by the
            embedded client to wake result waiters in the same process).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        executors: dict[str, Executor],
        options: WorkerOptions,
        serializer: Serializer,
        events: EventRecorder,
        worker_id: str | None = None,
        on_finished: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        if options.default_executor not in executors:
            raise ValueError(f"default executor {options.default_executor!r} is not hosted")
        self.backend = backend
        self.executors = executors
        self.options = options
        self.worker_id = worker_id or default_worker_id()
        self.counters: dict[str, int] = dict.fromkeys(
            ("claimed", "succeeded", "failed", "retried", "cancelled", "lost"), 0
        )
        self._serializer = serializer
        self._resolver = FunctionResolver(serializer)
        self._events = events
        self._on_finished = on_finished
        self._running: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, int] = {}  # task id -> attempt, until the outcome is stored
        self._stop_reasons: dict[str, str] = {}
        self._outcomes: list[_Pending] = []
        self._finishing: set[str] = set()  # ids whose outcome is being written right now
        self._outcome_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._claimer: asyncio.Task[None] | None = None
        self._starting = 0  # claimed tasks not yet handed to their executor
        self._stopping = False
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the executors and the worker's loops on the running event loop."""
        if self._started:
            return
        self._started = True
        for executor in self.executors.values():
            await executor.start()
        self._events.start()
        self._claimer = asyncio.create_task(self._claim_loop(), name="omniq-worker-claim")
        for coro, name in (
            (self._heartbeat_loop(), "heartbeat"),
            (self._finish_loop(), "finish"),
            (self._janitor_loop(), "janitor"),
        ):
            self._loops.append(asyncio.create_task(coro, name=f"omniq-worker-{name}"))
        log.info(
            "worker %s started: queues=%s executors=%s",
            self.worker_id,
            ",".join(self.options.queues),
            ",".join(f"{n}x{e.concurrency}" for n, e in self.executors.items()),
        )

    def wake(self) -> None:
        """Make the claim loop poll now (called on in-process enqueue)."""
        self._wake.set()

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: stop claiming, let running tasks finish within ``grace`` seconds,
        then cancel the rest and release their leases so another worker takes them at once.

        Args:
            grace: seconds to wait for running tasks; defaults to ``options.shutdown_grace``.
        """
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        # Let a claim in flight complete and start its tasks, so none is left claimed but unknown.
        if self._claimer is not None:
            await self._claimer
        grace = self.options.shutdown_grace if grace is None else grace
        running = list(self._running.values())
        if running:
            log.info("worker %s draining %d running task(s)", self.worker_id, len(running))
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                self._stop_reasons[task.get_name()] = _SHUTDOWN
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._flush_outcomes()
        await self._release_held()
        for loop_task in self._loops:
            loop_task.cancel()
        for loop_task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        self._loops.clear()
        await self._events.stop()
        for executor in self.executors.values():
            await executor.shutdown()
        log.info("worker %s stopped: %s", self.worker_id, self.counters)

    async def _release_held(self) -> None:
        if not self._held:
            return
        leases = list(self._held.items())
        try:
            released = await self.backend.release(leases)
        except Exception as exc:  # their leases will expire and be recovered instead
            log.warning("could not release %d task(s): %s", len(leases), exc)
            return
        log.info("released %d unfinished task(s) for other workers", len(released))
        for task in await self.backend.get_tasks(released):
            if task is not None:
                self._events.record(
                    task,
                    EventType.RELEASED,
                    worker_id=self.worker_id,
                    detail="worker shutting down",
                )
        self._held.clear()

    # -- claiming ----------------------------------------------------------------------------
    def _free_slots(self) -> int:
        return sum(e.available() for e in self.executors.values()) - self._starting

    async def _claim_loop(self) -> None:
        sleep = _MIN_SLEEP
        while not self._stopping:
            free = self._free_slots()
            if free <= 0:
                await self._wait_for_wake(self.options.poll_interval)
                continue
            try:
                tasks = await self.backend.claim(
                    queues=self.options.queues,
                    worker_id=self.worker_id,
                    limit=free,
                    lease=self.options.lease,
                    executors=list(self.executors),
                )
            except Exception as exc:
                log.warning("claim failed (%s: %s); retrying in %.1f s", type(exc).__name__, exc, 1)
                await self._wait_for_wake(1.0)
                continue
            for task in tasks:
                self._start_task(task)
            if tasks:
                sleep = _MIN_SLEEP
                if len(tasks) < free:  # the queue is drained for now
                    await self._wait_for_wake(_MIN_SLEEP)
                else:
                    await asyncio.sleep(0)  # let the started tasks begin
            else:
                await self._wait_for_wake(sleep)
                sleep = min(sleep * 2, self.options.poll_interval)

    async def _wait_for_wake(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    def _start_task(self, task: Task) -> None:
        self.counters["claimed"] += 1
        self._held[task.id] = task.attempt
        self._starting += 1
        runner = asyncio.create_task(self._execute(task), name=task.id)
        self._running[task.id] = runner
        runner.add_done_callback(self._task_done)

    def _task_done(self, runner: asyncio.Task[None]) -> None:
        self._running.pop(runner.get_name(), None)
        self._wake.set()  # a slot is free
        if not runner.cancelled() and runner.exception() is not None:
            log.error(
                "internal error running task %s", runner.get_name(), exc_info=runner.exception()
            )

    # -- execution ---------------------------------------------------------------------------
    def _executor_for(self, task: Task) -> Executor:
        return self.executors[task.executor or self.options.default_executor]

    async def _execute(self, task: Task) -> None:
        try:
            await self._run_and_record(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours must not leave the task held forever
            log.exception("internal error while running task %s", task.id)
            self._fail(task, error_info(exc), retry=True)

    async def _run_and_record(self, task: Task) -> None:
        context = TaskContext(
            task_id=task.id, attempt=task.attempt, queue=task.queue, worker_id=self.worker_id
        )
        try:
            fn = self._resolver.resolve(
                task.func, task.func_bytes, task.headers.get(LOCAL_TOKEN_HEADER)
            )
            args, kwargs = self._serializer.loads_call(task.payload)
        except Exception as exc:  # undecodable record: this task fails alone, never retried
            self._starting -= 1
            if not isinstance(exc, DeserializationError):
                exc = DeserializationError(
                    f"cannot decode task {task.id}: {type(exc).__name__}: {exc}"
                )
            self._fail(task, error_info(exc), retry=False)
            return
        executor = self._executor_for(task)
        self._events.record(task, EventType.EXECUTING, worker_id=self.worker_id)
        call = Call(fn=fn, args=args, kwargs=kwargs, timeout=task.timeout, context=context)
        run = executor.run(call)
        self._starting -= 1
        try:
            value = await run
        except asyncio.CancelledError:
            reason = self._stop_reasons.pop(task.id, None)
            if reason == _CANCELLED:
                self._cancelled(task, "cancelled while running")
            elif reason is None:
                raise
            return  # lease lost (another worker owns it) or shutdown (released later)
        except TaskTimeoutError as exc:
            self._events.record(task, EventType.TIMEOUT, worker_id=self.worker_id, detail=str(exc))
            self._fail(task, error_info(exc), retry=True)
            return
        except BaseException as exc:  # the task's own error, whatever its type (SystemExit too)
            self._fail(task, error_info(exc), retry=True)
            return
        self._succeed(task, value)

    def _succeed(self, task: Task, value: Any) -> None:
        now = self.backend.clock.now()
        data: bytes | None = None
        expires: float | None = None
        if task.result_ttl != 0:
            try:
                data = self._serializer.dumps(value)
            except SerializationError as exc:
                self._fail(task, error_info(exc), retry=False)
                return
            if task.result_ttl is not None:
                expires = now + task.result_ttl
        self._submit(
            task,
            EventType.COMPLETE,
            "",
            Outcome(
                task_id=task.id,
                attempt=task.attempt,
                state=TaskState.SUCCESS,
                finished_at=now,
                result=data,
                result_expires_at=expires,
            ),
        )

    def _fail(self, task: Task, error: ErrorInfo, *, retry: bool) -> None:
        now = self.backend.clock.now()
        detail = f"{error.type}: {error.message}"
        if retry and task.runs_used <= task.max_retries:
            delay = task.retry_delay if task.retry_delay is not None else self.options.retry_delay
            event, state, retry_at = EventType.RETRY, TaskState.SCHEDULED, now + delay
        else:
            log.info("task %s (%s) failed: %s", task.id, task.func, detail)
            event, state, retry_at = EventType.ERROR, TaskState.FAILED, None
        self._submit(
            task,
            event,
            detail,
            Outcome(
                task_id=task.id,
                attempt=task.attempt,
                state=state,
                finished_at=now,
                error=error,
                retry_at=retry_at,
            ),
        )

    def _cancelled(self, task: Task, message: str) -> None:
        error = ErrorInfo(type="omniq.errors.TaskCancelledError", message=message)
        self._submit(
            task,
            EventType.CANCELLED,
            message,
            Outcome(
                task_id=task.id,
                attempt=task.attempt,
                state=TaskState.CANCELLED,
                finished_at=self.backend.clock.now(),
                error=error,
            ),
        )

    # -- finishing ---------------------------------------------------------------------------
    def _submit(self, task: Task, event: EventType, detail: str, outcome: Outcome) -> None:
        self._outcomes.append(_Pending(task, event, detail, outcome))
        self._outcome_ready.set()

    async def _finish_loop(self) -> None:
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            await self._flush_outcomes()

    async def _flush_outcomes(self) -> None:
        """Store every pending outcome (group commit), then record events and wake waiters.

        A write that fails is retried with backoff, nothing is dropped; when a batch fails its
        outcomes are retried one by one, so one outcome the store keeps refusing cannot hold up
        the others. An outcome refused as invalid (``ValueError``/``TypeError``) several times is
        given up: its lease then expires and the task is recovered like a dead worker's.
        """
        delay = 0.05
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            self._finishing = {p.task.id for p in batch}
            try:
                stored, failed = await self._store_outcomes(batch)
            finally:
                self._finishing = set()
            self._committed(stored)
            if failed:
                self._outcomes[:0] = failed
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                if self._stopping and delay >= 5.0:
                    return  # leases will expire and other workers recover the tasks

    async def _store_outcomes(self, batch: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """Write a batch; returns ``(stored, to_retry)``."""
        try:
            await self.backend.finish([p.outcome for p in batch])
            return batch, []
        except LeaseLostError as exc:
            return self._without_lost(batch, exc), []
        except Exception as exc:
            if len(batch) == 1:
                return [], self._keep_for_retry(batch[0], exc)
            log.warning("storing %d outcome(s) failed (%s); retrying one by one", len(batch), exc)
        stored, retry = [], []
        for pending in batch:
            done, again = await self._store_outcomes([pending])
            stored += done
            retry += again
        return stored, retry

    def _without_lost(self, batch: list[_Pending], exc: LeaseLostError) -> list[_Pending]:
        lost = set(exc.task_ids)
        self.counters["lost"] += len(lost)
        log.warning("%s; their outcome here was discarded", exc)
        for task_id in lost:
            self._held.pop(task_id, None)
        return [p for p in batch if p.task.id not in lost]

    def _keep_for_retry(self, pending: _Pending, exc: Exception) -> list[_Pending]:
        pending.failures += 1
        if isinstance(exc, ValueError | TypeError) and pending.failures >= 5:
            log.error("giving up storing the outcome of task %s: %s", pending.task.id, exc)
            self._held.pop(pending.task.id, None)
            return []
        log.warning("storing the outcome of task %s failed: %s; retrying", pending.task.id, exc)
        return [pending]

    def _committed(self, stored: list[_Pending]) -> None:
        for p in stored:
            self._held.pop(p.task.id, None)
            self.counters[_COUNTER_OF[p.event]] += 1
            self._events.record(p.task, p.event, worker_id=self.worker_id, detail=p.detail)
        if stored and self._on_finished is not None:
            self._on_finished([p.task.id for p in stored])

    # -- leases ------------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = self.options.lease / 3
        while True:
            await asyncio.sleep(interval)
            if not self._held:
                continue
            leases = list(self._held.items())
            try:
                to_cancel = await self.backend.extend_leases(leases, lease=self.options.lease)
            except LeaseLostError as exc:
                to_cancel = list(exc.cancel_requested)
                # Outcomes stored while the heartbeat ran are not lost leases, just finished ones.
                lost = [t for t in exc.task_ids if t in self._held and t not in self._finishing]
                for task_id in lost:
                    self._held.pop(task_id, None)
                    self._stop(task_id, _LEASE_LOST)
                if lost:
                    log.warning("lease lost for %s; stopped them here", ", ".join(lost))
            except Exception as exc:
                log.warning("lease heartbeat failed: %s: %s", type(exc).__name__, exc)
                continue
            for task_id in to_cancel:
                self._stop(task_id, _CANCELLED)

    def _stop(self, task_id: str, reason: str) -> None:
        runner = self._running.get(task_id)
        if runner is not None and not runner.done():
            self._stop_reasons[task_id] = reason
            runner.cancel()

    async def _janitor_loop(self) -> None:
        interval = max(0.2, min(self.options.lease / 4, 5.0))
        since_purge = _PURGE_EVERY  # purge soon after start
        while True:
            try:
                for task in await self.backend.requeue_expired():
                    self._events.record(
                        task,
                        EventType.LEASE_EXPIRED,
                        detail=task.error.message if task.error else "",
                    )
                if since_purge >= _PURGE_EVERY:
                    since_purge = 0.0
                    now = self.backend.clock.now()
                    await self.backend.purge(
                        finished_before=now - self.options.retention,
                        events_before=now - self.options.event_retention,
                    )
            except Exception as exc:
                log.warning("janitor: %s: %s", type(exc).__name__, exc)
                log.debug("janitor traceback:\n%s", traceback.format_exc())
            await asyncio.sleep(interval)
            since_purge += interval

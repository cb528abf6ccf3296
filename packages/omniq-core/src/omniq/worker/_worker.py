"""The worker: claims due tasks under a lease, runs them on an executor, records the outcome.

Three coroutines cooperate on one event loop:

- the **exchange loop** stores the outcomes that accumulated since its last round and claims up
  to the free capacity, both in one ``Backend.finish_and_claim`` round trip (one transaction on
  SQL stores). Under load this is group commit: whatever finished while the previous round ran
  goes into the next. When nothing is due it sleeps with exponential backoff (5 ms up to
  ``poll_interval``); a finished task, an in-process enqueue or a freed slot wakes it at once;
- the **heartbeat** extends every held lease each ``lease / 3`` seconds, learns about requested
  cancellations, and stops tasks whose lease was lost;
- the **janitor** recovers expired leases of dead workers and purges old records.

A fourth, the **health** loop (:mod:`omniq.worker._health`), keeps the worker's record in the
backend (``omniq workers``) fresh every ``options.heartbeat`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from omniq._callbacks import Callbacks
from omniq._context import TaskContext
from omniq._dependencies import parent_values
from omniq._events import EventLogger
from omniq._functions import LOCAL_TOKEN_HEADER, FunctionResolver
from omniq._ids import new_id
from omniq._offload import ResultOffload
from omniq._results import ResultReader
from omniq._retrying import RetryDefaults
from omniq.backend import Backend
from omniq.errors import (
    BackendError,
    CallFailedError,
    DeserializationError,
    LeaseLostError,
    OmniQError,
    SerializationError,
    TaskTimeoutError,
)
from omniq.executors import Call, Executor
from omniq.models import WORKER_COUNTERS, ErrorInfo, EventType, Task, TaskState
from omniq.schedules import Scheduler
from omniq.serialization import Serializer, error_info
from omniq.worker import _outcomes
from omniq.worker._breaker import CircuitBreaker, CircuitOpenError
from omniq.worker._dependents import DependencySettling, WorkerSlots
from omniq.worker._health import HealthReporting
from omniq.worker._leases import LEASE_LOST, SHUTDOWN, STOP_CANCELLED, LeaseKeeping, Run
from omniq.worker._options import WorkerOptions
from omniq.worker._outcomes import COUNTER_OF, PendingOutcome
from omniq.worker._stats import ExecutorStats

__all__ = ["Worker"]

_TERMINAL_EVENTS = frozenset({EventType.COMPLETE, EventType.ERROR, EventType.CANCELLED})

log = logging.getLogger("omniq.worker")

_MIN_SLEEP = 0.005
_GIVE_UP_ROUNDS_WHEN_STOPPING = 4  # about 0.2 + 0.4 + 0.8 + 1.6 s of retries


def default_worker_id() -> str:
    """``host:pid:random`` — unique per worker, readable in listings."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


class Worker(DependencySettling, LeaseKeeping, HealthReporting):
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
        offload: where results too large to store inline go (``OMNIQ_RESULT_OFFLOAD_URL``);
            default: none, with the backend's ``max_value_bytes`` enforced.
        callbacks: the lifecycle callbacks to run (global and queue layers; the per-task layer
            is looked up by each task's function); default: the ``omniq_add_middleware``
            plugins' middleware only.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        executors: dict[str, Executor],
        options: WorkerOptions,
        serializer: Serializer,
        events: EventLogger,
        worker_id: str | None = None,
        on_finished: Callable[[Sequence[str]], None] | None = None,
        offload: ResultOffload | None = None,
        callbacks: Callbacks | None = None,
    ) -> None:
        if options.default_executor not in executors:
            raise ValueError(f"default executor {options.default_executor!r} is not hosted")
        self.backend = backend
        self.executors = executors
        self.options = options
        self.worker_id = worker_id or default_worker_id()
        self.counters: dict[str, int] = dict.fromkeys(WORKER_COUNTERS, 0)
        self._serializer = serializer
        self._resolver = FunctionResolver(serializer)
        self._events = events
        self._on_finished = on_finished
        self._offload = offload or ResultOffload(backend_limit=backend.capabilities.max_value_bytes)
        # Reads the parents' values a chain link or chord callback receives.
        self._parent_results = ResultReader(backend, serializer, self._offload)
        self.callbacks = callbacks or Callbacks.from_plugins(events=events)
        # One entry per task id, for its newest attempt: when this worker claims a task again
        # (its older run here outlived its lease), the older run is stopped and replaced.
        self._runs: dict[str, Run] = {}
        self._held: dict[str, int] = {}  # task id -> attempt, until the outcome is stored
        self._outcomes: list[PendingOutcome] = []
        self._finishing: set[str] = set()  # ids whose outcome is being written right now
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._exchanger: asyncio.Task[None] | None = None
        self._round = asyncio.Lock()  # held while an exchange round trip is in flight
        self.executor_stats = {
            name: ExecutorStats(name=name, concurrency=e.concurrency)
            for name, e in executors.items()
        }
        self._starting = dict.fromkeys(executors, 0)  # claimed, not yet handed to the executor
        self._stopping = False  # no more claims
        self._drained = False  # no more outcomes will come: the exchange loop may end
        self._started = False
        self.scheduler: Scheduler | None = None
        if options.scheduler:
            self.scheduler = Scheduler(
                backend,
                defaults=options.task_defaults,
                poll_interval=options.poll_interval,
                on_fired=self._scheduled,
            )
        self._scheduling: asyncio.Task[None] | None = None
        self._init_health()
        self._init_dependents()
        # What a running task sees of its executor's slots (to lend its own while it waits).
        self._slots = {
            name: WorkerSlots(
                executors, name, options.default_executor, self._wake.set, options.queues
            )
            for name in executors
        }
        # One breaker for every call the loops make to this backend (see _breaker.py).
        self._breaker = CircuitBreaker(
            failure_threshold=options.breaker_threshold,
            max_backoff=options.breaker_max_backoff,
            name=self.worker_id,
            on_close=self._store_back,
            on_open=self._store_down,
        )

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the executors and the worker's loops on the running event loop."""
        if self._started:
            return
        self._started = True
        for executor in self.executors.values():
            await executor.start()
        self._events.start()
        self._exchanger = asyncio.create_task(self._exchange_loop(), name="omniq-worker-exchange")
        for coro, name in (
            (self._heartbeat_loop(), "heartbeat"),
            (self._janitor_loop(), "janitor"),
            (self._settle_loop(), "dependents"),
        ):
            self._loops.append(asyncio.create_task(coro, name=f"omniq-worker-{name}"))
        if self.scheduler is not None:
            self._scheduling = asyncio.create_task(
                self.scheduler.run(), name="omniq-worker-scheduler"
            )
        await self._start_health()
        self._worker_event(EventType.WORKER_STARTED, f"queues={','.join(self.options.queues)}")
        log.info(
            "worker %s started: queues=%s executors=%s",
            self.worker_id,
            ",".join(self.options.queues),
            ",".join(f"{n}x{e.concurrency}" for n, e in self.executors.items()),
        )

    def _store_back(self) -> None:
        """The breaker closed: store the outcomes kept meanwhile and refresh the record now."""
        self._worker_event(EventType.CIRCUIT_CLOSED, "store reachable again")
        self._wake.set()
        self._health_now()

    def _store_down(self, last_error: str) -> None:
        """The breaker opened: record it (the event is stored once the store is back)."""
        self._worker_event(EventType.CIRCUIT_OPENED, last_error)

    def _worker_event(self, type: EventType, detail: str) -> None:
        self._events.record(
            None, type, worker_id=self.worker_id, queue=self.options.queues[0], detail=detail
        )

    def wake(self) -> None:
        """Make the exchange loop poll now (called on in-process enqueue)."""
        self._wake.set()

    def wake_scheduler(self) -> None:
        """Make the scheduler loop look at the schedules now (one was added or resumed)."""
        if self.scheduler is not None:
            self.scheduler.wake()

    def _scheduled(self, tasks: list[Task]) -> None:
        """The scheduler enqueued ``tasks`` (a tick it won): record them and claim now."""
        for task in tasks:
            self._events.record(task, EventType.ENQUEUED, detail="scheduled")
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
        if self._scheduling is not None:  # a stopping worker fires no more ticks
            self._scheduling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduling
            self._scheduling = None
        self._health_now()  # the record says "stopping" at once
        # A round in flight may still claim: its tasks start and are drained like the others.
        await self._round_done()
        grace = self.options.shutdown_grace if grace is None else grace
        runs = {run.runner: run for run in self._runs.values() if run.runner is not None}
        if runs:
            log.info("worker %s draining %d running task(s)", self.worker_id, len(runs))
            _, pending = await asyncio.wait(runs, timeout=grace)
            for runner in pending:
                runs[runner].stop(SHUTDOWN)
            if pending:
                await asyncio.wait(pending)
        self._drained = True
        self._wake.set()
        if self._exchanger is not None:
            await self._exchanger  # stores the last outcomes, then ends
        await self._release_held()
        await self._settle_now()
        for loop_task in self._loops:
            loop_task.cancel()
        for loop_task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        self._loops.clear()
        await self._stop_health()
        done = ", ".join(f"{k}={v}" for k, v in self.counters.items())
        self._worker_event(EventType.WORKER_STOPPED, done)
        await self.callbacks.drain(max(grace, self.callbacks.timeout))
        await self._events.stop()
        for executor in self.executors.values():
            await executor.shutdown()
        log.info("worker %s stopped: %s", self.worker_id, self.counters)

    # -- claiming ----------------------------------------------------------------------------
    def _free_slots(self) -> tuple[dict[str, int], int]:
        """Free slots by executor, and how many tasks may be claimed now in all (the sum, within
        the worker's overall cap ``max_running``)."""
        free = {
            name: max(0, e.available() - self._starting[name]) for name, e in self.executors.items()
        }
        limit = sum(free.values())
        cap = self.options.max_running
        if cap is not None:
            running = sum(e.occupied for e in self.executors.values())
            limit = min(limit, max(0, cap - running - sum(self._starting.values())))
        return free, limit

    def executor_snapshot(self) -> list[ExecutorStats]:
        """Each executor's counters, with its busy slots as of now."""
        for name, stats in self.executor_stats.items():
            stats.busy = self.executors[name].in_flight
        return [msgspec.structs.replace(s) for s in self.executor_stats.values()]

    async def _round_done(self) -> None:
        """Wait until the exchange round in flight (if any) has returned."""
        async with self._round:
            pass

    async def _exchange_loop(self) -> None:
        try:
            await self._exchange_rounds()
        except asyncio.CancelledError:
            if not self._drained:  # the event loop is going away without stop(): hand tasks back
                with contextlib.suppress(Exception):
                    await self._release_held()
            raise

    async def _exchange_rounds(self) -> None:
        sleep = _MIN_SLEEP
        failed_rounds = 0
        while True:
            # Breaker open: no round at all (outcomes stay queued, nothing is claimed) until the
            # next probe is due. A drained worker tries anyway: those are its last writes.
            if not self._drained and (wait := self._breaker.retry_in()) > 0:
                await self._wait_for_wake(wait)
                continue
            batch, self._outcomes = self._outcomes, []
            free, limit = ({}, 0) if self._stopping else self._free_slots()
            if not batch and limit <= 0:
                if self._drained:
                    return
                await self._wait_for_wake(self.options.poll_interval)
                continue
            tasks = await self._exchange(batch, free, limit)
            if tasks is None:  # the store failed; the outcomes are queued again
                failed_rounds += 1
                if self._drained and failed_rounds >= _GIVE_UP_ROUNDS_WHEN_STOPPING:
                    log.warning(
                        "store unavailable while stopping: %d outcome(s) not stored; their "
                        "leases will expire and other workers will run those tasks again",
                        len(self._outcomes),
                    )
                    return
                await self._wait_for_wake(min(0.1 * 2**failed_rounds, 5.0))
                continue
            failed_rounds = 0
            for task in tasks:
                self._start_task(task)
            if tasks or batch:
                sleep = _MIN_SLEEP
            if len(tasks) < limit:  # nothing more is due now: wait for news or poll later
                await self._wait_for_wake(sleep)
                sleep = min(sleep * 2, self.options.poll_interval)
            else:
                await asyncio.sleep(0)  # let the started tasks begin

    async def _exchange(
        self, batch: list[PendingOutcome], free: dict[str, int], limit: int
    ) -> list[Task] | None:
        """One round trip: store ``batch`` and claim up to ``limit`` (at most ``free[name]`` for
        each executor); ``None`` if it failed."""
        self._finishing = {p.task.id for p in batch}
        await self._round.acquire()
        try:
            stale, tasks = await self._breaker.call(
                lambda: self.backend.finish_and_claim(
                    [p.outcome for p in batch],
                    queues=self.options.queues,
                    worker_id=self.worker_id,
                    limit=max(limit, 0),
                    lease=self.options.lease,
                    executors=free,
                    default_executor=self.options.default_executor,
                ),
                force=self._drained,
            )
        except CircuitOpenError:  # another loop's probe is in flight: try again later
            self._outcomes[:0] = batch
            return None
        except (ValueError, TypeError) as exc:
            # The store refused the data itself: find the offending outcome(s), store the rest.
            log.warning("storing outcomes failed: %s: %s", type(exc).__name__, exc)
            stored, retry = await self._store_outcomes(batch)
            self._committed(stored)
            self._outcomes[:0] = retry
            return None
        except Exception as exc:  # the store is unavailable: keep everything for the next round
            log.warning("storing outcomes / claiming failed: %s: %s", type(exc).__name__, exc)
            self._outcomes[:0] = batch
            return None
        finally:
            self._finishing = set()
            self._round.release()
        if stale:
            batch = self._without_lost(batch, stale)
        self._committed(batch)
        return tasks

    async def _wait_for_wake(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    def _start_task(self, task: Task) -> None:
        self.counters["claimed"] += 1
        if self._executor_name(task) not in self.executors:
            self._hand_back(task)
            return
        older = self._runs.get(task.id)
        if older is not None:  # our older run of it outlived its lease; this attempt replaces it
            log.warning(
                "task %s: attempt %d replaces this worker's stale attempt %d",
                task.id,
                task.attempt,
                older.task.attempt,
            )
            older.stop(LEASE_LOST)
        run = self._runs[task.id] = Run(task)
        self._held[task.id] = task.attempt
        self._starting[self._executor_name(task)] += 1
        run.runner = asyncio.create_task(self._execute(run), name=f"omniq-task-{task.id}")
        run.runner.add_done_callback(lambda runner: self._task_done(run, runner))

    def _hand_back(self, task: Task) -> None:
        """Release a task for an executor this worker does not host (the backend ignored the
        claim's executor filter): another worker runs it; it uses no retry."""
        log.error(
            "backend %s returned task %s for executor %r, which this worker does not host; "
            "releasing it",
            type(self.backend).__name__,
            task.id,
            task.executor,
        )
        self._held[task.id] = task.attempt
        self._loops.append(asyncio.create_task(self._release_one(task)))

    async def _release_one(self, task: Task) -> None:
        try:
            await self.backend.release([(task.id, task.attempt)])
        except Exception as exc:  # its lease expires and it is recovered instead
            log.warning("could not release task %s: %s", task.id, exc)
        self._unhold(task)

    def _task_done(self, run: Run, runner: asyncio.Task[None]) -> None:
        if self._runs.get(run.task.id) is run:
            del self._runs[run.task.id]
        self._wake.set()  # a slot is free
        if not runner.cancelled() and runner.exception() is not None:
            log.error("internal error running task %s", run.task.id, exc_info=runner.exception())

    # -- execution ---------------------------------------------------------------------------
    def _executor_name(self, task: Task) -> str:
        return task.executor or self.options.default_executor

    async def _execute(self, run: Run) -> None:
        try:
            await self._run_and_record(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours must not leave the task held forever
            log.exception("internal error while running task %s", run.task.id)
            self._fail(run.task, error_info(exc), retry=True)

    async def _run_and_record(self, run: Run) -> None:
        task = run.task
        name = self._executor_name(task)
        context = TaskContext(
            task_id=task.id,
            attempt=task.attempt,
            queue=task.queue,
            worker_id=self.worker_id,
            slots=self._slots[name],
        )
        try:
            fn = self._resolver.resolve(
                task.func, task.func_bytes, task.headers.get(LOCAL_TOKEN_HEADER)
            )
            args, kwargs = self._serializer.loads_call(task.payload)
        except Exception as exc:  # undecodable record: this task fails alone, never retried
            self._starting[name] -= 1
            if not isinstance(exc, DeserializationError):
                exc = DeserializationError(
                    f"cannot decode task {task.id}: {type(exc).__name__}: {exc}"
                )
            self._fail(task, error_info(exc), retry=False)
            return
        if task.pass_results is not None:  # a chain link or chord callback: parents' values first
            try:
                args = (
                    await parent_values(self._parent_results, task),
                    *args,
                )
                task = msgspec.structs.replace(
                    task, payload=self._serializer.dumps_call(args, kwargs)
                )
            except Exception as exc:
                self._starting[name] -= 1
                # A missing or expired parent result never comes back; a store error might.
                missing = isinstance(exc, OmniQError) and not isinstance(exc, BackendError)
                self._fail(task, error_info(exc), retry=not missing)
                return
        self._events.record(task, EventType.EXECUTING, worker_id=self.worker_id)
        if self.callbacks.active:
            calls = self.callbacks.contexts(
                task, TaskState.RUNNING, hooks=("on_start",), worker_id=self.worker_id
            )
            if calls:
                await self.callbacks.run_in_order(task.id, calls)
        call = Call(
            fn=fn, args=args, kwargs=kwargs, timeout=task.timeout, context=context, task=task
        )
        stats = self.executor_stats[name]
        stats.started += 1
        began = time.monotonic()
        running = self.executors[name].run(call)
        self._starting[name] -= 1
        try:
            value = await running
        except BaseException as exc:
            took = time.monotonic() - began
            stats.run_seconds += took
            self._ended_with(run, exc, stats, took)
            return
        took = time.monotonic() - began
        stats.run_seconds += took
        stats.succeeded += 1
        await self._succeed(task, value, took)

    def _ended_with(
        self, run: Run, exc: BaseException, stats: ExecutorStats, took: float | None = None
    ) -> None:
        """Record how a run that raised ended: cancelled, timed out, or failed."""
        task = run.task
        if isinstance(exc, asyncio.CancelledError):
            if run.stop_reason == STOP_CANCELLED:
                stats.cancelled += 1
                self._cancelled(task, "cancelled while running", took)
            elif run.stop_reason is None:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise exc  # the event loop itself is shutting down
                # The task's own code raised CancelledError: an error like any other.
                stats.failed += 1
                self._fail(task, error_info(exc), retry=True, exc=exc, took=took)
            return  # lease lost (another attempt owns it) or shutdown (released later)
        stats.failed += 1
        if isinstance(exc, TaskTimeoutError):
            self._events.record(
                task,
                EventType.TIMEOUT,
                worker_id=self.worker_id,
                detail=str(exc),
                duration=_run_seconds(task, self.backend.clock.now()),
            )
        if isinstance(exc, CallFailedError):  # the function raised in another process
            self._fail(task, exc.info, retry=True, took=took)
        elif isinstance(exc, SerializationError | DeserializationError):
            # its arguments or result cannot travel (an executor decoding or encoding them
            # elsewhere): another run would fail the same way
            self._fail(task, error_info(exc), retry=False, exc=exc, took=took)
        else:  # the task's own error, whatever its type (SystemExit too)
            self._fail(task, error_info(exc), retry=True, exc=exc, took=took)

    async def _succeed(self, task: Task, value: Any, took: float | None = None) -> None:
        data: bytes | None = None
        if task.result_ttl != 0:
            try:
                data = self._serializer.dumps(value)
                if self._offload.needed(len(data)):
                    data = await self._offload_result(task, data)
            except SerializationError as exc:  # too large with nowhere to put it, too
                self._fail(task, error_info(exc), retry=False, exc=exc, took=took)
                return
            except Exception as exc:  # the offload store failed: the run's retry policy applies
                log.warning("task %s: could not offload its result: %s", task.id, exc)
                self._fail(task, error_info(exc), retry=True, exc=exc, took=took)
                return
        pending = _outcomes.success(task, now=self.backend.clock.now(), data=data)
        pending.value, pending.duration = value, took
        self._submit(pending)

    async def _offload_result(self, task: Task, data: bytes) -> bytes:
        """Write a large result to the offload store; the reference is what the backend keeps.

        The object may be deleted once nobody can read it: after the result expires, or after
        this worker's retention, when purge deletes the task (whichever comes first).
        """
        now = self.backend.clock.now()
        deadline = now + self.options.retention
        if task.result_ttl is not None:
            deadline = min(deadline, now + task.result_ttl)
        return await self._offload.offload(task, data, deadline=deadline)

    def _fail(
        self,
        task: Task,
        error: ErrorInfo,
        *,
        retry: bool,
        exc: BaseException | None = None,
        took: float | None = None,
    ) -> None:
        o = self.options
        defaults = RetryDefaults(
            delay=o.retry_delay,
            backoff=o.retry_backoff,
            max_delay=o.retry_max_delay,
            jitter=o.retry_jitter,
        )
        pending = _outcomes.failure(
            task, error, now=self.backend.clock.now(), retry=retry, defaults=defaults, exc=exc
        )
        pending.exc, pending.duration = exc, took
        self._submit(pending)

    def _cancelled(self, task: Task, message: str, took: float | None = None) -> None:
        pending = _outcomes.cancelled(task, message, now=self.backend.clock.now())
        pending.duration = took
        self._submit(pending)

    # -- finishing ---------------------------------------------------------------------------
    def _submit(self, pending: PendingOutcome) -> None:
        self._outcomes.append(pending)
        self._wake.set()

    async def _store_outcomes(
        self, batch: list[PendingOutcome]
    ) -> tuple[list[PendingOutcome], list[PendingOutcome]]:
        """Write outcomes without claiming, splitting the batch when it fails, so one outcome the
        store keeps refusing cannot hold up the others; returns ``(stored, to_retry)``."""
        try:
            await self.backend.finish([p.outcome for p in batch])
            return batch, []
        except LeaseLostError as exc:
            return self._without_lost(batch, exc.task_ids), []
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

    def _without_lost(
        self, batch: list[PendingOutcome], task_ids: Sequence[str]
    ) -> list[PendingOutcome]:
        lost = set(task_ids)
        self.counters["lost"] += len(lost)
        log.warning(
            "lease lost for %s: a newer attempt owns them; their outcome here was discarded",
            ", ".join(sorted(lost)),
        )
        kept = []
        for p in batch:
            if p.task.id in lost:
                self._unhold(p.task)
            else:
                kept.append(p)
        return kept

    def _unhold(self, task: Task) -> None:
        """Forget the lease of this attempt (and only this one: a newer attempt may be held)."""
        if self._held.get(task.id) == task.attempt:
            del self._held[task.id]

    def _keep_for_retry(self, pending: PendingOutcome, exc: Exception) -> list[PendingOutcome]:
        """Keep a refused outcome for the next round; one refused as invalid five times is
        given up (its lease then expires and the task is recovered like a dead worker's)."""
        pending.failures += 1
        if isinstance(exc, ValueError | TypeError) and pending.failures >= 5:
            log.error("giving up storing the outcome of task %s: %s", pending.task.id, exc)
            self._unhold(pending.task)
            return []
        log.warning("storing the outcome of task %s failed: %s; retrying", pending.task.id, exc)
        return [pending]

    def _committed(self, stored: list[PendingOutcome]) -> None:
        for p in stored:
            self._unhold(p.task)
            self.counters[COUNTER_OF[p.event]] += 1
            self._events.record(
                p.task,
                p.event,
                worker_id=self.worker_id,
                detail=p.detail,
                duration=_run_seconds(p.task, p.outcome.finished_at),
                error=p.outcome.error,
            )
        self._settle_children_of([p.task.id for p in stored if p.event in _TERMINAL_EVENTS])
        if stored and self._on_finished is not None:
            self._on_finished([p.task.id for p in stored])
        if self.callbacks.active:  # after the store: a lost lease's outcome fires nothing
            for p in stored:
                self.callbacks.spawn(
                    p.task.id,
                    self.callbacks.contexts(
                        p.task,
                        p.outcome.state,
                        worker_id=self.worker_id,
                        value=p.value,
                        error=p.outcome.error,
                        exception=p.exc,
                        retry_at=p.outcome.retry_at,
                        duration=p.duration,
                    ),
                )


def _run_seconds(task: Task, end: float | None) -> float | None:
    """Seconds from the task's claim (``started_at``) to ``end``, by the backend's clock."""
    if task.started_at is None or end is None:
        return None
    return max(0.0, end - task.started_at)

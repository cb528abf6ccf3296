"""Turning a call and its options into the :class:`~omniq.models.Task` record to store."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omniq._canvas import GraphPlan
from omniq._defaults import DEFAULT
from omniq._functions import (
    LOCAL_TOKEN_HEADER,
    bound_to_instance,
    check_arguments,
    function_path,
    local_token,
    needs_dill,
    unwrap_task,
)
from omniq._ids import new_id
from omniq._options import TaskOptions, check_seconds, check_task_ids, with_defaults_from
from omniq._retrying import check_backoff, exception_paths
from omniq.backend import Backend
from omniq.config import Settings
from omniq.errors import ConfigError, NotSupportedError, SerializationError
from omniq.models import Task, TaskState
from omniq.serialization import Serializer

__all__ = ["TaskBuilder"]

log = logging.getLogger("omniq.client")

_TASK_PATH = re.compile(r"[\w.]+:[\w.]+")


class TaskBuilder:
    """Builds task records for one client: defaults from its settings, times from its backend's
    clock, payloads from its serializer.

    Args:
        settings: the producer's settings (defaults for retries, timeout, TTL, retry delay).
        backend: the backend the tasks go to (its clock and capabilities).
        serializer: encodes arguments and, when needed, the function itself.
    """

    def __init__(self, settings: Settings, backend: Backend, serializer: Serializer) -> None:
        self.settings = settings
        self.backend = backend
        self.serializer = serializer

    def function_ref(
        self, func: Callable[..., Any] | str, headers: dict[str, str]
    ) -> tuple[str, bytes | None]:
        """``(path, dill bytes or None)`` naming ``func`` for workers; may add the local token.

        Raises:
            TypeError: ``func`` is neither callable nor a string.
            ConfigError: a string that is not ``"package.module:function"``, or a lambda, closure
                or bound method while no signing key is available.
            omniq.errors.SerializationError: the function cannot be pickled and no worker of
                this process can run it.
        """
        if isinstance(func, str):
            if not _TASK_PATH.fullmatch(func):
                raise ConfigError(f"task path {func!r} must look like 'package.module:function'")
            return func, None
        if not callable(func):
            raise TypeError(f"func must be a callable or an import path, got {func!r}")
        path = function_path(func)
        if not (needs_dill(path) or bound_to_instance(func)):
            return path, None
        token = local_token(func)
        if token is not None:
            headers[LOCAL_TOKEN_HEADER] = token  # the embedded worker runs this very object
        if self.serializer.dill_enabled:
            try:
                return path, self.serializer.dumps_function(func)
            except SerializationError:
                if token is None:
                    raise
                log.warning(
                    "%s cannot travel as dill (it refers to something unpicklable); only this "
                    "process's embedded worker can run it",
                    path,
                )
                return path, None
        if "<" in path or bound_to_instance(func):
            raise ConfigError(
                f"{path} is a lambda, nested function or bound method: a worker cannot import "
                "it. Define it at module level, or set OMNIQ_SECRET_KEY so it travels as signed dill"
            )
        return path, None

    def build(
        self,
        func: Callable[..., Any] | str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        options: TaskOptions,
        *,
        pass_results: tuple[str, ...] | None = None,
        pass_single: bool = False,
        task_id: str | None = None,
    ) -> Task:
        """The task record for ``func(*args, **kwargs)`` with ``options`` (not yet stored).

        For a ``@queue.task`` function, the decorator's options apply where ``options`` leaves
        a field at its default. A task with ``options.depends_on`` is built ``waiting``. With ``pass_results`` (parent
        ids whose values it receives, see :class:`~omniq.models.Task`) the arguments are
        checked with that value in front of ``args``.

        Raises:
            TypeError: ``args``/``kwargs`` of the wrong shape, or a bad ``func``.
            ConfigError: a naive ``eta`` or an unusable option.
            NotSupportedError: a priority on a backend that does not order by priority.
            omniq.errors.SerializationError: an argument cannot be stored.
        """
        decorated = getattr(func, "task_options", None)
        if isinstance(decorated, TaskOptions):  # a @queue.task function: its options, its function
            if decorated is not options:
                options = with_defaults_from(options, decorated)
            func = unwrap_task(func)
        if isinstance(args, str | bytes) or not isinstance(args, Sequence):
            raise TypeError(f"args must be a tuple or list of arguments, got {type(args).__name__}")
        if kwargs is not None and (
            not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs)
        ):
            raise TypeError(f"kwargs must be a mapping with str keys, got {kwargs!r}")
        headers = dict(options.headers or {})
        path, func_bytes = self.function_ref(func, headers)
        if not isinstance(func, str):
            checked = tuple(args) if pass_results is None else (None, *args)
            check_arguments(func, checked, dict(kwargs or {}), path)
        now = self.backend.clock.now()
        run_at = now
        if options.eta is not None:
            if options.eta.tzinfo is None or options.eta.utcoffset() is None:
                raise ConfigError(
                    f"eta={options.eta!r} is a naive datetime; give it a time zone, "
                    "e.g. datetime.now(timezone.utc) + timedelta(minutes=5)"
                )
            run_at = options.eta.timestamp()
        elif options.delay is not None:
            run_at = now + (check_seconds("delay", options.delay) or 0.0)
        if options.priority and not self.backend.capabilities.priority:
            raise NotSupportedError(
                f"{type(self.backend).__name__} does not order tasks by priority; "
                "enqueue without priority or use a backend that declares it"
            )
        s = self.settings
        result_ttl = s.result_ttl if options.result_ttl is DEFAULT else options.result_ttl
        timeout = s.task_timeout if options.timeout is DEFAULT else options.timeout
        retry_delay = s.retry_delay if options.retry_delay is None else options.retry_delay
        max_delay = (
            s.retry_max_delay if options.retry_max_delay is None else options.retry_max_delay
        )
        return Task(
            id=task_id or new_id(),
            func=path,
            func_bytes=func_bytes,
            payload=self.serializer.dumps_call(tuple(args), dict(kwargs or {})),
            run_at=run_at,
            created_at=now,
            queue=options.queue or "default",
            priority=options.priority,
            executor=options.executor,
            state=TaskState.WAITING
            if options.depends_on
            else TaskState.SCHEDULED
            if run_at > now
            else TaskState.PENDING,
            max_retries=s.retry_attempts if options.retries is DEFAULT else options.retries,
            retry_delay=check_seconds("retry_delay", retry_delay),
            retry_backoff=s.retry_backoff
            if options.retry_backoff is None
            else check_backoff(options.retry_backoff),
            retry_max_delay=check_seconds("retry_max_delay", max_delay),
            retry_jitter=s.retry_jitter if options.retry_jitter is None else options.retry_jitter,
            retry_on=exception_paths(options.retry_on, "retry_on"),
            give_up_on=exception_paths(options.give_up_on, "give_up_on") or (),
            timeout=check_seconds("timeout", timeout, allow_zero=False, allow_none=True),
            result_ttl=check_seconds("result_ttl", result_ttl, allow_none=True),
            idempotency_key=options.idempotency_key,
            headers=headers,
            depends_on=check_task_ids("depends_on", options.depends_on),
            pass_results=pass_results,
            pass_single=pass_single,
        )

    def build_plan(self, plan: GraphPlan) -> list[Task]:
        """The task records of a compiled graph, parents first, with the plan's ids.

        Raises:
            ConfigError: a node has an ``idempotency_key`` or ``depends_on`` of its own (a
                graph's tasks take their parents from the graph); besides :meth:`build`'s.
        """
        tasks = []
        for planned in plan.tasks:
            sig = planned.signature
            if sig.options.idempotency_key is not None or sig.options.depends_on:
                name = sig.func if isinstance(sig.func, str) else function_path(sig.func)
                raise ConfigError(
                    f"{name} in a task graph has its own idempotency_key or depends_on; "
                    "a graph's tasks take their parents from the graph "
                    "(use enqueue_graph(..., depends_on=[...]) for outside parents)"
                )
            tasks.append(
                self.build(
                    sig.func,
                    sig.args,
                    sig.kwargs,
                    dataclasses.replace(sig.options, depends_on=planned.depends_on),
                    pass_results=planned.pass_results,
                    pass_single=planned.pass_single,
                    task_id=planned.id,
                )
            )
        return tasks

"""Per-task options and their validation: a bad option fails in the caller, naming itself."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from omniq._defaults import DEFAULT, Default
from omniq._middleware import CallbackArgs
from omniq._retrying import check_backoff, exception_paths
from omniq.errors import ConfigError
from omniq.plugins._registry import check_executor_name

__all__ = [
    "TaskOptions",
    "TaskOptionsArgs",
    "check_seconds",
    "check_task_ids",
    "with_defaults_from",
]

_PRIORITY_RANGE = (-(2**31), 2**31 - 1)
_MAX_RETRIES = 10_000
_EXECUTOR_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def check_seconds(
    name: str, value: Any, *, allow_zero: bool = True, allow_none: bool = False
) -> float | None:
    """``value`` as finite seconds (a number or a ``timedelta``).

    Raises:
        TypeError: not a number, a ``timedelta`` (or ``None`` where allowed).
        ConfigError: NaN, infinite, negative, or zero where it is not allowed.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ConfigError(f"{name}={value!r}: must be a finite number of seconds")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}={value!r}: must be {bound} seconds")
    return seconds


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigError(f"{name}={value}: must be between {low} and {high}")


def _check_name(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string, got {value!r}")


class TaskOptionsArgs(CallbackArgs, total=False):
    """The keyword arguments of ``@queue.task(...)`` and ``.options(...)``, typed for mypy
    (the lifecycle callbacks ``on_*`` come from :class:`~omniq._middleware.CallbackArgs`)."""

    queue: str | None
    delay: float | timedelta | None
    eta: datetime | None
    priority: int
    timeout: float | Default | None
    retries: int | Default
    retry_delay: float | timedelta | None
    retry_backoff: float | None
    retry_max_delay: float | timedelta | None
    retry_jitter: bool | None
    retry_on: Sequence[type[BaseException] | str] | None
    give_up_on: Sequence[type[BaseException] | str] | None
    result_ttl: float | timedelta | Default | None
    idempotency_key: str | None
    executor: str | None
    headers: Mapping[str, str] | None
    depends_on: Sequence[str]


@dataclass(frozen=True, kw_only=True)
class TaskOptions:
    """Per-task options, as :meth:`omniq.AsyncTaskQueue.enqueue` documents them.

    Validated on construction (so ``@queue.task(...)`` fails at decoration time).

    Raises:
        TypeError: an option has the wrong type; the message names it.
        ConfigError: an option has an unusable value (negative, NaN, out of range…).
    """

    queue: str | None = None
    delay: float | timedelta | None = None
    eta: datetime | None = None
    priority: int = 0
    timeout: float | Default | None = DEFAULT
    retries: int | Default = DEFAULT
    retry_delay: float | timedelta | None = None
    retry_backoff: float | None = None
    retry_max_delay: float | timedelta | None = None
    retry_jitter: bool | None = None
    retry_on: Sequence[type[BaseException] | str] | None = None
    give_up_on: Sequence[type[BaseException] | str] | None = None
    result_ttl: float | timedelta | Default | None = DEFAULT
    idempotency_key: str | None = None
    executor: str | None = None
    headers: Mapping[str, str] | None = None
    depends_on: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.queue is not None:
            _check_name("queue", self.queue)
        if self.delay is not None:
            check_seconds("delay", self.delay)
        if self.eta is not None and not isinstance(self.eta, datetime):
            raise TypeError(f"eta must be an aware datetime, got {type(self.eta).__name__}")
        if self.delay is not None and self.eta is not None:
            raise ConfigError("pass either delay or eta, not both")
        _check_int("priority", self.priority, *_PRIORITY_RANGE)
        if self.timeout is not DEFAULT:
            check_seconds("timeout", self.timeout, allow_zero=False, allow_none=True)
        if self.retries is not DEFAULT:
            _check_int("retries", self.retries, 0, _MAX_RETRIES)
        if self.retry_delay is not None:
            check_seconds("retry_delay", self.retry_delay)
        if self.retry_backoff is not None:
            check_backoff(self.retry_backoff)
        if self.retry_max_delay is not None:
            check_seconds("retry_max_delay", self.retry_max_delay)
        if self.retry_jitter is not None and not isinstance(self.retry_jitter, bool):
            raise TypeError(f"retry_jitter must be a bool, got {self.retry_jitter!r}")
        exception_paths(self.retry_on, "retry_on")
        exception_paths(self.give_up_on, "give_up_on")
        if self.result_ttl is not DEFAULT:
            try:
                check_seconds("result_ttl", self.result_ttl, allow_none=True)
            except ConfigError as exc:
                raise ConfigError(
                    f"{exc}; use None (keep forever), 0 (store nothing) or seconds > 0"
                ) from None
        if self.idempotency_key is not None:
            _check_name("idempotency_key", self.idempotency_key)
        if self.executor is not None:
            if not (isinstance(self.executor, str) and _EXECUTOR_NAME.fullmatch(self.executor)):
                raise ConfigError(
                    f"executor={self.executor!r}: expected a lower-case executor name such as "
                    "'async', 'thread', 'process' or 'gevent'"
                )
            check_executor_name(self.executor)
        if self.headers is not None and (
            not isinstance(self.headers, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items())
        ):
            raise TypeError(f"headers must map str to str, got {self.headers!r}")
        check_task_ids("depends_on", self.depends_on)


def with_defaults_from(options: TaskOptions, base: TaskOptions) -> TaskOptions:
    """``options`` where every field left at its default takes ``base``'s value: what
    ``queue.enqueue(f, ...)`` uses for a ``@queue.task(...)`` function ``f`` (the decorator's
    options, overridden by those given to ``enqueue``)."""
    changes = {
        f.name: getattr(base, f.name)
        for f in dataclasses.fields(TaskOptions)
        if getattr(options, f.name) == _DEFAULT_OPTIONS[f.name]
        and getattr(base, f.name) != _DEFAULT_OPTIONS[f.name]
    }
    return dataclasses.replace(options, **changes) if changes else options


def check_task_ids(name: str, ids: Any) -> tuple[str, ...]:
    """``ids`` as a tuple of task ids without duplicates (first occurrence kept).

    Raises:
        TypeError: a single string, or not a sequence of non-empty strings.
    """
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
        raise TypeError(f"{name} takes a list of task ids, got {type(ids).__name__}: {ids!r}")
    for task_id in ids:
        if not isinstance(task_id, str) or not task_id:
            raise TypeError(f"{name}: {task_id!r} is not a task id (a non-empty string)")
    return tuple(dict.fromkeys(ids))


_DEFAULT_OPTIONS: dict[str, Any] = {
    f.name: getattr(TaskOptions(), f.name) for f in dataclasses.fields(TaskOptions)
}

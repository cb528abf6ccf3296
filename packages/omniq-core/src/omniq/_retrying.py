"""Retry policy: which errors are retried and how long a retry waits (exponential backoff with
"full jitter", as in the AWS Architecture Blog's "Exponential Backoff And Jitter").

Used by the client (normalising ``retry_on``/``give_up_on`` at enqueue) and by the worker
(deciding each failed run's fate). See ``docs/retries.md``.
"""

from __future__ import annotations

import builtins
import importlib
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from omniq._codec import type_path
from omniq.errors import ConfigError, Retry
from omniq.models import ErrorInfo, Task

__all__ = [
    "RETRY_TYPE",
    "RetryDecision",
    "RetryDefaults",
    "backoff_delay",
    "check_backoff",
    "error_matches",
    "exception_paths",
    "retry_decision",
]

RETRY_TYPE = "omniq.errors.Retry"
"""Type path of :class:`omniq.Retry` as stored in an :class:`~omniq.models.ErrorInfo`."""


@dataclass(frozen=True, slots=True)
class RetryDefaults:
    """The backoff a worker applies to tasks that carry none (records from older clients)."""

    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 3600.0
    jitter: bool = True


def backoff_delay(
    run: int,
    *,
    base: float,
    backoff: float,
    max_delay: float,
    jitter: bool,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed run number ``run`` (1 for the first run).

    ``min(max_delay, base * backoff ** (run - 1))``; with ``jitter``, a uniform random value
    between 0 and that ("full jitter").
    """
    try:
        ceiling = min(max_delay, base * backoff ** max(run - 1, 0))
    except OverflowError:
        ceiling = max_delay
    if not jitter:
        return ceiling
    return (rng or random).uniform(0.0, ceiling)


def exception_paths(
    values: Iterable[type[BaseException] | str] | None, name: str
) -> tuple[str, ...] | None:
    """``retry_on``/``give_up_on`` as type paths: classes become ``module.QualName``; strings are
    kept (a bare name such as ``"ValueError"`` means ``builtins.ValueError``).

    Raises:
        ConfigError: an item is neither an exception class nor a path, or a bare name that is not
            a built-in exception.
    """
    if values is None:
        return None
    if isinstance(values, str | type):
        values = (values,)
    paths: list[str] = []
    for value in values:
        if isinstance(value, type) and issubclass(value, BaseException):
            paths.append(type_path(value))
        elif isinstance(value, str) and value:
            if "." not in value:
                builtin = getattr(builtins, value, None)
                if not (isinstance(builtin, type) and issubclass(builtin, BaseException)):
                    raise ConfigError(
                        f"{name}: {value!r} is not a built-in exception; give the class itself "
                        "or its import path, e.g. 'requests.exceptions.Timeout'"
                    )
            paths.append(value if "." in value else f"builtins.{value}")
        else:
            raise ConfigError(f"{name} must list exception classes or import paths, got {value!r}")
    return tuple(dict.fromkeys(paths))


def _import_type(path: str) -> type | None:
    """The class at ``module.QualName`` if it can be imported, else ``None``."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: object = sys.modules.get(module_name) or importlib.import_module(module_name)
        except Exception:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj if isinstance(obj, type) else None
    return None


def error_matches(
    patterns: Iterable[str], error: ErrorInfo, exc: BaseException | None = None
) -> bool:
    """Whether the error is one of ``patterns`` or a subclass of one.

    With the exception object (raised in this process) its MRO decides. Otherwise (an error
    reported by a process child) the stored type path must equal a pattern, or its class,
    when importable here, must be a subclass of a pattern's importable class.
    """
    wanted = set(patterns)
    if not wanted:
        return False
    if exc is not None:
        return any(type_path(c) in wanted for c in type(exc).__mro__)
    if error.type in wanted:
        return True
    cls = _import_type(error.type)
    if cls is None:
        return False
    return any(type_path(c) in wanted for c in cls.__mro__)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to retry a failed run, after how many seconds, and why not when not."""

    retry: bool
    delay: float = 0.0
    why: str = ""


def retry_decision(
    task: Task,
    error: ErrorInfo,
    exc: BaseException | None,
    defaults: RetryDefaults,
    *,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Decide the fate of a failed run of ``task`` (runs left are checked by the caller).

    An :class:`omniq.Retry` is always retried (after its own delay when it gives one). Else an
    error matching ``give_up_on``, or not matching a set ``retry_on``, is final.
    """
    explicit = isinstance(exc, Retry) or (exc is None and error.type == RETRY_TYPE)
    if not explicit:
        if task.give_up_on and error_matches(task.give_up_on, error, exc):
            return RetryDecision(False, why="give_up_on")
        if task.retry_on is not None and not error_matches(task.retry_on, error, exc):
            return RetryDecision(False, why="not in retry_on")
    own = getattr(exc, "delay", None) if explicit and exc is not None else None
    if own is not None:
        return RetryDecision(True, float(own))
    delay = backoff_delay(
        task.runs_used,
        base=defaults.delay if task.retry_delay is None else task.retry_delay,
        backoff=defaults.backoff if task.retry_backoff is None else task.retry_backoff,
        max_delay=defaults.max_delay if task.retry_max_delay is None else task.retry_max_delay,
        jitter=defaults.jitter if task.retry_jitter is None else task.retry_jitter,
        rng=rng,
    )
    return RetryDecision(True, delay)


def check_backoff(backoff: object) -> float:
    """``retry_backoff`` validated: a number between 1 and 1000."""
    if isinstance(backoff, bool) or not isinstance(backoff, int | float):
        raise TypeError(f"retry_backoff must be a number, got {type(backoff).__name__}")
    if not 1 <= backoff <= 1000:
        raise ConfigError(f"retry_backoff={backoff!r}: must be between 1 and 1000")
    return float(backoff)

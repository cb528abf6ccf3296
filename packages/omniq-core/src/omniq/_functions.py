"""Naming task functions so another process can find them, and finding them again.

A function travels by import path (``"package.module:qualname"``). Functions that cannot be
imported by path in another process — lambdas, closures, functions of the ``__main__`` script —
also travel as signed dill bytes when a secret key is available. Inside the process that enqueued
them they are found again through a token (task header :data:`LOCAL_TOKEN_HEADER`) in a
process-local weak registry, so the embedded worker runs the very same object, closure state
included, rather than a copy.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from omniq.errors import DeserializationError, SerializationError
from omniq.serialization import Serializer

__all__ = [
    "LOCAL_TOKEN_HEADER",
    "FunctionResolver",
    "bound_to_instance",
    "check_arguments",
    "function_path",
    "local_token",
    "needs_dill",
    "unwrap_task",
]

LOCAL_TOKEN_HEADER = "omniq-local-function"
"""Task header naming a function object of the enqueueing process (reserved ``omniq-`` prefix)."""

_local_functions: weakref.WeakValueDictionary[str, Callable[..., Any]] = (
    weakref.WeakValueDictionary()
)
_tokens: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()


def unwrap_task(fn: Any) -> Callable[..., Any]:
    """Return the plain function behind a ``@queue.task`` wrapper (or ``fn`` itself)."""
    inner = getattr(fn, "__omniq_function__", None)
    return inner if inner is not None else fn  # type: ignore[no-any-return]


def function_path(fn: Callable[..., Any]) -> str:
    """Return ``"module:qualname"`` for a function.

    Raises:
        SerializationError: if ``fn`` has no ``__module__``/``__qualname__`` (e.g. a callable
            instance); wrap it in a module-level function.
    """
    fn = unwrap_task(fn)
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname:
        raise SerializationError(
            f"cannot name task function {fn!r}: it has no __module__/__qualname__; "
            "use a module-level function"
        )
    return f"{module}:{qualname}"


def bound_to_instance(fn: Callable[..., Any]) -> bool:
    """True for a method bound to an instance: its path names the function but not the instance,
    so it must travel as dill (a classmethod's "instance" is its class, importable by path)."""
    self_ = getattr(fn, "__self__", None)
    return inspect.ismethod(fn) and not isinstance(self_, type)


def needs_dill(path: str) -> bool:
    """True when a path cannot be imported by another process (``__main__``, lambdas, closures)."""
    module, _, qualname = path.partition(":")
    return module == "__main__" or "<" in qualname


def local_token(fn: Callable[..., Any]) -> str | None:
    """A token under which workers of this process find ``fn`` itself, or ``None`` when ``fn``
    cannot be referenced weakly (the task then runs from its path or dill bytes)."""
    fn = unwrap_task(fn)
    try:
        token = _tokens.get(fn)
        if token is None:
            token = _tokens[fn] = f"{os.getpid()}:{uuid.uuid4().hex}"
            _local_functions[token] = fn
    except TypeError:  # not weak-referenceable (e.g. some builtins)
        return None
    return token


class FunctionResolver:
    """Turns a task's ``func``/``func_bytes`` back into a callable, with a cache.

    Args:
        serializer: verifies and loads signed dill function bytes.
    """

    def __init__(self, serializer: Serializer) -> None:
        self._serializer = serializer
        self._cache: dict[str, Callable[..., Any]] = {}
        self._dill_cache: dict[bytes, Callable[..., Any]] = {}

    def resolve(
        self, path: str, func_bytes: bytes | None, token: str | None = None
    ) -> Callable[..., Any]:
        """Find the function.

        Order: the very object enqueued by this process (``token``), then the dill bytes (sent
        only for functions a path cannot name: lambdas, closures, ``__main__`` functions, bound
        methods), then import by path.

        Raises:
            DeserializationError: the function cannot be found or loaded; the message says why and
                how to fix it (e.g. ``--import`` the module, or set ``OMNIQ_SECRET_KEY``).
        """
        local = _local_functions.get(token) if token else None
        if local is not None:
            return local
        if func_bytes is not None or needs_dill(path):  # bytes come only when the path won't do
            return self._load_dill(path, func_bytes)
        cached = self._cache.get(path)
        if cached is None:
            cached = self._cache[path] = self._import(path, func_bytes)
        return cached

    def _load_dill(self, path: str, func_bytes: bytes | None) -> Callable[..., Any]:
        if func_bytes is None:
            raise DeserializationError(
                f"task function {path} was defined in the producer's __main__ script or inside "
                "another function, so this worker cannot import it; move it into an importable "
                "module (and start the worker with --import), or set OMNIQ_SECRET_KEY so it "
                "travels as signed dill"
            )
        cached = self._dill_cache.get(func_bytes)
        if cached is None:
            if len(self._dill_cache) >= 256:
                self._dill_cache.clear()
            cached = self._dill_cache[func_bytes] = self._serializer.loads_function(func_bytes)
        return cached

    def _import(self, path: str, func_bytes: bytes | None) -> Callable[..., Any]:
        module_name, _, qualname = path.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            if func_bytes is not None:
                return self._serializer.loads_function(func_bytes)
            raise DeserializationError(
                f"cannot import task function {path}: {type(exc).__name__}: {exc}; "
                "is the module on this worker's path?"
            ) from exc
        fn = unwrap_task(obj)
        if not callable(fn):
            raise DeserializationError(f"task function {path} is not callable: {fn!r}")
        return fn


_signatures: weakref.WeakKeyDictionary[Callable[..., Any], inspect.Signature | None] = (
    weakref.WeakKeyDictionary()
)


_fitting_shapes: weakref.WeakKeyDictionary[Callable[..., Any], set[tuple[int, tuple[str, ...]]]] = (
    weakref.WeakKeyDictionary()
)


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return _signatures[fn]
    except (KeyError, TypeError):
        pass
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and C callables without a signature
        sig = None
    with contextlib.suppress(TypeError):  # not weak-referenceable: just not cached
        _signatures[fn] = sig
    return sig


def check_arguments(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], path: str
) -> None:
    """Refuse, at enqueue, arguments the function cannot be called with (as Celery does), so a
    task is not stored only to fail — and be retried — on every run.

    Raises:
        TypeError: naming the function, its signature and what does not fit.
    """
    fn = unwrap_task(fn)
    sig = _signature(fn)
    if sig is None:
        return
    # Binding depends only on how many positional arguments there are and which keywords:
    # remember the shapes that fit, so a bulk enqueue binds once, not once per task.
    shape = (len(args), tuple(kwargs))
    try:
        fitting = _fitting_shapes.get(fn)
    except TypeError:  # not weak-referenceable
        fitting = None
    if fitting is not None and shape in fitting:
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{path}{sig}: {exc}") from None
    with contextlib.suppress(TypeError):  # not weak-referenceable: just not cached
        _fitting_shapes.setdefault(fn, set()).add(shape)

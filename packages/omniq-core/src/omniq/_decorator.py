"""``@queue.task``: typed task functions whose ``.enqueue(...)`` mypy checks against the signature."""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Generic, ParamSpec, TypeVar, Unpack

from omniq._canvas import Signature
from omniq._functions import function_path
from omniq._middleware import CALLBACKS_HEADER, Hook, register_task_callbacks, split_callbacks
from omniq._options import TaskOptions, TaskOptionsArgs

__all__ = ["AsyncTaskFunction", "TaskFunction", "TaskOptions"]

P = ParamSpec("P")
R = TypeVar("R")


_EnqueueFn = Callable[
    [Callable[..., Any], tuple[Any, ...], dict[str, Any], TaskOptions], Awaitable[str]
]


def _call_site() -> str:
    """``module:line`` of the code calling ``.options`` (two frames up)."""
    frame = sys._getframe(2)
    return f"{frame.f_globals.get('__name__', '?')}:{frame.f_lineno}"


class _TaskFunctionBase(Generic[P, R]):
    def __init__(
        self,
        fn: Callable[P, R],
        enqueue: Callable[..., Any],
        options: TaskOptions,
        hooks: dict[str, tuple[Hook, ...]] | None = None,
        *,
        callbacks_key: str | None = None,
    ) -> None:
        functools.update_wrapper(self, fn)
        self.__omniq_function__ = fn
        self._enqueue = enqueue
        self.task_options = options
        if hooks:  # the decorator itself: the function's own callbacks
            register_task_callbacks(function_path(fn), hooks)
        self._callbacks_key = callbacks_key  # None: the function's own

    def _derive(self, options: dict[str, Any], site: str) -> tuple[TaskOptions, str | None]:
        """The options and callbacks key of a ``.options(...)`` copy: callback hooks it names
        replace this one's (registered under a key of their own, carried in a header)."""
        rest, hooks = split_callbacks(options)
        derived = replace(self.task_options, **rest)
        key = self._callbacks_key
        if hooks:
            path = function_path(self.__omniq_function__)
            key = register_task_callbacks(path, hooks, base=key or path, site=site)
        if key is not None:
            derived = replace(derived, headers={**(derived.headers or {}), CALLBACKS_HEADER: key})
        return derived, key

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, like an undecorated call."""
        return self.__omniq_function__(*args, **kwargs)

    def __repr__(self) -> str:
        fn = self.__omniq_function__
        return f"<task {fn.__module__}:{fn.__qualname__}>"

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this call for a task graph (``chain``, ``group``, ``chord``); in a
        chain it receives the previous step's value in front of ``args``."""
        return Signature(self.__omniq_function__, args, kwargs, self.task_options)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: in a chain or chord it never receives parents' values."""
        return Signature(self.__omniq_function__, args, kwargs, self.task_options, immutable=True)


class AsyncTaskFunction(_TaskFunctionBase[P, R]):
    """A task function of an :class:`omniq.AsyncTaskQueue`."""

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Store a task calling this function with these arguments; returns the task id."""
        task_id: str = await self._enqueue(self.__omniq_function__, args, kwargs, self.task_options)
        return task_id

    def options(self, **options: Unpack[TaskOptionsArgs]) -> AsyncTaskFunction[P, R]:
        """A copy with other options (those of ``enqueue``: ``delay``, ``priority``, …, and
        callbacks: each hook named replaces the decorator's for that hook)."""
        derived, key = self._derive(dict(options), _call_site())
        return AsyncTaskFunction(self.__omniq_function__, self._enqueue, derived, callbacks_key=key)


class TaskFunction(_TaskFunctionBase[P, R]):
    """A task function of a sync :class:`omniq.TaskQueue`."""

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Store a task calling this function with these arguments; returns the task id."""
        task_id: str = self._enqueue(self.__omniq_function__, args, kwargs, self.task_options)
        return task_id

    def options(self, **options: Unpack[TaskOptionsArgs]) -> TaskFunction[P, R]:
        """A copy with other options (those of ``enqueue``: ``delay``, ``priority``, …, and
        callbacks: each hook named replaces the decorator's for that hook)."""
        derived, key = self._derive(dict(options), _call_site())
        return TaskFunction(self.__omniq_function__, self._enqueue, derived, callbacks_key=key)

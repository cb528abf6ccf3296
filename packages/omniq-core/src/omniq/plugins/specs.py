"""Small spec objects that entry points point to, so listing plugins imports nothing heavy.

An ``omniq.backends`` entry point named after a URI scheme points to a :class:`BackendSpec`; an
``omniq.executors`` entry point named after an executor points to an :class:`ExecutorSpec`. The
spec's ``target`` (``"package.module:Class"``) is imported only when the plugin is used.
"""

from __future__ import annotations

import importlib
from typing import Any

import msgspec

__all__ = ["PROTOCOL_VERSION", "BackendSpec", "ExecutorSpec", "load_target"]

PROTOCOL_VERSION = 2
"""Version of the backend/executor protocol this omniq-core speaks."""


def load_target(target: str) -> Any:
    """Import ``"package.module:attr.path"`` and return the attribute.

    Raises:
        ImportError: if the module cannot be imported or has no such attribute.
    """
    module_name, _, attr_path = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split(".") if attr_path else ():
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ImportError(f"{module_name!r} has no attribute {attr_path!r}") from exc
    return obj


class _PluginSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What every plugin spec says about its plugin.

    Attributes:
        target: ``"package.module:Class"`` of the plugin's class.
        distribution: the PyPI distribution that ships it (shown by ``omniq plugins``).
        description: one line for humans.
        protocol_version: the protocol version it implements.
    """

    target: str
    distribution: str
    description: str = ""
    protocol_version: int = PROTOCOL_VERSION

    def load(self) -> Any:
        """Import and return the plugin's class.

        Raises:
            ImportError: the target cannot be imported.
        """
        return load_target(self.target)


class BackendSpec(_PluginSpec, frozen=True, kw_only=True):
    """Describes a backend plugin (an :class:`omniq.backend.Backend` subclass) without importing it."""


class ExecutorSpec(_PluginSpec, frozen=True, kw_only=True):
    """Describes an executor plugin (an :class:`omniq.executors.Executor` subclass) without
    importing it."""

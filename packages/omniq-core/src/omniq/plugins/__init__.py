"""Plugins: entry-point registries for backends and executors, pluggy hooks for behaviour."""

from omniq.plugins._manager import configure_plugins, plugin_manager
from omniq.plugins._registry import (
    InstalledPlugin,
    backend_class,
    executor_class,
    installed_plugins,
    scheme_of,
)
from omniq.plugins.hookspecs import hookimpl, hookspec
from omniq.plugins.specs import BackendSpec, ExecutorSpec

__all__ = [
    "BackendSpec",
    "ExecutorSpec",
    "InstalledPlugin",
    "configure_plugins",
    "backend_class",
    "executor_class",
    "hookimpl",
    "hookspec",
    "installed_plugins",
    "plugin_manager",
    "scheme_of",
]

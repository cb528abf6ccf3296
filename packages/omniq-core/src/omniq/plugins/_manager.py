"""The process-wide pluggy plugin manager."""

from __future__ import annotations

import functools

import pluggy

from omniq.plugins import hookspecs

__all__ = ["plugin_manager"]


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """Load every hook module of the ``omniq`` entry-point group once and return the manager.

    Raises:
        pluggy.PluginValidationError: a plugin implements a hook that does not exist (a misspelled
            ``omniq_*`` function is caught here, at load time).
    """
    pm = pluggy.PluginManager("omniq")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints("omniq")
    pm.check_pending()
    return pm

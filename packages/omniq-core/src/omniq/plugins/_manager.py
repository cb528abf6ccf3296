"""The process-wide pluggy plugin manager."""

from __future__ import annotations

import atexit
import functools
from typing import TYPE_CHECKING

import pluggy

from omniq.plugins import hookspecs

if TYPE_CHECKING:
    from omniq.config import Settings

__all__ = ["configure_plugins", "plugin_manager"]


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


_configured = False


def configure_plugins(settings: Settings) -> None:
    """Call ``omniq_configure`` once per process (later calls do nothing), and arrange for
    ``omniq_unconfigure`` at interpreter exit."""
    global _configured
    if _configured:
        return
    _configured = True
    pm = plugin_manager()
    pm.hook.omniq_configure(settings=settings)
    atexit.register(pm.hook.omniq_unconfigure)

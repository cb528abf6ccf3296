"""pluggy hook specifications (project name ``omniq``).

Hook modules are registered through the ``omniq`` entry-point group; OmniQ's own built-ins
(``omniq.plugins.builtin``) are registered the same way as third-party plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from omniq.config import Settings

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("omniq")
hookimpl = pluggy.HookimplMarker("omniq")


@hookspec
def omniq_configure(settings: Settings) -> None:
    """Called once per process when OmniQ has loaded its settings (before any queue opens).

    Args:
        settings: the effective settings.
    """


@hookspec
def omniq_add_middleware() -> list[Any]:  # type: ignore[empty-body]
    """Return lifecycle middleware (callbacks and event sinks) to install in clients and workers.

    Results of all implementations are concatenated in registration order.
    """


@hookspec
def omniq_register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``omniq`` command line.

    Args:
        cli: the top-level ``click`` group; call ``cli.add_command(...)``.
    """


@hookspec
def omniq_unconfigure() -> None:
    """Called once at interpreter exit (``atexit``) in a process that called ``omniq_configure``;
    sync queues left open are closed before it, async ones may not be."""

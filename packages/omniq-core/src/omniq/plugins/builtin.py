"""OmniQ's built-in hook implementations, registered through the ``omniq`` entry point."""

from __future__ import annotations

import click

from omniq.plugins.hookspecs import hookimpl


@hookimpl
def omniq_register_commands(cli: click.Group) -> None:
    from omniq.cli._commands import BUILTIN_COMMANDS

    for command in BUILTIN_COMMANDS:
        cli.add_command(command)

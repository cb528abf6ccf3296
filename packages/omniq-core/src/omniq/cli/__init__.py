"""The ``omniq`` command line. Sub-commands come from pluggy's ``omniq_register_commands`` hook;
the built-in ones are registered the same way as a third-party plugin's.

This module imports nothing at load time: :func:`main` first lets the executors the command will
host prepare the interpreter (:func:`omniq._launcher.prepare_interpreter`; ``gevent``
monkey-patches the standard library), then imports click and the commands. ``python -m omniq``
and the ``omniq`` script both go through it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: nothing is imported before main() runs
if TYPE_CHECKING:
    import click

__all__ = ["build_cli", "main"]


def build_cli() -> click.Group:
    """The ``omniq`` group with every plugin's commands added.

    Returns:
        The click group, ready to run.
    """
    import click

    from omniq.plugins import plugin_manager

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="omniq-core", prog_name="omniq")
    def cli() -> None:
        """OmniQ task queue: run workers, inspect tasks, list plugins, run the demo."""

    plugin_manager().hook.omniq_register_commands(cli=cli)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``omniq`` script; OmniQ errors print as one clear line, exit code 2.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.

    Raises:
        SystemExit: the command exited (``omniq worker`` always does), was aborted (1), was
            misused (click's usage error code) or raised an OmniQ error (2).
    """
    from omniq._launcher import prepare_interpreter

    prepare_interpreter(argv)

    import sys

    import click

    from omniq.errors import OmniQError

    try:
        build_cli().main(args=argv, prog_name="omniq", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OmniQError as exc:
        click.echo(f"omniq: error: {exc}", err=True)
        sys.exit(2)
    except SystemExit:
        raise

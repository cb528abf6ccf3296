"""The ``omniq`` console script: prepares the interpreter, then runs the command line.

Some executors must change the interpreter before anything else is imported: the ``gevent``
executor needs :func:`gevent.monkey.patch_all` to run before ``asyncio``, ``socket``, ``sqlite3``
or any of OmniQ's own modules are loaded. So this module imports only ``os`` and ``sys`` (and
``omniq`` itself imports nothing eagerly): :func:`main` reads the command line and the
environment, runs the preparation hook of every executor the worker will host, and only then
imports the command line (:mod:`omniq.cli`), which imports everything else.

Keep this module free of imports beyond the standard library's ``os`` and ``sys``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: this module imports only os and sys
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PREPARE_HOOKS", "executors_to_host", "main", "prepare_interpreter"]

PREPARE_HOOKS: dict[str, str] = {"gevent": "omniq_gevent._monkey"}
"""Executor name → module whose ``prepare()`` must run before anything else is imported.

The module may import only its own library (never ``omniq``); a hook whose package is not
installed is skipped (the worker then reports the missing executor with an install hint)."""

_EXECUTOR_OPTIONS = ("-e", "--executor")
_prepared = False


def executors_to_host(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    """The executor names an ``omniq worker`` command line will host, read without click.

    Args:
        argv: the arguments after the program name (``sys.argv[1:]``).
        environ: the environment; ``OMNIQ_DEFAULT_WORKER`` applies when no ``-e`` is given.

    Returns:
        The names in command-line order (lower-cased, comma lists split); empty when the
        command is not ``worker``.
    """
    words = list(argv)
    if "--" in words:
        words = words[: words.index("--")]
    command = next((w for w in words if not w.startswith("-")), None)
    if command != "worker":
        return []
    rest = words[words.index("worker") + 1 :]
    values: list[str] = []
    for i, word in enumerate(rest):
        if word in _EXECUTOR_OPTIONS:
            if i + 1 < len(rest):
                values.append(rest[i + 1])
        elif word.startswith("--executor="):
            values.append(word.partition("=")[2])
        elif word.startswith("-e") and not word.startswith("--") and len(word) > 2:
            values.append(word[2:].lstrip("="))
    names = [n.strip().lower() for value in values for n in value.split(",") if n.strip()]
    if not names:
        default = environ.get("OMNIQ_DEFAULT_WORKER", "").strip().lower()
        names = [default] if default else []
    return names


def prepare_interpreter(argv: list[str] | None = None) -> list[str]:
    """Run the preparation hook of each executor the command will host (once per process).

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.

    Returns:
        The executor names whose hook ran (empty when none was needed or on a second call).
    """
    global _prepared
    if _prepared:
        return []
    _prepared = True
    ran: list[str] = []
    for name in dict.fromkeys(
        executors_to_host(sys.argv[1:] if argv is None else argv, os.environ)
    ):
        module_name = PREPARE_HOOKS.get(name)
        if module_name is None:
            continue
        try:
            __import__(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name.partition(".")[0]:
                continue  # not installed: the worker names the distribution to install
            raise
        sys.modules[module_name].prepare()
        ran.append(name)
    return ran


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``omniq`` script: :func:`prepare_interpreter`, then :func:`omniq.cli.main`.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.
    """
    prepare_interpreter(argv)
    from omniq.cli import main as cli_main

    cli_main(argv)

"""gevent executor for OmniQ: ``omniq worker -e gevent`` runs sync tasks as greenlets.

Importing this package imports nothing (not even ``omniq`` or ``gevent``): everything is loaded on
first access, so ``import omniq_gevent; omniq_gevent.monkey_patch()`` can be the first statement
of a program, before the standard library modules gevent patches are imported. The executor
registers itself through the ``omniq.executors`` entry point ``gevent`` (:data:`SPEC`).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: this module must import nothing
if TYPE_CHECKING:
    from typing import Any

    from omniq.plugins.specs import ExecutorSpec
    from omniq_gevent._monkey import PATCH_ARGUMENTS, is_patched, monkey_patch
    from omniq_gevent.executor import GeventExecutor

    SPEC: ExecutorSpec

__all__ = ["PATCH_ARGUMENTS", "SPEC", "GeventExecutor", "is_patched", "monkey_patch"]

_FROM_MONKEY = ("PATCH_ARGUMENTS", "is_patched", "monkey_patch")


def __getattr__(name: str) -> Any:
    """Load a public name on first access (``SPEC`` imports ``omniq``; ``GeventExecutor`` gevent).

    Raises:
        AttributeError: ``name`` is not a public name of this package.
    """
    value: Any
    if name == "SPEC":
        from omniq.plugins.specs import ExecutorSpec

        value = ExecutorSpec(
            target="omniq_gevent.executor:GeventExecutor",
            distribution="omniq-gevent",
            description="Greenlets (gevent, monkey-patched worker) for thousands of blocking I/O tasks.",
        )
    elif name == "GeventExecutor":
        from omniq_gevent.executor import GeventExecutor

        value = GeventExecutor
    elif name in _FROM_MONKEY:
        from omniq_gevent import _monkey

        value = getattr(_monkey, name)
    else:
        raise AttributeError(f"module 'omniq_gevent' has no attribute {name!r}")
    globals()[name] = value
    return value

"""gevent's monkey patches as the gevent executor needs them, applied before anything else.

This module imports nothing but :mod:`sys` at load time (and :mod:`gevent.monkey` when it patches),
so the ``omniq`` launcher can run :func:`prepare` before ``omniq``, ``asyncio``, ``socket`` or
``sqlite3`` are imported. It must never import ``omniq``.
"""

from __future__ import annotations

import sys

__all__ = [
    "PATCH_ARGUMENTS",
    "WATCHED_MODULES",
    "imported_before_patch",
    "is_patched",
    "monkey_patch",
    "prepare",
]

PATCH_ARGUMENTS: dict[str, bool] = {"thread": False, "queue": False}
"""What :func:`monkey_patch` passes to :func:`gevent.monkey.patch_all` (everything else is
gevent's default: socket, dns, time, select and selectors, ssl, os, subprocess, signal).

``thread=False`` and ``queue=False`` keep OS threads real: aiosqlite runs each SQLite call on
its own thread and obstore's Rust runtime uses native threads; both hand results back to the
asyncio loop with ``call_soon_threadsafe``. Patched, aiosqlite's thread would become a greenlet
whose blocking SQLite calls (and busy-timeout waits) stall every greenlet and the loop, and a
gevent queue shared between real threads would not wake them."""

WATCHED_MODULES: tuple[str, ...] = (
    "asyncio",
    "selectors",
    "socket",
    "ssl",
    "sqlite3",
    "subprocess",
    "aiosqlite",
    "obstore",
    "omniq.client",
    "omniq.worker",
)
"""Modules that should not be loaded before the patches (recorded, for diagnostics)."""

_before: list[str] | None = None


def monkey_patch() -> None:
    """Apply the patches (:data:`PATCH_ARGUMENTS`); call it before anything else is imported.

    The ``omniq worker`` command does this by itself when it hosts the ``gevent`` executor. A
    program that hosts the executor in an embedded worker must call it as its very first
    statement (``import omniq_gevent; omniq_gevent.monkey_patch()``). Calling it again does
    nothing.
    """
    global _before
    if _before is None:
        _before = [name for name in WATCHED_MODULES if name in sys.modules]
    from gevent import monkey

    monkey.patch_all(**PATCH_ARGUMENTS)


def prepare() -> None:
    """The ``omniq`` launcher's hook (:data:`omniq._launcher.PREPARE_HOOKS`): :func:`monkey_patch`."""
    monkey_patch()


def is_patched() -> bool:
    """True when the modules the executor relies on (socket, time, select, selectors) are patched."""
    if "gevent.monkey" not in sys.modules:
        return False
    from gevent import monkey

    return all(monkey.is_module_patched(name) for name in ("socket", "time", "select", "selectors"))


def imported_before_patch() -> list[str] | None:
    """Which of :data:`WATCHED_MODULES` were already imported when :func:`monkey_patch` first ran.

    Returns:
        The module names (empty when the patches came first), or ``None`` if :func:`monkey_patch`
        never ran in this process (the patches, if any, were applied by someone else).
    """
    return None if _before is None else list(_before)

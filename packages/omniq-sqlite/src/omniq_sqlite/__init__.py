"""SQLite backend for OmniQ: ``sqlite:///path/to/file.db`` (aiosqlite, WAL, multi-process safe).

Importing this package is cheap: the backend class is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omniq.plugins.specs import BackendSpec

if TYPE_CHECKING:
    from omniq_sqlite.backend import SQLiteBackend

__all__ = ["SPEC", "SQLiteBackend"]

SPEC = BackendSpec(
    target="omniq_sqlite.backend:SQLiteBackend",
    distribution="omniq-sqlite",
    description="Embedded SQLite file (WAL); safe for several processes on one machine.",
)


def __getattr__(name: str) -> Any:
    if name == "SQLiteBackend":
        from omniq_sqlite.backend import SQLiteBackend

        return SQLiteBackend
    raise AttributeError(name)

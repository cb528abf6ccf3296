"""Connection set-up and schema migrations (synchronous; run on a connection's own thread).

Migrations are applied in version order inside one ``BEGIN IMMEDIATE`` transaction, which takes
the database write lock before reading the schema version: when several processes open the same
new file at once, the first migrates and the others, waiting on the lock (``busy_timeout``), then
find the schema current and do nothing.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from omniq.errors import BackendError
from omniq_sqlite._queries import MIGRATIONS, QUERIES

__all__ = ["MIN_SQLITE_VERSION", "applied_versions", "configure", "migrate", "schema_version"]

log = logging.getLogger("omniq.backend.sqlite")

MIN_SQLITE_VERSION = (3, 37, 0)
"""``UPDATE … RETURNING`` needs 3.35, ``STRICT`` tables 3.37."""


def _retry_locked(conn: sqlite3.Connection, sql: str, timeout_ms: int) -> sqlite3.Cursor:
    """Run ``sql``, retrying while the file is locked (changing the journal mode of a file that
    another connection is also setting up can report ``database is locked`` immediately)."""
    deadline = time.monotonic() + timeout_ms / 1000
    delay = 0.005
    while True:
        try:
            return conn.execute(sql)
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def configure(
    conn: sqlite3.Connection,
    *,
    path: str,
    busy_timeout_ms: int,
    synchronous: str,
    read_only: bool,
) -> None:
    """Apply the per-connection PRAGMAs (WAL, synchronous, busy_timeout, foreign_keys).

    Raises:
        BackendError: if SQLite is too old or the file cannot use WAL (e.g. a network file system).
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise BackendError(
            f"omniq-sqlite needs SQLite >= {'.'.join(map(str, MIN_SQLITE_VERSION))}, "
            f"this Python links SQLite {sqlite3.sqlite_version}; use a newer Python build"
        )
    # busy_timeout first: every later statement may have to wait for another process.
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    mode = _retry_locked(conn, "PRAGMA journal_mode = WAL", busy_timeout_ms).fetchone()[0]
    if str(mode).lower() != "wal":
        raise BackendError(
            f"SQLite could not put {path} in WAL mode (journal_mode is {mode!r}); "
            "the file must be on a local file system"
        )
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    if read_only:
        conn.execute("PRAGMA query_only = ON")


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the file (0 for a new file)."""
    if conn.execute(QUERIES.schema_version_table_exists).fetchone() is None:
        return 0
    return int(conn.execute(QUERIES.schema_version).fetchone()[0])


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    """The migration versions recorded in the file (empty for a new file)."""
    if conn.execute(QUERIES.schema_version_table_exists).fetchone() is None:
        return set()
    return {int(row[0]) for row in conn.execute(QUERIES.applied_versions).fetchall()}


def migrate(conn: sqlite3.Connection, *, path: str, now: float) -> int:
    """Apply every bundled migration the file has not recorded, in version order; return how
    many were applied. A version missing below the newest applied one (a migration merged
    after a higher-numbered one) is applied too.

    Raises:
        BackendError: if the file was written by a newer omniq-sqlite (unknown schema version).
    """
    latest = MIGRATIONS[-1].version
    bundled = {m.version for m in MIGRATIONS}
    applied = applied_versions(conn)  # lock-free fast path: the usual case is "already current"
    if bundled <= applied and max(applied) == latest:
        return 0
    if applied and max(applied) > latest:
        raise _too_new(path, max(applied), latest)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(QUERIES.create_schema_version_table)
        applied = applied_versions(conn)  # re-read under the write lock
        if applied and max(applied) > latest:
            raise _too_new(path, max(applied), latest)
        count = 0
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                QUERIES.record_schema_version,
                {"version": migration.version, "name": migration.name, "applied_at": now},
            )
            count += 1
            log.info(
                "applied schema migration %04d_%s to %s", migration.version, migration.name, path
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return count


def _too_new(path: str, found: int, latest: int) -> BackendError:
    return BackendError(
        f"SQLite database {path} has schema version {found}, newer than the {latest} this "
        "omniq-sqlite knows; upgrade omniq-sqlite"
    )

"""Load the named SQL queries (``sql/queries.sql``) and the migrations (``migrations/*.sql``).

Both ship inside the package and are read with :mod:`importlib.resources`, once, at import.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from omniq_sqlite._rows import TASK_COLUMNS

__all__ = [
    "MAX_UNION_QUEUES",
    "MIGRATIONS",
    "QUERIES",
    "Migration",
    "Queries",
    "parse_named_queries",
]

_NAME_LINE = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def parse_named_queries(text: str) -> dict[str, str]:
    """Split ``-- name: <id>`` blocks into ``{id: sql}``; comment lines and a final ``;`` dropped.

    Raises:
        ValueError: if a name is defined twice or a block is empty.
    """
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if name is None:
            return
        body = "\n".join(lines).strip().rstrip(";").strip()
        if not body:
            raise ValueError(f"named query {name!r} is empty")
        if name in queries:
            raise ValueError(f"named query {name!r} is defined twice")
        queries[name] = body

    for line in text.splitlines():
        match = _NAME_LINE.match(line.strip())
        if match:
            flush()
            name, lines = match.group(1), []
        elif name is not None and not line.lstrip().startswith("--"):
            lines.append(line.rstrip())
    flush()
    return queries


_LATE = frozenset({"due", "parts", "i", "where"})
"""Placeholders filled per call, not at load time."""

MAX_UNION_QUEUES = 64
"""Up to this many queues, a claim takes the best ``limit`` of each queue then merges them."""


def _fill(sql: str, values: dict[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in _LATE:
            return match.group(0)
        if key not in values:
            raise ValueError(f"unknown placeholder {{{key}}} in SQL: {sql[:60]!r}")
        return values[key]

    return _PLACEHOLDER.sub(repl, sql)


class Queries:
    """Every statement the backend runs, by name, with load-time placeholders filled.

    A query holding ``{queue_filter}`` exists in two variants, ``<name>_one`` (``queue = :queue``)
    and ``<name>_many`` (``queue IN json_each(:queues)``).
    """

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = raw
        self._claims: dict[int, str] = {}

    def __getattr__(self, name: str) -> str:
        # Only reached for names that are not regular attributes: the named queries.
        try:
            return self.__dict__["raw"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(f"no named query {name!r} in queries.sql") from None

    def claim(self, n_queues: int) -> str:
        """The claim statement for ``n_queues`` distinct queues (parameters ``:queue`` or
        ``:queue_0`` … or ``:queues``; see :func:`omniq_sqlite._ops.claim`)."""
        sql = self._claims.get(n_queues)
        if sql is None:
            if n_queues == 1:
                due = self.raw["claim_due_one"]
            elif n_queues <= MAX_UNION_QUEUES:
                part = self.raw["claim_due_union_part"]
                parts = " UNION ALL ".join(part.replace("{i}", str(i)) for i in range(n_queues))
                due = self.raw["claim_due_union"].replace("{parts}", parts)
            else:
                due = self.raw["claim_due_many"]
            sql = self._claims[n_queues] = self.raw["claim"].replace("{due}", due)
        return sql

    @classmethod
    def load(cls) -> Queries:
        """Read ``sql/queries.sql`` and fill the load-time placeholders."""
        text = resources.files("omniq_sqlite").joinpath("sql/queries.sql").read_text("utf-8")
        base = {
            "task_columns": ", ".join(TASK_COLUMNS),
            "task_placeholders": ", ".join("?" * len(TASK_COLUMNS)),
        }
        out: dict[str, str] = {}
        for name, sql in parse_named_queries(text).items():
            if "{queue_filter}" in sql:
                out[name + "_one"] = _fill(sql, {**base, "queue_filter": "queue = :queue"})
                many = "queue IN (SELECT value FROM json_each(:queues))"
                out[name + "_many"] = _fill(sql, {**base, "queue_filter": many})
            else:
                out[name] = _fill(sql, base)
        return cls(out)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema migration file: ``NNNN_name.sql`` split into single statements."""

    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """Split a SQL script into complete statements (``executescript`` would commit our transaction)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer[:80]!r}")
    return tuple(statements)


def load_migrations() -> tuple[Migration, ...]:
    """Every bundled migration, in version order (distinct versions from 1; a gap is allowed, and
    the runner applies every version a file has not recorded, so a later-merged lower number
    still runs)."""
    folder = resources.files("omniq_sqlite").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(
                Migration(
                    version=int(match.group(1)),
                    name=match.group(2),
                    statements=split_statements(entry.read_text("utf-8")),
                )
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or (versions and versions[0] != 1):
        raise ValueError(
            f"omniq_sqlite migrations must have distinct versions starting at 1, found {versions}"
        )
    return tuple(found)


QUERIES = Queries.load()
MIGRATIONS = load_migrations()

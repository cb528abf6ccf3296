"""SQL over the event sink's JSON-lines files with DuckDB (``omniq events query "SQL"``).

DuckDB is optional (``pip install omniq-core[analytics]``). The sink's objects
(:mod:`omniq._event_sink`) become a view named ``events`` with the columns of
:data:`~omniq._event_sink.SINK_COLUMNS` plus the partition columns ``date`` and ``hour``:
a ``file://`` sink is read in place; other stores (``s3://``, ``memory://``, …) are first
downloaded into a temporary directory.
"""

from __future__ import annotations

import asyncio
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omniq._event_sink import SINK_COLUMNS, SINK_PREFIX, open_sink_store
from omniq.errors import ConfigError

__all__ = ["QueryResult", "query_events"]


@dataclass(frozen=True)
class QueryResult:
    """What a query returned.

    Attributes:
        columns: the column names, in order.
        rows: one tuple per row, values as DuckDB returns them (``datetime`` for ``time``).
        files: how many sink objects were read.
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    files: int


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise ConfigError(
            "omniq events query needs DuckDB: pip install 'omniq-core[analytics]' (or duckdb)"
        ) from None
    return duckdb


def _local_dir(url: str) -> Path | None:
    """The directory of a ``file:///dir`` sink (read in place), else ``None``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    return Path(urllib.parse.unquote(parts.path))


async def _download(url: str, into: Path) -> int:
    """Copy every sink object of ``url`` below ``into`` (same relative keys); return the count."""
    import obstore

    store = open_sink_store(url)
    count = 0
    for meta in await obstore.list(store, prefix=SINK_PREFIX).collect_async():
        key = meta["path"]
        if not key.endswith(".jsonl"):
            continue
        data = await (await obstore.get_async(store, key)).bytes_async()
        target = into / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(data))
        count += 1
    return count


def _view_sql(root: Path, files: int) -> str:
    """``CREATE VIEW events`` over the JSON-lines files below ``root`` (an empty table with the
    same columns when there is no file)."""
    columns = {**SINK_COLUMNS}
    if files == 0:
        body = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items())
        extra = ', CAST(NULL AS DATE) AS "date", CAST(NULL AS BIGINT) AS "hour"'
        return f"CREATE VIEW events AS SELECT {body}{extra} WHERE false"
    spec = ", ".join(f"'{c}': '{t}'" for c, t in columns.items())
    pattern = str(root / SINK_PREFIX / "**" / "*.jsonl").replace("'", "''")
    return (
        "CREATE VIEW events AS SELECT * FROM read_json("
        f"'{pattern}', format = 'newline_delimited', columns = {{{spec}}}, "
        "hive_partitioning = true)"
    )


def query_events(url: str | None, sql: str) -> QueryResult:
    """Run ``sql`` with DuckDB over the sink at ``url``, where a view ``events`` holds every
    event written there.

    Args:
        url: the sink location (``OMNIQ_EVENT_SINK_URL``).
        sql: any DuckDB SQL, e.g. ``SELECT type, count(*) FROM events GROUP BY type``.

    Raises:
        ConfigError: no sink is configured, DuckDB or omniq-obstore is not installed, or the
            query fails (the message is DuckDB's).
    """
    if not url:
        raise ConfigError(
            "no event sink is configured: set OMNIQ_EVENT_SINK_URL (e.g. file:///var/omniq/events) "
            "for the workers that record events, or pass --sink"
        )
    if not sql.strip():
        raise ConfigError("no SQL given, e.g. 'SELECT type, count(*) FROM events GROUP BY type'")
    duckdb = _duckdb()
    with tempfile.TemporaryDirectory(prefix="omniq-events-") as tmp:
        root = _local_dir(url)
        if root is not None:
            if not root.is_dir():
                raise ConfigError(f"no event sink at {url}: {root} is not a directory")
            files = sum(1 for _ in (root / SINK_PREFIX).glob("**/*.jsonl"))
        else:
            root = Path(tmp)
            files = asyncio.run(_download(url, root))
        con = duckdb.connect(":memory:")
        try:
            try:
                con.execute(_view_sql(root, files))
            except duckdb.Error as exc:
                raise ConfigError(f"cannot read the sink's files at {url}: {exc}") from None
            try:
                cursor = con.execute(sql)
            except duckdb.Error as exc:
                raise ConfigError(f"query failed: {exc}") from None
            if cursor is None or cursor.description is None:
                raise ConfigError("the SQL returned no result set (give a SELECT)")
            columns = [d[0] for d in cursor.description]
            rows = [tuple(r) for r in cursor.fetchall()] if columns else []
        finally:
            con.close()
    return QueryResult(columns=columns, rows=rows, files=files)

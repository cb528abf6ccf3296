"""The demo's task: real work on a real file."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import Counter
from typing import Any

from omniq._context import current_task

__all__ = ["aggregate", "analyze_file", "flaky_fetch", "progress_snapshot"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def analyze_file(path: str) -> dict[str, Any]:
    """Count lines and words of a UTF-8 text file and hash its bytes.

    Args:
        path: the file to read.

    Returns:
        ``{"path", "bytes", "lines", "words", "sha256", "pid", "counts"}`` where ``counts`` maps
        each word (identifier-like token, lower-cased) to its number of occurrences; for a
        file that is not UTF-8 text, ``{"path", "skipped"}`` with the reason (a map step
        reports the inputs it cannot use instead of failing the whole map-reduce).

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {"path": path, "skipped": f"not UTF-8 text ({exc.reason} at byte {exc.start})"}
    words = _WORD.findall(text.lower())
    return {
        "path": path,
        "bytes": len(data),
        "lines": text.count("\n") + (1 if text and not text.endswith("\n") else 0),
        "words": len(words),
        "sha256": hashlib.sha256(data).hexdigest(),
        "pid": os.getpid(),
        "counts": dict(Counter(words)),
    }


def aggregate(results: list[dict[str, Any]], top: int = 10) -> dict[str, Any]:
    """The reduce step: merge every :func:`analyze_file` result (a chord's callback, so
    ``results`` holds one entry per file, in file order).

    Args:
        results: the file results.
        top: how many of the most common words to keep.

    Returns:
        ``{"files", "analyzed", "skipped": [(path, reason)], "lines", "words", "bytes",
        "distinct_words", "top_words": [(word, count)], "pids": {pid: files}}``.
    """
    words: Counter[str] = Counter()
    pids: Counter[int] = Counter()
    skipped = []
    lines = total_words = size = 0
    for r in results:
        if "skipped" in r:
            skipped.append((r["path"], r["skipped"]))
            continue
        words.update(r["counts"])
        pids[r["pid"]] += 1
        lines += r["lines"]
        total_words += r["words"]
        size += r["bytes"]
    return {
        "files": len(results),
        "analyzed": len(results) - len(skipped),
        "skipped": skipped,
        "lines": lines,
        "words": total_words,
        "bytes": size,
        "distinct_words": len(words),
        "top_words": words.most_common(top),
        "pids": dict(pids),
    }


def progress_snapshot(storage_url: str) -> dict[str, float]:
    """Run every second by the demo's schedule: how many file tasks have finished so far.

    Args:
        storage_url: the demo's store.

    Returns:
        ``{"at": epoch seconds, "finished": tasks in a final state, "running": tasks running}``.
    """
    from omniq._sync_client import TaskQueue

    with TaskQueue(storage_url=storage_url, workers=0) as queue:
        counts = queue.stats(queue="default")  # the file tasks
    return {
        "at": time.time(),
        "finished": float(counts["success"] + counts["failed"] + counts["cancelled"]),
        "running": float(counts["running"]),
    }


def flaky_fetch(failures: int) -> int:
    """Fail like a flaky network call on the first ``failures`` runs, then succeed.

    Returns:
        The run (attempt) that succeeded.

    Raises:
        ConnectionError: on the first ``failures`` runs.
    """
    ctx = current_task()
    attempt = ctx.attempt if ctx else 1
    if attempt <= failures:
        raise ConnectionError(f"upstream not answering (run {attempt})")
    return attempt

"""The demo's task: real work on a real file."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import Counter
from typing import Any

from omniq._context import current_task

__all__ = ["analyze_file", "flaky_fetch", "progress_snapshot"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def analyze_file(path: str) -> dict[str, Any]:
    """Count lines and words of a UTF-8 text file and hash its bytes.

    Args:
        path: the file to read.

    Returns:
        ``{"path", "bytes", "lines", "words", "sha256", "pid", "counts"}`` where ``counts`` maps
        each word (identifier-like token, lower-cased) to its number of occurrences.

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is not UTF-8 text.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
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

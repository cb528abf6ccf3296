"""The demo's task: real work on a real file."""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from typing import Any

__all__ = ["analyze_file"]

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

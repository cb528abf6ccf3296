"""Task functions and exception types for the retry tests (importable by process children)."""

from __future__ import annotations

from pathlib import Path

import omniq


class Transient(ConnectionError):
    """A subclass of a builtin, matched through its MRO (or importable class in a child)."""


class Fatal(ValueError):
    """An error that should never be retried."""


def _count(path: str) -> int:
    counter = Path(path)
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    return runs


def raise_kind(counter: str, kind: str) -> None:
    """Count the run, then raise ``Transient`` or ``Fatal`` or ``KeyError``."""
    _count(counter)
    error: Exception = {"transient": Transient, "fatal": Fatal, "key": KeyError}[kind](kind)
    raise error


def ask_retry(counter: str, delay: float | None) -> None:
    """Count the run, then ask for a retry after ``delay`` seconds."""
    runs = _count(counter)
    raise omniq.Retry(delay=delay, reason=f"run {runs}: come back later")

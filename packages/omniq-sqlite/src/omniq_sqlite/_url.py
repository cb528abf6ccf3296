"""Parse and validate ``sqlite://`` URIs and connection settings."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from omniq.errors import ConfigError

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "SYNCHRONOUS_MODES",
    "SQLiteSettings",
    "check_busy_timeout",
    "check_path",
    "check_synchronous",
    "parse_url",
]

DEFAULT_BUSY_TIMEOUT_MS = 10_000
"""How long a connection waits for another's write lock before failing (milliseconds)."""

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
"""Accepted values of ``PRAGMA synchronous`` (the ``synchronous`` option)."""

_OPTIONS = ("busy_timeout", "synchronous")
_FORMS = "sqlite:///relative/path.db or sqlite:////absolute/path.db"


@dataclass(frozen=True, slots=True)
class SQLiteSettings:
    """What a ``sqlite://`` URI says.

    Attributes:
        path: the database file, as written in the URI (relative to the working directory or absolute).
        busy_timeout_ms: the ``busy_timeout`` option.
        synchronous: the ``synchronous`` option, upper case.
    """

    path: str
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    synchronous: str = "NORMAL"


def check_path(path: str | os.PathLike[str]) -> str:
    """Return ``path`` as text; refuse in-memory and empty paths.

    Raises:
        ConfigError: for ``""``, ``":memory:"`` or a ``file::memory:`` style path.
    """
    text = os.fspath(path)
    if not text:
        raise ConfigError(f"SQLite database path is empty; use {_FORMS}")
    if text == ":memory:" or text.startswith("file:"):
        raise ConfigError(
            f"SQLite path {text!r} is not supported: an in-memory database lives in one "
            "connection only, so it cannot be shared by workers or survive a restart; "
            f"use a file ({_FORMS}) or the memory:// backend"
        )
    return text


def check_busy_timeout(value: object) -> int:
    """Validate ``busy_timeout`` (integer milliseconds >= 0).

    Raises:
        ConfigError: if it is not a non-negative integer.
    """
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"SQLite option busy_timeout must be an integer number of milliseconds >= 0, "
            f"got {value!r}"
        )
    return value


def check_synchronous(value: object) -> str:
    """Validate ``synchronous`` (case-insensitive ``OFF``/``NORMAL``/``FULL``/``EXTRA``).

    Raises:
        ConfigError: for any other value.
    """
    mode = value.upper() if isinstance(value, str) else None
    if mode not in SYNCHRONOUS_MODES:
        raise ConfigError(
            f"SQLite option synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, "
            f"got {value!r}"
        )
    return mode


def parse_url(url: str) -> SQLiteSettings:
    """Parse ``sqlite:///relative.db`` / ``sqlite:////abs.db`` with optional query options.

    Options: ``busy_timeout`` (milliseconds) and ``synchronous`` (``NORMAL`` by default).

    Raises:
        ConfigError: saying what is wrong with the URI.
    """
    if not isinstance(url, str):
        raise ConfigError(f"SQLite URI must be a string, got {type(url).__name__}")
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "sqlite" or not rest.startswith("//"):
        raise ConfigError(f"not a SQLite URI: {url!r}; expected {_FORMS}")
    parts = urllib.parse.urlsplit(url)
    if parts.netloc:
        raise ConfigError(
            f"SQLite URI {url!r} names a host ({parts.netloc!r}); SQLite is a local file, "
            f"write three slashes before the path: {_FORMS}"
        )
    if parts.fragment:
        raise ConfigError(f"SQLite URI {url!r} has a fragment (#{parts.fragment}); remove it")
    path = urllib.parse.unquote(parts.path[1:])  # drop the slash that ends "sqlite://"
    if not path:
        raise ConfigError(f"SQLite URI {url!r} names no database file; expected {_FORMS}")
    path = check_path(path)

    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise ConfigError(f"SQLite URI option {key!r} is given more than once in {url!r}")
        options[key] = value
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown SQLite URI option(s) {', '.join(unknown)} in {url!r}; "
            f"accepted: {', '.join(_OPTIONS)}"
        )
    return SQLiteSettings(
        path=path,
        busy_timeout_ms=check_busy_timeout(options["busy_timeout"])
        if "busy_timeout" in options
        else DEFAULT_BUSY_TIMEOUT_MS,
        synchronous=check_synchronous(options["synchronous"])
        if "synchronous" in options
        else "NORMAL",
    )

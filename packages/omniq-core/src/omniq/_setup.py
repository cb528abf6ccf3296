"""Wiring shared by the client and the ``omniq worker`` command: backend, secret, executors."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omniq.backend import Backend
from omniq.clock import Clock
from omniq.config import Settings
from omniq.errors import ConfigError
from omniq.executors import Executor
from omniq.plugins._registry import backend_class, executor_class, scheme_of
from omniq.serialization import Serializer

__all__ = [
    "create_backend",
    "EMBEDDED_EXECUTORS",
    "build_executors",
    "create_executor",
    "pool_size",
    "resolve_secret_key",
]

log = logging.getLogger("omniq.setup")


def create_backend(url: str, *, clock: Clock | None = None) -> Backend:
    """Build the (unopened) backend for a storage URI through the ``omniq.backends`` plugins.

    Raises:
        ConfigError: the URI is malformed.
        omniq.errors.BackendNotFoundError: no installed plugin serves its scheme.
    """
    cls: Any = backend_class(scheme_of(url))
    backend = cls.from_url(url, clock=clock)
    if not isinstance(backend, Backend):
        raise ConfigError(f"{cls!r}.from_url({url!r}) did not return an omniq Backend")
    return backend


def create_executor(
    name: str, *, settings: Settings, serializer: Serializer, concurrency: int | None = None
) -> Executor:
    """Build the named executor (via ``omniq.executors`` plugins).

    Args:
        name: executor name (``async``, ``thread``, ``process``, ``gevent`` or a plugin's).
        settings: effective settings; pool sizes and executor options come from here.
        serializer: the worker's serializer.
        concurrency: slots; default the executor's own ``OMNIQ_*_WORKERS`` setting.

    Raises:
        omniq.errors.ExecutorNotFoundError: no installed plugin provides ``name``.
        ConfigError: the plugin did not build an :class:`~omniq.executors.Executor`.
    """
    cls: Any = executor_class(name)
    executor = cls.from_settings(
        settings, concurrency=concurrency or pool_size(settings, name), serializer=serializer
    )
    if not isinstance(executor, Executor):
        raise ConfigError(f"executor plugin {name!r} did not build an omniq Executor")
    return executor


EMBEDDED_EXECUTORS = ("async", "thread", "process")
"""What an embedded worker hosts besides its default: omniq-core's executors (the process pool
starts its children on first use only, so hosting it costs nothing until a task needs it)."""


def build_executors(
    names: Sequence[str],
    *,
    settings: Settings,
    serializer: Serializer,
    concurrency: int | None = None,
) -> dict[str, Executor]:
    """The executors a worker hosts, by name, in the given order (duplicates dropped).

    Args:
        names: executor names; the first is the worker's default executor.
        settings: effective settings (pool sizes, executor options).
        serializer: the worker's serializer.
        concurrency: slots of the first (default) executor; others use their own setting.

    Raises:
        omniq.errors.ExecutorNotFoundError: a name has no installed plugin.
    """
    hosted: dict[str, Executor] = {}
    for i, name in enumerate(names):
        if name not in hosted:
            hosted[name] = create_executor(
                name,
                settings=settings,
                serializer=serializer,
                concurrency=concurrency if i == 0 else None,
            )
    return hosted


def pool_size(settings: Settings, executor: str) -> int:
    """An executor's slot count from its own ``OMNIQ_*_WORKERS`` setting (plugins: async's)."""
    per_executor = {
        "thread": settings.thread_workers,
        "process": settings.process_workers,
        "gevent": settings.gevent_workers,
    }
    return per_executor.get(executor, settings.async_workers)


def _local_key_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "omniq" / "secret.key"


def _local_key() -> bytes:
    """This user's machine-local signing key, created (mode 0600) on first use."""
    path = _local_key_path()
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
    try:
        os.link(tmp, path)  # first writer wins; concurrent starters all read the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


def resolve_secret_key(settings: Settings, backend: Backend) -> bytes | None:
    """The key that signs dill payloads.

    ``OMNIQ_SECRET_KEY`` when set. Otherwise, for stores that are not reached over a network
    (SQLite, local files, memory), a per-user key kept in ``$XDG_DATA_HOME/omniq/secret.key`` so
    processes of one user on one machine share it with zero configuration. Network backends get
    ``None``: dill stays off until a key is configured.
    """
    if settings.secret_key:
        return settings.secret_key.encode()
    if backend.capabilities.network:
        return None
    try:
        return _local_key()
    except OSError as exc:
        log.warning("no local signing key (%s); dill payloads are disabled", exc)
        return None

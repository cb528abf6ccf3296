"""Name → plugin lookup through entry points (``omniq.backends``, ``omniq.executors``).

Resolution is lazy: listing plugins loads only their small spec objects, and using one imports
only that plugin. Unknown names raise errors that say which distribution to install.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import msgspec

from omniq.errors import (
    BackendNotFoundError,
    ConfigError,
    ExecutorNotFoundError,
    PluginConflictError,
)
from omniq.plugins.specs import PROTOCOL_VERSION, BackendSpec, ExecutorSpec

__all__ = [
    "BACKEND_GROUP",
    "EXECUTOR_GROUP",
    "KNOWN_BACKENDS",
    "KNOWN_EXECUTORS",
    "check_executor_name",
    "InstalledPlugin",
    "backend_class",
    "executor_class",
    "executor_names",
    "installed_plugins",
    "scheme_of",
]

BACKEND_GROUP = "omniq.backends"
EXECUTOR_GROUP = "omniq.executors"

KNOWN_BACKENDS: dict[str, str] = {
    "sqlite": "omniq-sqlite",
    "memory": "omniq-obstore",
    "file": "omniq-obstore",
    "s3": "omniq-obstore",
    "gs": "omniq-obstore",
    "az": "omniq-obstore",
    "postgresql": "omniq-postgres",
    "postgres": "omniq-postgres",
    "redis": "omniq-redis",
    "rediss": "omniq-redis",
    "redis+cluster": "omniq-redis",
    "nats": "omniq-nats",
}
"""Schemes served by OmniQ's own distributions, for install hints."""

KNOWN_EXECUTORS: dict[str, str] = {
    "async": "omniq-core",
    "thread": "omniq-core",
    "process": "omniq-core",
    "gevent": "omniq-gevent",
}


class InstalledPlugin(msgspec.Struct, frozen=True, kw_only=True):
    """One installed plugin as ``omniq plugins`` shows it.

    Attributes:
        group: the entry-point group (``omniq.backends``, ``omniq.executors``, ``omniq``).
        name: the URI scheme, executor name, or hook module name.
        distribution: the distribution providing it.
        target: what it points to.
        description: one line, when the spec gives one.
    """

    group: str
    name: str
    distribution: str
    target: str
    description: str = ""


def scheme_of(url: str) -> str:
    """Return the lower-cased scheme of a storage URI (``"sqlite"`` for ``sqlite:///x.db``).

    Raises:
        ConfigError: if ``url`` has no ``scheme://`` part.
    """
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(
            f"storage URL {url!r} has no scheme; expected e.g. 'sqlite:///omniq.db' or 'redis://host'"
        )
    return scheme.lower()


def _distribution_of(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else "?"


def _entry_points(group: str, name: str) -> list[EntryPoint]:
    return [ep for ep in entry_points(group=group) if ep.name == name]


def _single(group: str, name: str) -> EntryPoint | None:
    found = _entry_points(group, name)
    # The same distribution can appear twice (e.g. an editable install plus a stale .egg-info).
    unique = {(_distribution_of(ep), ep.value): ep for ep in found}
    if len(unique) > 1:
        owners = ", ".join(sorted(f"{dist} ({value})" for dist, value in unique))
        raise PluginConflictError(
            f"{len(unique)} installed distributions claim {group} name {name!r}: {owners}; "
            "uninstall all but one"
        )
    return next(iter(unique.values()), None)


def _load_spec(ep: EntryPoint, kind: type[Any]) -> Any:
    spec = ep.load()
    if not isinstance(spec, kind):
        raise PluginConflictError(
            f"entry point {ep.group}:{ep.name} of {_distribution_of(ep)} points to "
            f"{type(spec).__name__}, expected a {kind.__name__}"
        )
    if spec.protocol_version != PROTOCOL_VERSION:
        raise PluginConflictError(
            f"{_distribution_of(ep)} implements protocol version {spec.protocol_version}, "
            f"this omniq-core speaks {PROTOCOL_VERSION}; install matching versions"
        )
    return spec


@functools.cache
def backend_class(scheme: str) -> Any:
    """Return the backend class registered for a URI scheme.

    Raises:
        BackendNotFoundError: no installed distribution serves ``scheme``; names the one to install.
        PluginConflictError: two distributions claim ``scheme``.
    """
    ep = _single(BACKEND_GROUP, scheme)
    if ep is None:
        hint = KNOWN_BACKENDS.get(scheme)
        installed = sorted({e.name for e in entry_points(group=BACKEND_GROUP)})
        advice = f"install it with: pip install {hint}" if hint else "no known package serves it"
        raise BackendNotFoundError(
            f"no OmniQ backend for {scheme}:// URIs is installed; {advice} "
            f"(installed schemes: {', '.join(installed) or 'none'})"
        )
    spec: BackendSpec = _load_spec(ep, BackendSpec)
    return spec.load()


def executor_names() -> list[str]:
    """Every executor name this environment knows: the installed ones and OmniQ's own
    (``KNOWN_EXECUTORS``, installed or not), sorted (read once per process)."""
    return list(_executor_names())


@functools.cache
def _executor_names() -> tuple[str, ...]:
    installed = {ep.name for ep in entry_points(group=EXECUTOR_GROUP)}
    return tuple(sorted(installed | set(KNOWN_EXECUTORS)))


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), executor_names(), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_executor_name(name: str) -> None:
    """Refuse, at enqueue, a task for an executor no worker could host: a name that is neither
    installed here nor one of OmniQ's own is almost always a typo, and its task would wait
    forever.

    Raises:
        ConfigError: the name is unknown; the message suggests close names.
    """
    if name not in _executor_names():
        raise ConfigError(
            f"executor={name!r} is not an installed executor ({', '.join(executor_names())})"
            f"{_did_you_mean(name)} (an executor plugin used only by workers must be installed "
            "where tasks are enqueued too)"
        )


@functools.cache
def executor_class(name: str) -> Any:
    """Return the executor class registered under ``name`` (``"async"``, ``"thread"``…).

    Raises:
        ExecutorNotFoundError: no installed distribution provides it; names the one to install.
        PluginConflictError: two distributions claim ``name``.
    """
    ep = _single(EXECUTOR_GROUP, name)
    if ep is None:
        hint = KNOWN_EXECUTORS.get(name)
        advice = (
            f"install it with: pip install {hint}"
            if hint
            else f"no known package provides it{_did_you_mean(name)}"
        )
        raise ExecutorNotFoundError(f"no OmniQ executor named {name!r} is installed; {advice}")
    spec: ExecutorSpec = _load_spec(ep, ExecutorSpec)
    return spec.load()


def _describe(ep: EntryPoint) -> str:
    try:
        spec = ep.load()
    except Exception as exc:  # a broken plugin must not break the listing
        return f"(failed to load: {type(exc).__name__}: {exc})"
    return str(getattr(spec, "description", "") or "")


def installed_plugins() -> Iterator[InstalledPlugin]:
    """Every installed backend, executor and hook module, sorted by group then name."""
    for group in (BACKEND_GROUP, EXECUTOR_GROUP, "omniq"):
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            yield InstalledPlugin(
                group=group,
                name=ep.name,
                distribution=_distribution_of(ep),
                target=ep.value,
                description=_describe(ep) if group != "omniq" else "",
            )

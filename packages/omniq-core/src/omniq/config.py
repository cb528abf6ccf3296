"""OmniQ settings: one typed, immutable object from arguments, ``OMNIQ_*`` variables, defaults.

Every setting is a field of :class:`Settings`; its environment variable is ``OMNIQ_`` followed by
the upper-cased field name (``max_workers`` ↔ ``OMNIQ_MAX_WORKERS``). :func:`load_settings` reads
the variables, applies explicit arguments on top and validates everything with msgspec, so a
setting's type, constraints and documentation live in one place: its field declaration.

Precedence: explicit argument > environment variable > default.

Example:
    >>> settings = load_settings({"OMNIQ_MAX_WORKERS": "4"}, log_level="debug")
    >>> settings.max_workers, settings.log_level
    (4, 'DEBUG')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from omniq._config_parse import (
    FieldInfo,
    field_infos,
    normalize,
    read_env,
    source_text,
    validate,
)
from omniq._config_text import SettingDoc, markdown_table, suggest
from omniq.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "IGNORED_ENV_PREFIXES",
    "ComponentName",
    "EventLevelName",
    "LogLevel",
    "ProcessStartMethod",
    "SettingDoc",
    "Settings",
    "StorageType",
    "WorkerType",
    "load_settings",
    "settings_markdown_table",
]

ENV_PREFIX = "OMNIQ_"
"""Prefix of every OmniQ environment variable."""

IGNORED_ENV_PREFIXES: tuple[str, ...] = ("OMNIQ_TEST_",)
"""``OMNIQ_*`` variables with these prefixes are not settings (e.g. ``OMNIQ_TEST_REQUIRE_SERVICES``
used by the test suite) and are neither read nor reported as unknown."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
"""A :mod:`logging` level name; input is case-insensitive."""

EventLevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "DISABLED"]
"""An event level name (:class:`omniq.models.EventLevel`); input is case-insensitive."""

StorageType = Literal["sqlite", "memory", "file", "s3", "gs", "az", "postgres", "redis", "nats"]
"""Storage kinds selectable by name through ``OMNIQ_STORAGE_TYPE``."""

WorkerType = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_\-]*$")]
"""An executor name (``async``, ``thread``, ``process``, ``gevent`` or a plugin's): lower-case
letters, digits, ``_`` and ``-``. Whether it is installed is checked when a worker builds it."""

ProcessStartMethod = Literal["forkserver", "spawn"]
"""How the ``process`` executor starts children (:mod:`multiprocessing` start methods)."""

ComponentName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")]
"""Dotted component name below the ``omniq`` logger, e.g. ``"worker"`` or ``"backend.sqlite"``."""

_URI = Annotated[str, Meta(pattern=r"^[A-Za-z][A-Za-z0-9+.\-]*://")]
_URI_EXPECTED = "a URI with a scheme, e.g. sqlite:///omniq.db, redis://localhost:6379/0"
_SECONDS = {"unit": "seconds"}

_OBSTORE_TYPES = frozenset({"memory", "file", "s3", "gs", "az"})
_SERVER_TYPES = {"postgres": "postgresql", "redis": "redis", "nats": "nats"}
_DEFAULT_FILE_DIR = "omniq-data"


def _cpu_count() -> int:
    return os.cpu_count() or 1


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every OmniQ setting, validated and immutable.

    Build it with :func:`load_settings`, which reads ``OMNIQ_*`` variables and validates each
    value; constructing ``Settings(...)`` directly skips validation. Each attribute's environment
    variable is ``OMNIQ_`` + its upper-cased name (see :meth:`env_names`); :meth:`describe` lists
    accepted values, defaults and meanings. ``secret_key`` is never shown by ``repr``/``str``.
    """

    log_level: Annotated[
        LogLevel, Meta(description="Level of the `omniq` logger, inherited by every component.")
    ] = "WARNING"
    component_log_levels: Annotated[
        dict[ComponentName, LogLevel],
        Meta(
            description=(
                'Per-component log levels, JSON: `{"worker": "DEBUG", "backend.sqlite": "INFO"}` '
                "sets loggers `omniq.worker` and `omniq.backend.sqlite`."
            ),
            extra={"default_text": "{}"},
        ),
    ] = msgspec.field(default_factory=dict)
    storage_type: Annotated[
        StorageType,
        Meta(description="Storage backend to use when `OMNIQ_STORAGE_URL` is not set."),
    ] = "sqlite"
    storage_url: Annotated[
        _URI | None,
        Meta(
            description=(
                "Storage URI (`sqlite:///omniq.db`, `postgresql://…`, `redis://…`, `nats://…`, "
                "`s3://…`); when set it wins over `OMNIQ_STORAGE_TYPE`."
            ),
            extra={"expected": _URI_EXPECTED, "none": "unset"},
        ),
    ] = None
    sqlite_path: Annotated[
        str,
        Meta(
            description=(
                "SQLite database file used when `OMNIQ_STORAGE_TYPE` is `sqlite` and no URL is set."
            ),
            extra={"expected": "a file path"},
        ),
    ] = "omniq.db"
    obstore_uri: Annotated[
        _URI | None,
        Meta(
            description=(
                "Object-store URI for storage types `memory`, `file`, `s3`, `gs`, `az` "
                "(e.g. `s3://bucket/prefix`). Unset: `memory://` for `memory`, "
                "`file://<absolute path of ./omniq-data>` for `file`; "
                "required for `s3`, `gs`, `az`."
            ),
            extra={"expected": "a URI, e.g. memory://, file:///var/omniq, s3://bucket/prefix"},
        ),
    ] = None
    default_worker: Annotated[
        WorkerType,
        Meta(
            description=(
                "Executor that runs tasks which do not name one (`async`, `thread`, `process`, "
                "`gevent`, or a plugin's)."
            ),
            extra={
                "expected": "an executor name, e.g. async, thread, process, gevent",
                "case": "lower",
            },
        ),
    ] = "async"
    max_workers: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description=(
                "Most tasks one worker runs at the same time across all its executors "
                "(each executor is also bounded by its own pool size)."
            ),
            extra={"none": "no overall cap"},
        ),
    ] = None
    async_workers: Annotated[
        int, Meta(ge=1, description="Coroutines the `async` executor runs at once.")
    ] = 10
    thread_workers: Annotated[
        int, Meta(ge=1, description="Pool size of the `thread` executor.")
    ] = 10
    process_workers: Annotated[
        int,
        Meta(
            ge=1,
            description="Pool size of the `process` executor.",
            extra={"default_text": "CPU count"},
        ),
    ] = msgspec.field(default_factory=_cpu_count)
    gevent_workers: Annotated[
        int, Meta(ge=1, description="Number of greenlets of the `gevent` executor.")
    ] = 100
    process_start_method: Annotated[
        ProcessStartMethod,
        Meta(
            description=(
                "How the `process` executor starts its children (never plain `fork`, which is "
                "unsafe in a threaded parent)."
            )
        ),
    ] = "forkserver"
    process_max_tasks_per_child: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description="Tasks a `process` child runs before it is replaced by a fresh one.",
            extra={"none": "no limit"},
        ),
    ] = None
    process_max_memory_mb: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description=(
                "Resident memory (MiB) above which a `process` child is replaced after its "
                "current task."
            ),
            extra={"none": "no limit"},
        ),
    ] = None
    process_terminate_on_cancel: Annotated[
        bool,
        Meta(
            description=(
                "Cancelling a task running on the `process` executor kills its child (replaced "
                "at once); off: the task's cancel token is set and the child finishes on its own."
            )
        ),
    ] = True
    task_timeout: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(
            description="Default time limit of one task attempt; tasks may set their own.",
            extra={**_SECONDS, "none": "no limit"},
        ),
    ] = None
    retry_attempts: Annotated[
        int,
        Meta(
            ge=0,
            description=(
                "Default number of retries after a failed attempt, a run lost with its worker "
                "included; a task runs at most retries + 1 times."
            ),
        ),
    ] = 3
    retry_delay: Annotated[
        float,
        Meta(
            ge=0,
            description=(
                "Default base delay before a retry: the first retry waits up to this long, "
                "each later one `retry_backoff` times longer (see docs/retries.md)."
            ),
            extra=_SECONDS,
        ),
    ] = 1.0
    retry_backoff: Annotated[
        float,
        Meta(
            ge=1,
            le=1000,
            description=(
                "Default multiplier of the retry delay from one retry to the next "
                "(1: a fixed delay)."
            ),
        ),
    ] = 2.0
    retry_max_delay: Annotated[
        float,
        Meta(ge=0, description="Default cap of one retry delay.", extra=_SECONDS),
    ] = 3600.0
    retry_jitter: Annotated[
        bool,
        Meta(
            description=(
                'Default "full jitter": each retry waits a random time between 0 and its '
                "backed-off delay, so failing tasks do not retry in lockstep."
            )
        ),
    ] = True
    result_ttl: Annotated[
        Annotated[float, Meta(ge=0)] | None,
        Meta(
            description="How long a finished task's result is kept (0: not stored).",
            extra={**_SECONDS, "none": "keep forever"},
        ),
    ] = 86400.0
    lease_seconds: Annotated[
        float,
        Meta(
            gt=0,
            le=86_400,
            description=(
                "Visibility timeout of a claimed task: if its worker stops renewing the lease "
                "for this long, another worker may claim it."
            ),
            extra=_SECONDS,
        ),
    ] = 30.0
    worker_heartbeat: Annotated[
        float,
        Meta(
            gt=0,
            description=(
                "How often a worker refreshes its health record (`omniq workers`); a worker not "
                "heard from for 3 heartbeats is considered dead and disappears from the listing."
            ),
            extra=_SECONDS,
        ),
    ] = 5.0
    breaker_threshold: Annotated[
        int,
        Meta(
            ge=1,
            description=(
                "Consecutive failed calls to the store after which a worker's circuit breaker "
                "opens: no claims, lease heartbeats or janitor runs until a probe call succeeds "
                "(running tasks continue; their outcomes are stored once the store is back)."
            ),
        ),
    ] = 5
    breaker_max_backoff: Annotated[
        float,
        Meta(
            gt=0,
            le=3600,
            description=(
                "Longest wait of an open circuit breaker before it probes the store again "
                "(the wait starts at 0.5 s and doubles after each failed probe, with jitter)."
            ),
            extra=_SECONDS,
        ),
    ] = 30.0
    poll_interval: Annotated[
        float,
        Meta(
            gt=0, le=60, description="Longest idle sleep between two claim polls.", extra=_SECONDS
        ),
    ] = 0.5
    max_payload_bytes: Annotated[
        int,
        Meta(
            ge=1,
            description="Largest encoded task payload or result accepted, in bytes.",
        ),
    ] = 10_485_760
    result_offload_url: Annotated[
        Annotated[str, Meta(pattern=r"^(memory|file|s3|gs|az)://")] | None,
        Meta(
            description=(
                "Object-store location (`file:///dir`, `s3://bucket/prefix`, `gs://…`, `az://…`, "
                "`memory://name`) where results larger than `OMNIQ_RESULT_OFFLOAD_BYTES` (or "
                "than the backend's value limit) are written; the backend keeps a small "
                "reference (claim-check). Needs omniq-obstore. Readers must set it too."
            ),
            extra={
                "expected": "an obstore URI: memory://, file:///abs/dir, s3://, gs:// or az://",
                "none": "off",
            },
        ),
    ] = None
    result_offload_bytes: Annotated[
        int,
        Meta(
            ge=1,
            description=(
                "Encoded results larger than this many bytes go to `OMNIQ_RESULT_OFFLOAD_URL` "
                "(when it is set; a backend's smaller value limit wins)."
            ),
        ),
    ] = 262_144
    shutdown_grace: Annotated[
        float,
        Meta(
            ge=0,
            description=(
                "How long a stopping worker lets running tasks finish before cancelling them."
            ),
            extra=_SECONDS,
        ),
    ] = 30.0
    callback_timeout: Annotated[
        float,
        Meta(
            gt=0,
            description=(
                "How long one lifecycle callback call may take; an async one is then cancelled, "
                "a sync one abandoned, and a `callback_error` event recorded."
            ),
            extra=_SECONDS,
        ),
    ] = 30.0
    retention: Annotated[
        float,
        Meta(gt=0, description="How long finished tasks are kept before purge.", extra=_SECONDS),
    ] = 604_800.0
    dead_retention: Annotated[
        float,
        Meta(
            gt=0,
            description=(
                "How long failed tasks (the dead-letter queue) are kept before purge, "
                "instead of `retention`."
            ),
            extra=_SECONDS,
        ),
    ] = 2_592_000.0
    event_retention: Annotated[
        float,
        Meta(gt=0, description="How long recorded events are kept.", extra=_SECONDS),
    ] = 604_800.0
    purge_interval: Annotated[
        float,
        Meta(
            gt=0,
            description=(
                "How often each worker's janitor purges finished tasks, expired results (and "
                "their offloaded objects) and old events."
            ),
            extra=_SECONDS,
        ),
    ] = 60.0
    event_level: Annotated[
        EventLevelName,
        Meta(
            description=(
                "Least important event level recorded in the event store (`DEBUG` records "
                "every event, `DISABLED` none); changeable at run time through "
                "`queue.event_logger.level`. See docs/events.md for the level of each event."
            )
        ),
    ] = "DEBUG"
    event_max_count: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description=(
                "Most events kept: purge deletes the oldest beyond this count (besides "
                "`OMNIQ_EVENT_RETENTION`); none = no count limit."
            ),
            extra={"expected": "an integer >= 1", "none": "no count limit"},
        ),
    ] = 1_000_000
    event_sink_url: Annotated[
        _URI | None,
        Meta(
            description=(
                "Also write every stored batch of events as JSON lines to this object-store "
                "location (`file:///dir`, `s3://bucket/prefix`, `memory://`), for "
                "`omniq events query`; needs omniq-obstore."
            ),
            extra={
                "expected": "an object-store URI, e.g. file:///var/omniq/events",
                "none": "unset",
            },
        ),
    ] = None
    events_enabled: Annotated[
        bool,
        Meta(
            description=(
                "Deprecated: `false` is the same as `OMNIQ_EVENT_LEVEL=DISABLED`; use "
                "`OMNIQ_EVENT_LEVEL` instead."
            )
        ),
    ] = True
    scheduler_enabled: Annotated[
        bool,
        Meta(
            description=(
                "Run the scheduler loop in every worker (schedules produce exactly one task per "
                "tick however many workers run it)."
            )
        ),
    ] = True
    secret_key: Annotated[
        str | None,
        Meta(
            description=(
                "Key for the HMAC-SHA256 signature of dill payloads; never shown in repr or "
                "error messages."
            ),
            extra={"expected": "a string", "none": "unset", "secret": True},
        ),
    ] = None
    dashboard_enabled: Annotated[bool, Meta(description="Serve the web dashboard.")] = False
    dashboard_port: Annotated[
        int, Meta(ge=1, le=65535, description="TCP port of the web dashboard.")
    ] = 8080

    def __repr__(self) -> str:
        """Return the constructor-like representation with secret fields redacted."""
        body = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"{type(self).__name__}({body})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """Return ``(field, value)`` pairs for rich's pretty printer, secrets redacted."""
        return [
            (name, "***" if _FIELDS[name].secret and getattr(self, name) is not None else value)
            for name, value in ((n, getattr(self, n)) for n in self.__struct_fields__)
        ]

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Map each field name to its environment variable.

        Returns:
            ``{"log_level": "OMNIQ_LOG_LEVEL", ...}`` in field order.
        """
        return {name: info.env for name, info in _FIELDS.items()}

    @classmethod
    def describe(cls) -> tuple[SettingDoc, ...]:
        """Document every setting: variable, accepted values, default and meaning.

        Returns:
            One :class:`SettingDoc` per field, in field order.
        """
        return tuple(info.doc for info in _FIELDS.values())

    def resolved_event_level(self) -> EventLevelName:
        """The event level in effect: ``DISABLED`` when the deprecated ``events_enabled`` is
        false, else ``event_level``."""
        return self.event_level if self.events_enabled else "DISABLED"

    def resolved_storage_url(self) -> str:
        """Return the storage URI these settings select.

        ``storage_url`` if set; otherwise built from ``storage_type``: ``sqlite`` →
        ``sqlite:///{sqlite_path}``; ``memory``/``file``/``s3``/``gs``/``az`` → ``obstore_uri``,
        or ``memory://`` / ``file://<absolute ./omniq-data>`` by default.

        Returns:
            A URI whose scheme names the backend plugin.

        Raises:
            ConfigError: ``storage_type`` is ``postgres``/``redis``/``nats`` (or ``s3``/``gs``/
                ``az``) and no URI was given for it.
        """
        if self.storage_url is not None:
            return self.storage_url
        kind = self.storage_type
        if kind == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        if kind in _OBSTORE_TYPES:
            if self.obstore_uri is not None:
                return self.obstore_uri
            if kind == "memory":
                return "memory://"
            if kind == "file":
                return Path(_DEFAULT_FILE_DIR).resolve().as_uri()
            raise ConfigError(
                f"OMNIQ_STORAGE_TYPE={kind!r} needs a location: set OMNIQ_OBSTORE_URI "
                f"(or OMNIQ_STORAGE_URL) to a {kind}://… URI, e.g. {kind}://bucket/prefix"
            )
        scheme = _SERVER_TYPES[kind]
        raise ConfigError(
            f"OMNIQ_STORAGE_TYPE={kind!r} needs a server address: set OMNIQ_STORAGE_URL to a "
            f"{scheme}://… URI, e.g. {scheme}://localhost/…"
        )


# --------------------------------------------------------------------------- loading

_LITERAL_ORDER = {
    frozenset(get_args(t)): get_args(t)
    for t in (LogLevel, EventLevelName, StorageType, ProcessStartMethod)
}
_FIELDS: dict[str, FieldInfo] = field_infos(Settings, ENV_PREFIX, _LITERAL_ORDER)
_BY_ENV: dict[str, FieldInfo] = {info.env: info for info in _FIELDS.values()}


def load_settings(env: Mapping[str, str] | None = None, /, **overrides: Any) -> Settings:
    """Build validated :class:`Settings` from arguments, ``OMNIQ_*`` variables and defaults.

    Precedence: explicit argument > environment variable > default. Every ``OMNIQ_*`` variable
    must name a setting (except those under :data:`IGNORED_ENV_PREFIXES`), so a misspelling such
    as ``OMNIQ_MAX_WORKER`` is an error instead of silently doing nothing. Problems are collected
    and reported together.

    String values (from the environment, or passed as arguments) are stripped; enumerations are
    case-insensitive; booleans accept true/false/1/0/yes/no/on/off; optional settings take
    ``""``, ``"none"`` or ``"null"`` for None; ``OMNIQ_COMPONENT_LOG_LEVELS`` is a JSON object.

    Args:
        env: the variables to read; ``os.environ`` when omitted. Pass ``{}`` for pure defaults.
        **overrides: settings by field name, as Python values (``max_workers=4``). ``None`` means
            "not given" and is skipped, so an argument cannot reset an optional setting to None.

    Returns:
        The validated, immutable settings.

    Raises:
        ConfigError: an unknown ``OMNIQ_*`` variable or argument, or a value that is not
            accepted; the message names each variable (or argument) and what it accepts.
    """
    source_env: Mapping[str, str] = os.environ if env is None else env
    overridden = {name for name, value in overrides.items() if value is not None}
    data, sources, problems = read_env(
        source_env, _BY_ENV, skip=overridden, prefix=ENV_PREFIX, ignored=IGNORED_ENV_PREFIXES
    )
    for name, value in overrides.items():
        field_info = _FIELDS.get(name)
        if field_info is None:
            problems.append(f"unknown argument {name!r}: {suggest(name, list(_FIELDS))}")
            continue
        if value is None:
            continue
        sources[name] = source_text(field_info, value, from_env=False)
        data[name] = normalize(field_info, value)
    return validate(Settings, _FIELDS, data, sources, problems)


def settings_markdown_table() -> str:
    """Render :meth:`Settings.describe` as the Markdown table of ``docs/configuration.md``.

    Returns:
        The table, one row per variable, ending with a newline.
    """
    return markdown_table(Settings.describe())

"""Tests of omniq.config (arguments, OMNIQ_* variables, defaults) and omniq.logging."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import omniq.logging as omniq_logging
from omniq.config import Settings, load_settings, settings_markdown_table
from omniq.errors import ConfigError
from omniq.logging import LOG_FORMAT, configure_logging, get_logger

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"

# --------------------------------------------------------------------------- defaults & parsing


def test_defaults() -> None:
    s = load_settings({})
    assert s.log_level == "WARNING"
    assert s.component_log_levels == {}
    assert s.storage_type == "sqlite"
    assert s.storage_url is None
    assert s.sqlite_path == "omniq.db"
    assert s.obstore_uri is None
    assert s.default_worker == "async"
    assert s.max_workers is None
    assert s.async_workers == 10
    assert s.thread_workers == 10
    assert s.process_workers == (os.cpu_count() or 1)
    assert s.gevent_workers == 100
    assert s.task_timeout is None
    assert s.retry_attempts == 3
    assert s.retry_delay == 1.0
    assert s.result_ttl == 86400.0
    assert s.lease_seconds == 30.0
    assert s.poll_interval == 0.5
    assert s.max_payload_bytes == 10_485_760
    assert s.shutdown_grace == 30.0
    assert s.retention == 604_800.0
    assert s.event_retention == 604_800.0
    assert s.events_enabled is True
    assert s.event_level == "DEBUG"
    assert s.event_max_count == 1_000_000
    assert s.event_sink_url is None
    assert s.resolved_event_level() == "DEBUG"
    assert s.secret_key is None
    assert s.dashboard_enabled is False
    assert s.dashboard_port == 8080
    assert s.process_start_method == "forkserver"
    assert s.process_max_tasks_per_child is None
    assert s.process_max_memory_mb is None
    assert s.process_terminate_on_cancel is True


# One (variable, raw text, parsed value) per setting; test_every_setting_is_covered keeps it whole.
PARSED: list[tuple[str, str, Any]] = [
    ("OMNIQ_LOG_LEVEL", "debug", "DEBUG"),
    (
        "OMNIQ_COMPONENT_LOG_LEVELS",
        '{"worker": "DEBUG", "backend.sqlite": "info", "omniq.scheduler": "ERROR"}',
        {"worker": "DEBUG", "backend.sqlite": "INFO", "scheduler": "ERROR"},
    ),
    ("OMNIQ_STORAGE_TYPE", "Redis", "redis"),
    ("OMNIQ_STORAGE_URL", "redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("OMNIQ_SQLITE_PATH", "/tmp/q.db", "/tmp/q.db"),
    ("OMNIQ_OBSTORE_URI", "s3://bucket/prefix", "s3://bucket/prefix"),
    ("OMNIQ_DEFAULT_WORKER", "THREAD", "thread"),
    ("OMNIQ_MAX_WORKERS", " 4 ", 4),
    ("OMNIQ_THREAD_WORKERS", "3", 3),
    ("OMNIQ_PROCESS_WORKERS", "2", 2),
    ("OMNIQ_GEVENT_WORKERS", "500", 500),
    ("OMNIQ_ASYNC_WORKERS", "50", 50),
    ("OMNIQ_PROCESS_START_METHOD", "Spawn", "spawn"),
    ("OMNIQ_PROCESS_MAX_TASKS_PER_CHILD", "100", 100),
    ("OMNIQ_PROCESS_MAX_MEMORY_MB", "512", 512),
    ("OMNIQ_PROCESS_TERMINATE_ON_CANCEL", "false", False),
    ("OMNIQ_TASK_TIMEOUT", "2.5", 2.5),
    ("OMNIQ_RETRY_ATTEMPTS", "3", 3),
    ("OMNIQ_RETRY_DELAY", "0", 0.0),
    ("OMNIQ_RETRY_BACKOFF", "1.5", 1.5),
    ("OMNIQ_RETRY_MAX_DELAY", "60", 60.0),
    ("OMNIQ_RETRY_JITTER", "off", False),
    ("OMNIQ_RESULT_TTL", "60", 60.0),
    ("OMNIQ_LEASE_SECONDS", "12.5", 12.5),
    ("OMNIQ_WORKER_HEARTBEAT", "0.2", 0.2),
    ("OMNIQ_BREAKER_THRESHOLD", "3", 3),
    ("OMNIQ_BREAKER_MAX_BACKOFF", "10", 10.0),
    ("OMNIQ_POLL_INTERVAL", "0.05", 0.05),
    ("OMNIQ_MAX_PAYLOAD_BYTES", "1024", 1024),
    ("OMNIQ_RESULT_OFFLOAD_URL", "s3://bucket/results", "s3://bucket/results"),
    ("OMNIQ_RESULT_OFFLOAD_BYTES", "65536", 65536),
    ("OMNIQ_SHUTDOWN_GRACE", "0", 0.0),
    ("OMNIQ_CALLBACK_TIMEOUT", "2.5", 2.5),
    ("OMNIQ_RETENTION", "3600", 3600.0),
    ("OMNIQ_DEAD_RETENTION", "86400", 86400.0),
    ("OMNIQ_EVENT_RETENTION", "7200", 7200.0),
    ("OMNIQ_PURGE_INTERVAL", "0.5", 0.5),
    ("OMNIQ_EVENT_LEVEL", "warning", "WARNING"),
    ("OMNIQ_EVENT_MAX_COUNT", "500", 500),
    ("OMNIQ_EVENT_SINK_URL", "file:///var/omniq/events", "file:///var/omniq/events"),
    ("OMNIQ_EVENTS_ENABLED", "off", False),
    ("OMNIQ_SCHEDULER_ENABLED", "no", False),
    ("OMNIQ_SECRET_KEY", "k3y", "k3y"),
    ("OMNIQ_DASHBOARD_ENABLED", "yes", True),
    ("OMNIQ_DASHBOARD_PORT", "9000", 9000),
]


@pytest.mark.parametrize(("var", "raw", "expected"), PARSED, ids=[p[0] for p in PARSED])
def test_every_variable_is_parsed(var: str, raw: str, expected: Any) -> None:
    field = var.removeprefix("OMNIQ_").lower()
    value = getattr(load_settings({var: raw}), field)
    assert value == expected
    assert type(value) is type(expected)


def test_every_setting_is_covered() -> None:
    assert sorted(p[0] for p in PARSED) == sorted(Settings.env_names().values())
    assert Settings.env_names()["max_workers"] == "OMNIQ_MAX_WORKERS"
    assert list(Settings.env_names()) == list(Settings.__struct_fields__)


def test_all_variables_together_and_os_environ_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("OMNIQ_"):
            monkeypatch.delenv(key)
    for var, raw, _ in PARSED:
        monkeypatch.setenv(var, raw)
    monkeypatch.setenv("OMNIQ_TEST_REQUIRE_SERVICES", "1")  # test-suite switch, not a setting
    monkeypatch.setenv("UNRELATED", "x")
    s = load_settings()
    for var, _, expected in PARSED:
        assert getattr(s, var.removeprefix("OMNIQ_").lower()) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("NO", False),
        ("off", False),
        (" yes ", True),
    ],
)
def test_bool_parsing(raw: str, expected: bool) -> None:
    assert load_settings({"OMNIQ_EVENTS_ENABLED": raw}).events_enabled is expected
    assert load_settings({"OMNIQ_DASHBOARD_ENABLED": raw}).dashboard_enabled is expected


def test_event_level_and_its_deprecated_alias() -> None:
    assert load_settings({"OMNIQ_EVENT_LEVEL": "disabled"}).resolved_event_level() == "DISABLED"
    off = load_settings({"OMNIQ_EVENTS_ENABLED": "false", "OMNIQ_EVENT_LEVEL": "INFO"})
    assert off.resolved_event_level() == "DISABLED"  # the deprecated switch still turns it off
    assert load_settings({"OMNIQ_EVENT_MAX_COUNT": "none"}).event_max_count is None
    with pytest.raises(ConfigError, match=r"OMNIQ_EVENT_LEVEL=.loud.*DISABLED"):
        load_settings({"OMNIQ_EVENT_LEVEL": "loud"})
    with pytest.raises(ConfigError, match=r"OMNIQ_EVENT_MAX_COUNT=.0."):
        load_settings({"OMNIQ_EVENT_MAX_COUNT": "0"})


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "enabled"])
def test_bad_bool(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"OMNIQ_EVENTS_ENABLED=.*yes/no"):
        load_settings({"OMNIQ_EVENTS_ENABLED": raw})


@pytest.mark.parametrize("raw", ["", "none", "None", "NULL", "  "])
def test_optional_values_accept_none_words(raw: str) -> None:
    s = load_settings(
        {"OMNIQ_TASK_TIMEOUT": raw, "OMNIQ_RESULT_TTL": raw, "OMNIQ_STORAGE_URL": raw}
    )
    assert s.task_timeout is None
    assert s.result_ttl is None
    assert s.storage_url is None


def test_empty_component_levels_is_empty() -> None:
    assert load_settings({"OMNIQ_COMPONENT_LOG_LEVELS": ""}).component_log_levels == {}


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(AttributeError):
        s.max_workers = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("raw", ["abc", "0", "-3", "1.5"])
def test_invalid_pool_size_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OMNIQ_THREAD_WORKERS": raw})
    message = str(info.value)
    assert message == f"OMNIQ_THREAD_WORKERS={raw!r} is invalid: expected an integer ≥ 1"


def test_invalid_log_level_lists_accepted_values() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OMNIQ_LOG_LEVEL": "LOUD"})
    message = str(info.value)
    assert "OMNIQ_LOG_LEVEL='LOUD'" in message
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in message


@pytest.mark.parametrize(
    ("var", "raw", "fragment"),
    [
        ("OMNIQ_DASHBOARD_PORT", "0", "an integer from 1 to 65535"),
        ("OMNIQ_DASHBOARD_PORT", "65536", "an integer from 1 to 65535"),
        ("OMNIQ_TASK_TIMEOUT", "0", "a number of seconds > 0, or none/empty"),
        ("OMNIQ_LEASE_SECONDS", "-1", "a number of seconds > 0"),
        ("OMNIQ_RETRY_DELAY", "soon", "a number of seconds ≥ 0"),
        ("OMNIQ_RETRY_ATTEMPTS", "-1", "an integer ≥ 0"),
        ("OMNIQ_RETRY_BACKOFF", "0.5", "a number from 1 to 1000"),
        ("OMNIQ_STORAGE_TYPE", "mysql", "sqlite, memory, file, s3, gs, az, postgres, redis, nats"),
        ("OMNIQ_DEFAULT_WORKER", "green threads", "an executor name, e.g. async, thread"),
        ("OMNIQ_STORAGE_URL", "localhost:6379", "a URI with a scheme"),
        ("OMNIQ_RESULT_OFFLOAD_URL", "redis://h/0", "an obstore URI"),
        ("OMNIQ_RESULT_OFFLOAD_BYTES", "0", "an integer ≥ 1"),
        ("OMNIQ_OBSTORE_URI", "bucket", "a URI"),
    ],
)
def test_invalid_values_name_variable_and_accepted_values(
    var: str, raw: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({var: raw})
    message = str(info.value)
    assert message.startswith(f"{var}={raw!r} is invalid: expected ")
    assert fragment in message


def test_bad_json_in_component_levels_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match=r"OMNIQ_COMPONENT_LOG_LEVELS='\{worker: DEBUG' .*not JSON"
    ):
        load_settings({"OMNIQ_COMPONENT_LOG_LEVELS": "{worker: DEBUG"})


@pytest.mark.parametrize(
    "raw",
    ['["worker"]', '{"worker": "LOUD"}', '{"worker": 10}', '{"bad name!": "DEBUG"}', "null"],
)
def test_bad_component_levels(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OMNIQ_COMPONENT_LOG_LEVELS": raw})
    message = str(info.value)
    assert message.startswith("OMNIQ_COMPONENT_LOG_LEVELS=")
    assert "JSON object" in message


def test_unknown_variable_suggests_close_match() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OMNIQ_MAX_WORKER": "4"})
    message = str(info.value)
    assert "OMNIQ_MAX_WORKER:" in message
    assert "did you mean OMNIQ_MAX_WORKERS" in message


def test_unknown_variable_without_close_match_lists_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OMNIQ_FOO": "1"})
    message = str(info.value)
    assert "unknown environment variable OMNIQ_FOO" in message
    assert "OMNIQ_LOG_LEVEL" in message
    assert "OMNIQ_DASHBOARD_PORT" in message


def test_lower_case_variable_is_reported() -> None:
    with pytest.raises(ConfigError, match="use OMNIQ_LOG_LEVEL"):
        load_settings({"omniq_log_level": "DEBUG"})


def test_ignored_and_foreign_variables() -> None:
    s = load_settings({"OMNIQ_TEST_REQUIRE_SERVICES": "1", "PATH": "/bin", "OMNIQ": "x"})
    assert s == load_settings({})


def test_all_problems_are_reported_together() -> None:
    env = {"OMNIQ_MAX_WORKERS": "abc", "OMNIQ_LOG_LEVEL": "LOUD", "OMNIQ_MAX_WORKER": "1"}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    message = str(info.value)
    assert message.startswith("invalid OmniQ settings:\n")
    for var in env:
        assert f"{var}" in message
    assert message.count("\n  - ") == 3


# --------------------------------------------------------------------------- overrides


def test_overrides_beat_environment() -> None:
    env = {"OMNIQ_MAX_WORKERS": "4", "OMNIQ_LOG_LEVEL": "ERROR", "OMNIQ_EVENTS_ENABLED": "1"}
    s = load_settings(env, max_workers=7, events_enabled=False)
    assert s.max_workers == 7
    assert s.events_enabled is False
    assert s.log_level == "ERROR"  # not overridden: environment wins over default


def test_override_hides_invalid_environment_value() -> None:
    env = {"OMNIQ_MAX_WORKERS": "abc", "OMNIQ_COMPONENT_LOG_LEVELS": "{not json"}
    s = load_settings(env, max_workers=2, component_log_levels={"worker": "INFO"})
    assert (s.max_workers, s.component_log_levels) == (2, {"worker": "INFO"})


def test_none_override_is_ignored() -> None:
    s = load_settings({"OMNIQ_MAX_WORKERS": "4", "OMNIQ_TASK_TIMEOUT": "9"}, max_workers=None)
    assert s.max_workers == 4
    s = load_settings({"OMNIQ_TASK_TIMEOUT": "9"}, task_timeout=None)
    assert s.task_timeout == 9.0


def test_override_values_are_normalized_like_env() -> None:
    s = load_settings(
        {},
        log_level="info",
        storage_type="MEMORY",
        component_log_levels={"omniq.worker": "debug"},
    )
    assert (s.log_level, s.storage_type) == ("INFO", "memory")
    assert s.component_log_levels == {"worker": "DEBUG"}


def test_invalid_override_names_the_argument() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OMNIQ_MAX_WORKERS": "4"}, max_workers=0)
    assert (
        str(info.value)
        == "argument max_workers=0 is invalid: expected an integer ≥ 1, or none/empty (no overall cap)"
    )


def test_unknown_override_suggests_field() -> None:
    with pytest.raises(
        ConfigError, match="unknown argument 'max_worker': did you mean max_workers"
    ):
        load_settings({}, max_worker=3)


def test_bool_is_not_an_integer() -> None:
    with pytest.raises(ConfigError, match="argument max_workers=True"):
        load_settings({}, max_workers=True)


# --------------------------------------------------------------------------- secrets


def test_secret_key_never_shown() -> None:
    s = load_settings({"OMNIQ_SECRET_KEY": "hunter2-very-secret"})
    assert s.secret_key == "hunter2-very-secret"
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert "hunter2" not in repr(list(s.__rich_repr__()))
    assert "secret_key='***'" in repr(s)
    assert "async_workers=10" in repr(s)
    assert "secret_key=None" in repr(load_settings({}))


def test_secret_key_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, secret_key=12345)
    assert "12345" not in str(info.value)
    assert "argument secret_key='***'" in str(info.value)


# --------------------------------------------------------------------------- storage URL


def test_resolved_storage_url_prefers_explicit_url() -> None:
    s = load_settings({"OMNIQ_STORAGE_TYPE": "memory", "OMNIQ_STORAGE_URL": "redis://h:6379/1"})
    assert s.resolved_storage_url() == "redis://h:6379/1"


def test_resolved_storage_url_sqlite() -> None:
    assert load_settings({}).resolved_storage_url() == "sqlite:///omniq.db"
    s = load_settings({"OMNIQ_SQLITE_PATH": "/var/lib/omniq/q.db"})
    assert s.resolved_storage_url() == "sqlite:////var/lib/omniq/q.db"


def test_resolved_storage_url_obstore() -> None:
    assert load_settings({}, storage_type="memory").resolved_storage_url() == "memory://"
    file_url = load_settings({}, storage_type="file").resolved_storage_url()
    assert file_url == (Path.cwd() / "omniq-data").resolve().as_uri()
    assert file_url.startswith("file:///")
    s = load_settings({"OMNIQ_STORAGE_TYPE": "s3", "OMNIQ_OBSTORE_URI": "s3://b/p"})
    assert s.resolved_storage_url() == "s3://b/p"


@pytest.mark.parametrize("kind", ["s3", "gs", "az"])
def test_resolved_storage_url_cloud_needs_uri(kind: str) -> None:
    with pytest.raises(ConfigError, match=f"set OMNIQ_OBSTORE_URI .* {kind}://"):
        load_settings({}, storage_type=kind).resolved_storage_url()


@pytest.mark.parametrize(
    ("kind", "scheme"), [("postgres", "postgresql"), ("redis", "redis"), ("nats", "nats")]
)
def test_resolved_storage_url_servers_need_url(kind: str, scheme: str) -> None:
    with pytest.raises(ConfigError, match=f"set OMNIQ_STORAGE_URL to a {scheme}://… URI"):
        load_settings({"OMNIQ_STORAGE_TYPE": kind}).resolved_storage_url()


# --------------------------------------------------------------------------- documentation


def test_describe_lists_every_setting() -> None:
    docs = Settings.describe()
    assert [d.name for d in docs] == list(Settings.__struct_fields__)
    by_env = {d.env: d for d in docs}
    assert by_env["OMNIQ_THREAD_WORKERS"].accepted == "an integer ≥ 1"
    assert by_env["OMNIQ_THREAD_WORKERS"].default == "10"
    assert by_env["OMNIQ_TASK_TIMEOUT"].default == "no limit"
    assert all(d.description for d in docs)
    schema = msgspec.json.schema(Settings)
    assert "description" in schema["$defs"]["Settings"]["properties"]["lease_seconds"]


def test_docs_table_is_current() -> None:
    if not DOCS.exists():  # pragma: no cover - installed package without the repository
        pytest.skip("docs/configuration.md is not next to this checkout")
    assert settings_markdown_table() in DOCS.read_text(encoding="utf-8"), (
        "docs/configuration.md is stale: paste omniq.config.settings_markdown_table() into it"
    )


# --------------------------------------------------------------------------- logging


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Snapshot and restore the omniq loggers and the root handlers around a test."""
    omniq = logging.getLogger("omniq")
    root = logging.getLogger()
    names = ["omniq.worker", "omniq.backend.sqlite", "omniq.scheduler"]
    saved = (omniq.level, list(omniq.handlers), list(root.handlers))
    saved_levels = {n: logging.getLogger(n).level for n in names}
    try:
        yield
    finally:
        for h in omniq.handlers:
            if h not in saved[1]:
                h.close()
        omniq.setLevel(saved[0])
        omniq.handlers[:] = saved[1]
        root.handlers[:] = saved[2]
        for n, level in saved_levels.items():
            logging.getLogger(n).setLevel(level)
        omniq_logging._configured_components.clear()


def test_get_logger_names() -> None:
    assert get_logger("worker").name == "omniq.worker"
    assert get_logger("backend.sqlite").name == "omniq.backend.sqlite"
    assert get_logger("omniq.worker") is get_logger("worker")
    assert get_logger("").name == "omniq"
    assert get_logger("backend.sqlite").parent is not None


@pytest.mark.usefixtures("clean_logging")
def test_configure_logging_applies_levels() -> None:
    settings = load_settings(
        {
            "OMNIQ_LOG_LEVEL": "error",
            "OMNIQ_COMPONENT_LOG_LEVELS": '{"worker": "DEBUG", "backend.sqlite": "INFO"}',
        }
    )
    configure_logging(settings)
    assert logging.getLogger("omniq").level == logging.ERROR
    assert get_logger("worker").getEffectiveLevel() == logging.DEBUG
    assert get_logger("backend.sqlite").getEffectiveLevel() == logging.INFO
    assert get_logger("scheduler").getEffectiveLevel() == logging.ERROR
    # a later call without the components hands them back to the omniq level
    configure_logging(load_settings({}, log_level="INFO"))
    assert get_logger("worker").level == logging.NOTSET
    assert get_logger("worker").getEffectiveLevel() == logging.INFO


@pytest.mark.usefixtures("clean_logging")
def test_configure_logging_adds_one_stderr_handler_when_nothing_handles() -> None:
    omniq = logging.getLogger("omniq")
    omniq.handlers.clear()
    logging.getLogger().handlers.clear()
    settings = load_settings({})
    configure_logging(settings)
    configure_logging(settings)
    configure_logging(settings)
    assert len(omniq.handlers) == 1
    handler = omniq.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    assert handler.formatter is not None
    assert handler.formatter._fmt == LOG_FORMAT


@pytest.mark.usefixtures("clean_logging")
def test_configure_logging_respects_application_handlers() -> None:
    omniq = logging.getLogger("omniq")
    omniq.handlers.clear()
    logging.getLogger().handlers[:] = [logging.NullHandler()]
    configure_logging(load_settings({}))
    assert omniq.handlers == []


@pytest.mark.usefixtures("clean_logging")
def test_configure_logging_with_explicit_handler() -> None:
    omniq = logging.getLogger("omniq")
    omniq.handlers.clear()
    logging.getLogger().handlers.clear()
    configure_logging(load_settings({}))  # installs the default handler
    stream = io.StringIO()
    mine = logging.StreamHandler(stream)
    settings = load_settings({"OMNIQ_COMPONENT_LOG_LEVELS": '{"worker": "DEBUG"}'})
    configure_logging(settings, handler=mine)
    configure_logging(settings, handler=mine)
    assert omniq.handlers == [mine]
    get_logger("worker").debug("claimed %d tasks", 3)
    get_logger("scheduler").info("hidden: below WARNING")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(" DEBUG omniq.worker: claimed 3 tasks")

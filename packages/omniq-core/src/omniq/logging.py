"""Python logging for OmniQ: one logger per component under ``omniq``.

Components log through :func:`get_logger` (``get_logger("worker")`` is the ``omniq.worker``
logger, ``get_logger("backend.redis")`` is ``omniq.backend.redis``). :func:`configure_logging`
applies :class:`~omniq.config.Settings` levels and, only when nothing else handles log records,
adds one stderr handler, so applications that configure logging themselves never see lines twice.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from omniq.config import Settings, load_settings

__all__ = ["LOG_FORMAT", "ROOT_LOGGER_NAME", "configure_logging", "get_logger"]

ROOT_LOGGER_NAME = "omniq"
"""Name of the logger every OmniQ component logger descends from."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""Format of the stderr handler :func:`configure_logging` installs."""

_configured_components: set[str] = set()
"""Component loggers whose level the last :func:`configure_logging` call set."""


class _OmniQStreamHandler(logging.StreamHandler[TextIO]):
    """The stderr handler installed by :func:`configure_logging`, recognisable by type."""


def get_logger(component: str = "") -> logging.Logger:
    """Return the logger of an OmniQ component.

    Args:
        component: dotted component name, e.g. ``"worker"`` or ``"backend.sqlite"``; a leading
            ``"omniq."`` is accepted and ignored. Empty returns the ``omniq`` logger itself.

    Returns:
        ``logging.getLogger(f"omniq.{component}")``.
    """
    component = component.strip().removeprefix(f"{ROOT_LOGGER_NAME}.")
    if component in ("", ROOT_LOGGER_NAME):
        return logging.getLogger(ROOT_LOGGER_NAME)
    return logging.getLogger(f"{ROOT_LOGGER_NAME}.{component}")


def configure_logging(
    settings: Settings | None = None, *, handler: logging.Handler | None = None
) -> None:
    """Apply the log levels of ``settings`` and make sure OmniQ's records are shown somewhere.

    Sets the ``omniq`` logger to ``settings.log_level`` and each component of
    ``settings.component_log_levels`` to its level; components set by an earlier call but absent
    now go back to ``NOTSET`` (inheriting). Handlers:

    * ``handler`` given: attached to ``omniq`` (once), replacing the stderr handler a previous
      call installed; it gets :data:`LOG_FORMAT` if it has no formatter.
    * otherwise: a stderr handler with :data:`LOG_FORMAT` is added to ``omniq`` only if neither
      ``omniq`` nor the root logger has a handler — applications that configure logging keep
      full control and records are never emitted twice.

    Calling it again with the same arguments changes nothing (idempotent).

    Args:
        settings: the settings to apply; :func:`~omniq.config.load_settings` from the
            environment when omitted.
        handler: a handler to use instead of the default stderr handler.
    """
    if settings is None:
        settings = load_settings()
    root = logging.getLogger(ROOT_LOGGER_NAME)
    root.setLevel(settings.log_level)

    components = set(settings.component_log_levels)
    for stale in _configured_components - components:
        get_logger(stale).setLevel(logging.NOTSET)
    for component, level in settings.component_log_levels.items():
        get_logger(component).setLevel(level)
    _configured_components.clear()
    _configured_components.update(components)

    if handler is not None:
        for own in [h for h in root.handlers if isinstance(h, _OmniQStreamHandler)]:
            root.removeHandler(own)
            own.close()
        if handler.formatter is None:
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
        if handler not in root.handlers:
            root.addHandler(handler)
        return

    if not root.handlers and not logging.getLogger().handlers:
        default = _OmniQStreamHandler(sys.stderr)
        default.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(default)

"""Running a worker as its own process (``omniq worker``): imports, signals, graceful exit."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from omniq._callbacks import Callbacks
from omniq._events import build_event_logger
from omniq._offload import result_offload
from omniq._process_role import mark_worker_process
from omniq._setup import build_executors, create_backend, resolve_secret_key
from omniq.config import Settings
from omniq.errors import ConfigError
from omniq.plugins import configure_plugins
from omniq.serialization import Serializer
from omniq.worker._options import WorkerOptions
from omniq.worker._worker import Worker

__all__ = ["import_task_modules", "run_worker"]

log = logging.getLogger("omniq.worker")

_SAME_SIGNAL_WINDOW = 1.0
"""Seconds within which a repeated signal counts as a duplicate delivery of the first."""


def import_task_modules(modules: Sequence[str]) -> None:
    """Import the modules that define the tasks (the current directory is put on ``sys.path``).

    Raises:
        ConfigError: a module cannot be imported; the message names it and the cause.
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # a module calling sys.exit() on import, too
            hint = ""
            if isinstance(exc, ModuleNotFoundError) and exc.name == name.partition(".")[0]:
                hint = (
                    f" (the worker looks in its current directory, {os.getcwd()}, and on "
                    "PYTHONPATH; run it from your project's root or set PYTHONPATH)"
                )
            raise ConfigError(f"--import {name}: {type(exc).__name__}: {exc}{hint}") from exc


async def run_worker(
    settings: Settings,
    *,
    queues: Sequence[str],
    executors: Sequence[str],
    concurrency: int | None = None,
    worker_id: str | None = None,
    on_ready: Callable[[Worker], None] | None = None,
) -> int:
    """Serve tasks until SIGTERM or SIGINT, then drain gracefully; a second signal exits at once.

    Args:
        settings: effective settings (storage URL, lease, grace, …).
        queues: queues to serve.
        executors: the executors to host; the first runs tasks that name none.
        concurrency: slots of the first executor; default its ``OMNIQ_*_WORKERS`` setting.
        worker_id: the worker's id; default ``host:pid:random``.
        on_ready: called once the worker is claiming.

    Returns:
        The process exit code: 0 after a clean drain.
    """
    mark_worker_process()
    configure_plugins(settings)
    backend = create_backend(settings.resolved_storage_url())
    await backend.open()
    try:
        serializer = Serializer(
            secret_key=resolve_secret_key(settings, backend),
            max_payload_bytes=settings.max_payload_bytes,
        )
        events = build_event_logger(backend, settings)
        worker = Worker(
            backend,
            executors=build_executors(
                executors, settings=settings, serializer=serializer, concurrency=concurrency
            ),
            options=WorkerOptions.from_settings(
                settings, queues=tuple(queues), executor=executors[0]
            ),
            serializer=serializer,
            events=events,
            worker_id=worker_id,
            offload=result_offload(settings, backend),
            callbacks=Callbacks.from_plugins(events=events, timeout=settings.callback_timeout),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        first_signal_at: float | None = None

        def on_signal(signum: int) -> None:
            nonlocal first_signal_at
            name = signal.Signals(signum).name
            now = loop.time()
            if first_signal_at is not None:
                # A launcher (uv run, a shell's process group) can deliver one Ctrl-C or SIGTERM
                # twice within milliseconds; only a signal sent a moment later means "now".
                if now - first_signal_at < _SAME_SIGNAL_WINDOW:
                    return
                log.warning("second %s: exiting now", name)
                os._exit(128 + signum)
            first_signal_at = now
            log.warning(
                "%s: stopping after running tasks (grace %.0f s; send it again to exit now)",
                name,
                settings.shutdown_grace,
            )
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        await worker.start()
        if on_ready is not None:
            on_ready(worker)
        await stop.wait()
        await worker.stop()
        return 0
    finally:
        await backend.close()

"""Fixtures of the omniq-gevent tests: real ``omniq worker -e gevent`` processes on real stores.

The test process itself is never monkey-patched: it is the producer (``TaskQueue(workers=0)``).
Workers import their tasks from ``tests/helpers/gevent_tasks.py``. S3 runs against moto's server
mode on 127.0.0.1 (skipped without moto, unless ``OMNIQ_TEST_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto_s3 import moto_s3

ROOT = Path(__file__).resolve().parents[3]
HELPERS = ROOT / "tests" / "helpers"
OMNIQ_SCRIPT = Path(sys.executable).with_name("omniq")
BUCKET = "omniq-gevent-test"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server holding the test bucket."""
    with moto_s3(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite file URL."""
    return f"sqlite:///{tmp_path / 'omniq.db'}"


@pytest.fixture(params=["sqlite", "file", "s3"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each kind the worker is tested on: SQLite, file://, moto s3://."""
    kind = str(request.param)
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'omniq.db'}"
    if kind == "file":
        return f"file://{tmp_path}/store"
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    return f"s3://{BUCKET}/{prefix}?endpoint={endpoint}&region=us-east-1&allow_http=true"


class Worker:
    """A running ``omniq worker`` process and its log (stderr)."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log

    def stop(self) -> int:
        """SIGTERM (graceful drain), then the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


class Workers:
    """Starts worker processes; every one still alive is killed at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Worker] = []

    def spawn(
        self, url: str, *args: str, env: dict[str, str] | None = None, via: str = "script"
    ) -> Worker:
        """Start ``omniq worker --storage URL --import gevent_tasks ARGS`` and wait until ready.

        Args:
            url: storage URI.
            args: further ``omniq worker`` arguments (``-e gevent`` …).
            env: extra environment variables.
            via: ``script`` (the ``omniq`` console script) or ``module`` (``python -m omniq``).
        """
        program = [str(OMNIQ_SCRIPT)] if via == "script" else [sys.executable, "-m", "omniq"]
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                [*program, "worker", "--storage", url, "--import", "gevent_tasks", *args],
                env={**os.environ, "PYTHONPATH": str(HELPERS), **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
            )
        worker = Worker(proc, log)
        self.started.append(worker)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "ready" in log.read_text():
                return worker
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"worker never became ready:\n{log.read_text()}")

    def close(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Start ``omniq worker`` processes; all are killed at teardown."""
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.close()

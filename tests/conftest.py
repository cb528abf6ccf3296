"""Shared fixtures for the cross-package tests: real SQLite files, real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omniq.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite file URL."""
    return f"sqlite:///{tmp_path / 'omniq.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Settings on a fresh SQLite file with a short lease and fast polling."""
    return load_settings(
        {}, storage_url=db_url, lease_seconds=2.0, poll_interval=0.05, shutdown_grace=5.0
    )


def worker_command(url: str, *extra: str) -> list[str]:
    """The command line of a standalone worker importing the test tasks."""
    return [
        sys.executable,
        "-m",
        "omniq",
        "worker",
        "--storage",
        url,
        "--import",
        "e2e_tasks",
        *extra,
    ]


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[object]:
    """Start ``omniq worker`` processes (stderr to a log file in tmp, returned once it says
    ready); every one still alive is killed at teardown."""
    procs: list[subprocess.Popen[str]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "helpers")}

    def spawn(
        url: str, *extra: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        log = tmp_path / f"worker-{len(procs)}.log"
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                worker_command(url, *extra),
                env={**env, **(extra_env or {})},
                stderr=stderr,
                stdout=subprocess.DEVNULL,
                text=True,
            )
        procs.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "ready" in log.read_text():
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"worker not ready (exit code {proc.poll()}):\n{log.read_text()}")

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

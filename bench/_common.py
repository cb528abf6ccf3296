"""Helpers shared by the OmniQ and Huey benchmarks: worker processes, pacing, percentiles."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Latency:
    """Latency samples in seconds, one per task."""

    start: list[float] = field(default_factory=list)
    result: list[float] = field(default_factory=list)
    achieved_rate: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Processing:
    """A processing run: ``n`` tasks from the first task start to all results visible."""

    n: int
    seconds: float
    spawn_to_done: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.n / self.seconds


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), nearest-rank on the sorted samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker process: the bench directory on ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIQ_", "BENCH_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@contextlib.contextmanager
def worker_process(
    argv: Sequence[str], *, env: dict[str, str], log_path: Path, stop_signal: int
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` with stdout/stderr going to ``log_path``; always stopped (then killed) after."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(argv),
            env=env,
            cwd=BENCH_DIR,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(stop_signal)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def wait_for_log(
    proc: subprocess.Popen[bytes], log_path: Path, needle: str, timeout: float = 30
) -> float:
    """Wait until ``needle`` appears in the process's log; return the time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log_path.read_text(errors="replace"):
            return time.time()
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{log_tail(log_path)}")
        time.sleep(0.005)
    raise TimeoutError(f"worker never printed {needle!r}:\n{log_tail(log_path)}")


def wait_done(
    count_done: Callable[[], int],
    n: int,
    proc: subprocess.Popen[bytes] | None,
    log_path: Path | None,
    timeout: float,
    *,
    fine: float = 0.002,
) -> float:
    """Poll ``count_done()`` until it reaches ``n``; return ``time.time()`` when it did.

    Polls every 50 ms until 90 % are done, then every ``fine`` seconds (2 ms), so the end is seen
    within ~``fine`` without the poller competing with the worker for the CPU during the run.
    ``proc``: the worker process, or ``None`` for a worker embedded in this process.
    """
    deadline = time.monotonic() + timeout
    while True:
        done = count_done()
        if done >= n:
            return time.time()
        if proc is not None and proc.poll() is not None:
            tail = log_tail(log_path) if log_path else "(no log)"
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done}/{n} tasks done after {timeout} s")
        time.sleep(0.05 if done < 0.9 * n else fine)


def log_tail(log_path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def paced(rate: float, n: int, fn: Callable[[int], None]) -> float:
    """Call ``fn(i)`` for i in 0..n-1 at ``rate`` calls per second (no bursts to catch up beyond
    the schedule); return the achieved rate."""
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(n):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        fn(i)
    return n / (time.perf_counter() - start)


class Collector:
    """Thread-safe list of ``(index, enqueued_at, started_at, result_seen_at)`` rows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows: list[tuple[int, float, float, float]] = []
        self.errors: list[str] = []

    def add(self, index: int, enqueued_at: float, started_at: float, seen_at: float) -> None:
        with self._lock:
            self.rows.append((index, enqueued_at, started_at, seen_at))

    def error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def latency(self, warmup: int) -> Latency:
        rows = sorted(r for r in self.rows if r[0] >= warmup)
        return Latency(
            start=[s - e for _, e, s, _ in rows],
            result=[r - e for _, e, _, r in rows],
        )


SIGTERM = signal.SIGTERM
PYTHON = sys.executable

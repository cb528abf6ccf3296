"""Lifecycle callbacks in real processes: a standalone ``omniq worker`` finds the callbacks a
task module's decorators declare (closures included) and the global middleware of a plugin
installed through an ``omniq`` entry point; a ``process`` executor's task has its callbacks run
in the worker, never in the child."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from omniq import TaskFailedError
from omniq.config import Settings

pytestmark = pytest.mark.slow

Spawn = Callable[..., subprocess.Popen[str]]
HELPERS = Path(__file__).parent / "helpers"


def install_plugin(site: Path) -> None:
    """Make ``callback_plugin`` an installed distribution with an ``omniq`` entry point (a
    ``.dist-info`` directory on the path is all ``importlib.metadata`` looks for)."""
    info = site / "omniq_callback_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: omniq-callback-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[omniq]\ncallback_plugin = callback_plugin\n")


def lines(log: Path, task_id: str) -> list[list[str]]:
    """``[layer, hook, pid, state]`` of one task's callback calls, in order."""
    out = []
    for line in log.read_text().splitlines():
        layer, hook, tid, pid, state = line.split()
        if tid == task_id:
            out.append([layer, hook, pid, state])
    return out


def test_a_standalone_worker_runs_decorator_and_plugin_callbacks(
    settings: Settings,
    db_url: str,
    spawn_worker: Spawn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "callbacks.log"
    monkeypatch.setenv("CALLBACK_URL", db_url)
    monkeypatch.setenv("CALLBACK_LOG", str(log))
    install_plugin(tmp_path / "site")
    worker = spawn_worker(
        db_url,
        "--import",
        "callback_tasks",
        "--executor",
        "async,process",
        extra_env={
            "PYTHONPATH": os.pathsep.join([str(HELPERS), str(tmp_path / "site")]),
            "CALLBACK_URL": db_url,
            "CALLBACK_LOG": str(log),
        },
    )
    import callback_tasks  # the producer: this process, without the plugin

    worker_pid = str(worker.pid)
    queue = callback_tasks.queue
    ran = callback_tasks.where.enqueue()
    child_pid = queue.get_result(ran, timeout=30)
    failed = callback_tasks.broken.enqueue()
    with pytest.raises(TaskFailedError):
        queue.get_result(failed, timeout=30)
    loud = callback_tasks.loud.enqueue()
    plain = callback_tasks.plain.enqueue()
    assert queue.get_result(loud, timeout=30) == queue.get_result(plain, timeout=30) == "ok"
    worker.send_signal(signal.SIGTERM)  # a clean drain runs the callbacks still pending
    assert worker.wait(timeout=30) == 0

    assert lines(log, ran) == [
        ["task", "on_enqueue", str(os.getpid()), "pending"],
        ["global", "on_start", worker_pid, "running"],
        ["task", "on_start", worker_pid, "running"],
        ["global", "on_success", worker_pid, "success"],
        ["task", "on_success", worker_pid, "success"],
        ["task2", "on_success", worker_pid, "success"],
        ["global", "on_complete", worker_pid, "success"],
        ["task", "on_complete", worker_pid, "success"],
    ]
    assert str(child_pid) != worker_pid  # the function ran in a child; its callbacks did not
    assert [line[:2] for line in lines(log, failed)] == [
        ["global", "on_start"],
        ["global", "on_failure"],
        ["task", "on_failure"],
        ["global", "on_complete"],
        ["task", "on_complete"],
    ]
    # the .options(on_success=...) copy replaced the decorator's on_success, for its tasks only
    assert [line[0] for line in lines(log, loud) if line[1] == "on_success"] == ["global", "loud"]
    assert [line[0] for line in lines(log, plain) if line[1] == "on_success"] == ["global", "base"]
    queue.close()

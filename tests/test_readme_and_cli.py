"""The README's examples run verbatim; the command line works against a real SQLite file."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from omniq import TaskQueue
from omniq.config import Settings

ROOT = Path(__file__).resolve().parents[1]
HELPERS = str(Path(__file__).parent / "helpers")


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def run_python(code: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = cwd / "example.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": HELPERS},
    )


def omniq(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omniq", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": HELPERS, "COLUMNS": "200"},
    )


def test_readme_sync_example_prints_5(tmp_path: Path) -> None:
    sync_example = next(b for b in readme_blocks() if 'TaskQueue(storage_type="sqlite"' in b)
    out = run_python(sync_example, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"
    assert (tmp_path / "omniq.db").exists()


def test_readme_process_executor_example_runs_in_a_child(tmp_path: Path) -> None:
    example = next(b for b in readme_blocks() if '@queue.task(executor="process")' in b)
    out = run_python(example, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == hashlib.sha256(b"omniq").hexdigest()[:16]
    assert "Traceback" not in out.stderr


def test_readme_async_example_prints_42_on_the_memory_backend(tmp_path: Path) -> None:
    async_example = next(b for b in readme_blocks() if "AsyncTaskQueue(storage_type=" in b)
    assert 'storage_type="memory"' in async_example
    out = run_python(async_example, tmp_path)
    assert (out.returncode, out.stdout.strip()) == (0, "42"), out.stderr


def test_a_backend_that_is_not_installed_fails_naming_its_package(tmp_path: Path) -> None:
    out = run_python(
        "from omniq import TaskQueue\nTaskQueue(storage_url='redis://localhost/0')\n", tmp_path
    )
    assert out.returncode == 1
    last_line = out.stderr.strip().splitlines()[-1]
    assert last_line.startswith("omniq.errors.BackendNotFoundError: no OmniQ backend for redis://")
    assert "pip install omniq-redis" in last_line


def test_readme_decorator_example_runs_and_type_checks(tmp_path: Path) -> None:
    example = next(b for b in readme_blocks() if "@queue.task" in b)
    out = run_python(example, tmp_path)
    assert (out.returncode, out.stdout.strip()) == (0, "cat.png at 200px"), out.stderr
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            str(tmp_path / "example.py"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert checked.returncode == 0, checked.stdout


def test_decorated_enqueue_and_options_are_checked_by_mypy(tmp_path: Path) -> None:
    source = tmp_path / "typed.py"
    source.write_text(
        "from omniq import TaskQueue\n"
        "queue = TaskQueue(workers=0)\n"
        "@queue.task(retries=3)\n"
        "def resize(path: str, width: int) -> str:\n"
        "    return path\n"
        "ok: str = resize.enqueue('cat.png', 200)\n"
        "bad = resize.enqueue('cat.png', 'wide')\n"
        "local: str = resize('x', 1)\n"
        "typo = resize.options(prio=3)\n"
        "later: str = resize.options(delay=60, priority=2).enqueue('a', 1)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, out.stdout
    assert "typed.py:7" in errors[0] and '"enqueue"' in errors[0] and '"int"' in errors[0]
    assert "typed.py:9" in errors[1] and '"prio"' in errors[1]


def test_cli_plugins_lists_builtins_through_entry_points() -> None:
    out = omniq("plugins")
    assert out.returncode == 0, out.stderr
    for expected in (
        "omniq.backends",
        "sqlite",
        "omniq-sqlite",
        "omniq.executors",
        "async",
        "thread",
        "omniq.plugins.builtin",
    ):
        assert expected in out.stdout


def test_cli_tasks_and_stats(settings: Settings, db_url: str) -> None:
    import e2e_tasks

    with TaskQueue(settings=settings, workers=0) as queue:
        keep = queue.enqueue(e2e_tasks.add, args=(1, 2))
        drop = queue.enqueue(e2e_tasks.add, args=(3, 4))
    listing = omniq("tasks", "list", "--storage", db_url)
    assert listing.returncode == 0 and keep in listing.stdout and drop in listing.stdout
    cancelled = omniq("tasks", "cancel", drop, "--storage", db_url)
    assert f"{drop}: cancelled" in cancelled.stdout
    shown = omniq("tasks", "show", drop, "--storage", db_url)
    assert "cancelled" in shown.stdout and "e2e_tasks:add(3, 4)" in shown.stdout
    stats = omniq("stats", "--storage", db_url)
    assert re.search(r"pending\s*│\s*1\b", stats.stdout), stats.stdout
    assert re.search(r"cancelled\s*│\s*1\b", stats.stdout), stats.stdout
    missing = omniq("tasks", "show", "nope", "--storage", db_url)
    assert missing.returncode == 2 and "no task with id 'nope'" in missing.stderr


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    out = omniq("stats", "--storage", "ftp://x")
    assert out.returncode == 2
    assert out.stderr.startswith("omniq: error: no OmniQ backend for ftp://")
    out = omniq("worker", "--storage", f"sqlite:///{tmp_path}/x.db", "--import", "no.such.module")
    assert out.returncode == 2 and "--import no.such.module" in out.stderr


@pytest.mark.slow
def test_demo_map_reduces_files_and_reports_skipped_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(60):
        (data / f"f{i}.txt").write_text("alpha beta\nbeta gamma\n" * (i + 1))
    (data / "blob.bin").write_bytes(b"\xff\xfe\x00binary")
    out = omniq("demo", str(data), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "61 (60 analyzed, 1 skipped)" in text
    lines = sum(2 * (i + 1) for i in range(60))
    assert f"{lines:,}" in text
    assert "beta (" in text and "blob.bin: not UTF-8 text" in text
    rows = re.findall(r"(standalone|embedded)\s*│\s*(\w+)\s*│\s*(\d+)\s*│\s*(\d+)\s*│", text)
    assert {kind for kind, *_ in rows} <= {"standalone", "embedded"}, text
    # the file tasks ran on the process executor; the flaky task and the snapshots on threads
    assert {executor for _, executor, *_ in rows} == {"process", "thread"}, text
    assert sum(int(tasks) for _, executor, _, tasks in rows if executor == "process") == 61, text
    flat = " ".join(text.split())
    assert "flaky task: succeeded on run 3 after 2 retries" in flat, text
    assert "schedule 'demo-progress' (every 1 s):" in flat, text
    # the aggregate ran once, released when the last file task succeeded
    assert re.search(r"events recorded: [\d,]+ \(.*\bready 1\b", flat), text

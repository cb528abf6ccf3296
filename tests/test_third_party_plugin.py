"""A third-party backend is an ordinary plugin package (DESIGN.md §3).

The out-of-tree example ``tests/fixtures/omniq-dict-backend`` (``dict://NAME``) is built into a
wheel next to OmniQ's own wheels and installed into a fresh virtual environment that has never
seen this repository. There it must be discovered by ``omniq plugins``, run a task through the
public client, and pass OmniQ's backend conformance suite (``omniq.testing``) exactly as a
plugin author would run it: one ``conftest.py`` line and one subclass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "omniq-dict-backend"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),  # a cold uv cache downloads OmniQ's dependencies and pytest
    pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv to build and install wheels"),
]

CONFTEST = 'pytest_plugins = ["omniq.testing"]\n'

CONFORMANCE = """\
import pytest
from omniq.testing import BackendConformance


class TestDictBackend(BackendConformance):
    @pytest.fixture
    def backend_url(self, omniq_namespace: str) -> str:
        return f"dict://{omniq_namespace}"
"""

JOBS = '''\
def area(width: int, height: int) -> int:
    """A task function importable by path (the worker runs in this same process)."""
    return width * height
'''

CLIENT_SCRIPT = """\
from omniq import TaskQueue

import jobs

# Two clients, hence two portal threads with their own event loops, on one named store:
# the producer enqueues, the other one's embedded worker runs the task.
producer = TaskQueue(storage_url="dict://demo", workers=0)
worker = TaskQueue(storage_url="dict://demo")
task_id = producer.enqueue(jobs.area, (6, 7))
print("result", producer.get_result(task_id, timeout=20))
print("backend", type(producer.async_queue.backend).__module__)
producer.close()
worker.close()
"""


class Venv:
    """A fresh virtual environment with OmniQ and the example plugin installed from wheels."""

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.env = dict(env)
        self.bin = root / "bin"
        self.python = self.bin / "python"

    def run(
        self, *args: str | Path, cwd: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command with this venv's ``bin`` first on ``PATH``; output is captured."""
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _clean_env(home: Path, venv: Path) -> dict[str, str]:
    """The caller's environment minus anything that would leak the workspace into the venv."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OMNIQ_", "PYTEST_", "PYTHON"))
        and name not in {"VIRTUAL_ENV", "CONDA_PREFIX"}
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["XDG_DATA_HOME"] = str(home / "xdg")  # the local signing key of dill payloads
    env["COLUMNS"] = "250"  # `omniq plugins` prints a rich table: keep rows on one line
    return env


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _check(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Return ``proc`` if it succeeded, else fail with the end of its output."""
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, proc.args))} exited {proc.returncode}\n"
            f"--- stdout (end)\n{_tail(proc.stdout)}\n--- stderr (end)\n{_tail(proc.stderr)}",
            pytrace=False,
        )
    return proc


def _uv(*args: str | Path, cwd: Path = ROOT) -> None:
    _check(
        subprocess.run(
            ["uv", *(str(a) for a in args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    )


def _build_wheels(projects: list[Path], out: Path) -> None:
    """``uv build --wheel`` each project directory into ``out``, all at once."""
    procs = [
        subprocess.Popen(
            ["uv", "build", "--wheel", "--quiet", "-o", str(out), str(project)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for project in projects
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        _check(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """Build the wheels, make a fresh venv, install omniq-core, omniq-sqlite and the plugin.

    Only the packages the test needs are built, so a workspace member in progress elsewhere
    cannot break it. OmniQ's wheels are installed by file (``name @ file://…``) so that no index
    can substitute another distribution of the same name; pytest and OmniQ's dependencies come
    from the index (usually uv's cache).
    """
    home = tmp_path_factory.mktemp("third-party-plugin")
    wheels = home / "wheels"
    packages = ROOT / "packages"
    _build_wheels([packages / "omniq-core", packages / "omniq-sqlite", FIXTURE], wheels)

    def wheel(name: str, extras: str = "") -> str:
        [path] = wheels.glob(f"{name.replace('-', '_')}-*.whl")
        return f"{name}{extras} @ {path.as_uri()}"

    root = home / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, root, cwd=home)
    _uv(
        "pip",
        "install",
        "--quiet",
        "--python",
        root / "bin" / "python",
        wheel("omniq-core", "[testing]"),
        wheel("omniq-sqlite"),
        wheel("omniq-dict-backend"),
        "pytest",
        "pytest-asyncio",
        cwd=home,
    )
    return Venv(root, _clean_env(home, root))


def test_omniq_plugins_lists_the_dict_backend_without_importing_it(
    venv: Venv, tmp_path: Path
) -> None:
    out = _check(venv.run("omniq", "plugins", cwd=tmp_path)).stdout
    rows = {
        tuple(cell.strip() for cell in line.strip("│ ").split("│"))[:4]
        for line in out.splitlines()
        if line.startswith("│")
    }
    assert ("omniq.backends", "dict", "omniq-dict-backend", "omniq_dict_backend:SPEC") in rows
    assert ("omniq.backends", "sqlite", "omniq-sqlite", "omniq_sqlite:SPEC") in rows

    # Listing loads only the light SPEC module; the backend class is imported on first use.
    probe = (
        "import sys\n"
        "from omniq.plugins import backend_class, installed_plugins\n"
        "assert [p for p in installed_plugins() if p.name == 'dict']\n"
        "assert 'omniq_dict_backend.backend' not in sys.modules\n"
        "print(backend_class('dict').__qualname__)\n"
    )
    assert _check(venv.run(venv.python, "-c", probe, cwd=tmp_path)).stdout.split() == [
        "DictBackend"
    ]


def test_a_task_runs_through_the_installed_plugin(venv: Venv, tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text(JOBS)
    (tmp_path / "client.py").write_text(CLIENT_SCRIPT)
    out = _check(venv.run(venv.python, "client.py", cwd=tmp_path, timeout=60)).stdout
    assert out.splitlines() == ["result 42", "backend omniq_dict_backend.backend"]


def test_the_installed_plugin_passes_the_conformance_suite(venv: Venv, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_dict_conformance.py").write_text(CONFORMANCE)
    proc = venv.run(
        venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", cwd=suite, timeout=300
    )
    _check(proc)
    summary = proc.stdout.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}
    assert counts.get("passed", 0) >= 20, summary  # the suite really ran
    assert set(counts) <= {"passed", "skipped"}, summary  # no failure, error, xfail or xpass

"""The launcher reads the executors before click does; importing OmniQ imports nothing eagerly;
the executor refuses to run without the patches. In-process (never patched) and fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from omniq import TaskQueue
from omniq._launcher import PREPARE_HOOKS, executors_to_host
from omniq.errors import ConfigError


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["worker", "-e", "gevent"], {}, ["gevent"]),
        (["worker", "-egevent", "--import", "m"], {}, ["gevent"]),
        (["worker", "--executor=async,gevent"], {}, ["async", "gevent"]),
        (["worker", "-e", "async", "--executor", " Gevent "], {}, ["async", "gevent"]),
        (["worker", "--storage", "sqlite:///x.db"], {"OMNIQ_DEFAULT_WORKER": "gevent"}, ["gevent"]),
        (["worker", "-e", "thread"], {"OMNIQ_DEFAULT_WORKER": "gevent"}, ["thread"]),
        (["worker"], {}, []),
        (["tasks", "list", "-e", "gevent"], {}, []),
        (["--help"], {"OMNIQ_DEFAULT_WORKER": "gevent"}, []),
        (["worker", "--", "-e", "gevent"], {}, []),
    ],
)
def test_executors_are_read_from_argv_and_env(
    argv: list[str], env: dict[str, str], expected: list[str]
) -> None:
    assert executors_to_host(argv, env) == expected


def test_the_gevent_hook_is_registered_and_imports_nothing_of_omniq() -> None:
    assert PREPARE_HOOKS["gevent"] == "omniq_gevent._monkey"
    code = (
        "import sys, json; import omniq, omniq.cli, omniq._launcher, omniq_gevent, "
        "omniq_gevent._monkey; print(json.dumps(sorted(sys.modules)))"
    )
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", code], text=True)))
    heavy = {"asyncio", "socket", "ssl", "selectors", "sqlite3", "threading", "click", "msgspec"}
    assert loaded & heavy == set()
    assert {m for m in loaded if m.startswith("omniq") and m != "omniq_gevent._monkey"} <= {
        "omniq",
        "omniq.cli",
        "omniq._launcher",
        "omniq_gevent",
    }


def test_lazy_public_names_still_resolve() -> None:
    import omniq
    import omniq_gevent

    assert omniq.TaskQueue is TaskQueue
    assert "AsyncTaskQueue" in dir(omniq)
    assert omniq_gevent.SPEC.target == "omniq_gevent.executor:GeventExecutor"
    with pytest.raises(AttributeError):
        _ = omniq.NoSuchName  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = omniq_gevent.NoSuchName  # type: ignore[attr-defined]


def test_the_executor_refuses_an_unpatched_process() -> None:
    from omniq_gevent.executor import GeventExecutor

    with pytest.raises(ConfigError, match="omniq worker -e gevent"):
        GeventExecutor(concurrency=1)


def test_an_embedded_gevent_worker_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="monkey patches"):
        TaskQueue(storage_url=f"sqlite:///{tmp_path / 'q.db'}", worker_type="gevent")


async def test_the_executor_refuses_a_loop_that_does_not_wait_through_gevent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from omniq_gevent import executor

    monkeypatch.setattr(executor, "is_patched", lambda: True)
    monkeypatch.setattr(executor.monkey, "is_module_patched", lambda name: False)
    gevent_executor = executor.GeventExecutor(concurrency=1)
    with pytest.raises(ConfigError, match="GeventSelector"):
        await gevent_executor.start()
    await gevent_executor.shutdown()

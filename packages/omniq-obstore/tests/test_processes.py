"""Several OS processes on one file:// directory: exclusive claims and racing opens."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from omniq._ids import new_id
from omniq.backend import Outcome, TaskQuery
from omniq.models import Task, TaskState
from omniq_obstore.backend import ObjectStoreBackend

CHILD = str(Path(__file__).with_name("_child.py"))


def start_together(args: list[list[str]], go: Path) -> list[str]:
    """Start one child per argument list, wait until each says "ready", let them all go at
    once (by creating ``go``), and return each child's remaining output."""
    procs = [
        subprocess.Popen(
            [sys.executable, CHILD, *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for a in args
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
        go.touch()
        outputs = []
        for p in procs:
            out, err = p.communicate(timeout=90)
            assert p.returncode == 0, err
            outputs.append(out)
        return outputs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


async def _fill(url: str, n: int) -> list[str]:
    now = time.time()
    tasks = [
        Task(id=new_id(), func="m:f", payload=b"", run_at=now, created_at=now) for _ in range(n)
    ]
    async with ObjectStoreBackend.from_url(url) as b:
        await b.enqueue(tasks)
    return [t.id for t in tasks]


def test_claims_are_exclusive_across_three_processes(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/shared"
    ids = asyncio.run(_fill(url, 600))
    outputs = start_together([["claim", url, str(tmp_path / "go")]] * 3, tmp_path / "go")
    per_process = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    claimed = [i for got in per_process for i in got]
    assert sorted(claimed) == sorted(ids)  # every task once, none twice
    assert sum(1 for got in per_process if got) >= 2


def test_three_processes_claim_and_finish_everything_once(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/shared"
    ids = asyncio.run(_fill(url, 300))
    outputs = start_together([["finish", url, str(tmp_path / "go")]] * 3, tmp_path / "go")
    claimed = [i for out in outputs for i in json.loads(out.strip().splitlines()[-1])]
    assert sorted(claimed) == sorted(ids)

    async def check() -> None:
        async with ObjectStoreBackend.from_url(url) as b:
            assert await b.count_tasks(TaskQuery()) == {TaskState.SUCCESS: len(ids)}
            results = await b.get_results(ids)
            assert [r.data if r else None for r in results] == [i.encode() for i in ids]

    asyncio.run(check())


def test_processes_racing_to_open_a_new_directory(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/new/store"
    go = tmp_path / "go"
    outputs = start_together([["open", url, str(go)]] * 4, go)
    assert [o.strip() for o in outputs] == ["ok"] * 4

    async def check() -> int:
        async with ObjectStoreBackend.from_url(url) as b:
            return sum((await b.count_tasks(TaskQuery())).values())

    assert asyncio.run(check()) == 4


def test_three_processes_settling_the_same_children_release_each_once(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/shared"

    async def fill() -> list[str]:
        now = time.time()
        parent = Task(id=new_id(), func="m:f", payload=b"", run_at=now, created_at=now)
        children = [
            Task(
                id=new_id(),
                func="m:f",
                payload=b"",
                run_at=now,
                created_at=now,
                state=TaskState.WAITING,
                depends_on=(parent.id,),
            )
            for _ in range(200)
        ]
        async with ObjectStoreBackend.from_url(url) as b:
            await b.enqueue([parent, *children])
            [run] = await b.claim(queues=["default"], worker_id="w", limit=10, lease=60)
            await b.finish(
                [Outcome(task_id=run.id, attempt=1, state=TaskState.SUCCESS, finished_at=now)]
            )
        return [c.id for c in children]

    ids = asyncio.run(fill())
    outputs = start_together([["settle", url, str(tmp_path / "go")]] * 3, tmp_path / "go")
    released = [i for out in outputs for i in json.loads(out.strip().splitlines()[-1])]
    assert sorted(released) == sorted(ids)  # every child once, none twice

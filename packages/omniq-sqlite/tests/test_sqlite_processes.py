"""Several OS processes on one SQLite file: exclusive claims, racing migrations, clean exit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from omniq._ids import new_id
from omniq.models import Task
from omniq_sqlite._queries import MIGRATIONS
from omniq_sqlite.backend import SQLiteBackend

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
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            outputs.append(out)
        return outputs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_claims_are_exclusive_across_three_processes(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"

    async def fill() -> list[str]:
        now = time.time()
        tasks = [
            Task(id=new_id(), func="m:f", payload=b"", run_at=now, created_at=now)
            for _ in range(900)
        ]
        async with SQLiteBackend(db) as b:
            await b.enqueue(tasks)
        return [t.id for t in tasks]

    ids = asyncio.run(fill())
    outputs = start_together(
        [["claim", f"sqlite:///{db}", str(tmp_path / "go")]] * 3, tmp_path / "go"
    )
    per_process = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    claimed = [i for got in per_process for i in got]
    assert sorted(claimed) == sorted(ids)  # every task once, none twice


def test_processes_racing_to_create_a_new_file_migrate_once(tmp_path: Path) -> None:
    db = tmp_path / "new" / "fresh.db"
    go = tmp_path / "go"
    outputs = start_together([["open", f"sqlite:///{db}", str(go)]] * 4, go)
    assert [o.strip() for o in outputs] == ["ok"] * 4

    async def check() -> list[tuple[int, str]]:
        async with SQLiteBackend(db) as b:
            assert b._writer is not None
            async with b._writer.execute("SELECT version, name FROM omniq_schema_version") as cur:
                return [tuple(r) for r in await cur.fetchall()]

    assert asyncio.run(check()) == [(m.version, m.name) for m in MIGRATIONS]


def test_unclosed_backend_does_not_hang_process_exit(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, CHILD, "no-close", f"sqlite:///{tmp_path}/unclosed.db"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "opened"
    assert time.monotonic() - started < 10

    async def check() -> Task | None:
        async with SQLiteBackend(tmp_path / "unclosed.db") as b:
            return (await b.get_tasks(["unclosed"]))[0]

    assert asyncio.run(check()) is not None  # the committed write survived the abrupt exit

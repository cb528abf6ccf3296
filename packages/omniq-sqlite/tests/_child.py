"""Run by the multi-process tests: ``python _child.py MODE URL [GO_FILE]``.

Modes:
  claim    open, print "ready", wait for GO_FILE, claim until the queue is empty, print ids (JSON).
  open     print "ready", wait for GO_FILE, then open and close (racing migrations).
  no-close open the backend, enqueue one task, print "opened" and exit without closing it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from omniq.models import Task
from omniq_sqlite.backend import SQLiteBackend

_keep: list[SQLiteBackend] = []  # keeps the unclosed backend alive until interpreter exit


def wait_for(go: str) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("no go file")
        time.sleep(0.002)


async def claim(url: str, go: str) -> None:
    async with SQLiteBackend.from_url(url) as b:
        print("ready", flush=True)
        wait_for(go)
        ids: list[str] = []
        while got := await b.claim(
            queues=["default"], worker_id=f"pid-{os.getpid()}", limit=7, lease=60
        ):
            ids += [t.id for t in got]
    print(json.dumps(ids), flush=True)


async def open_close(url: str, go: str) -> None:
    print("ready", flush=True)
    wait_for(go)
    async with SQLiteBackend.from_url(url):
        pass
    print("ok", flush=True)


async def no_close(url: str) -> None:
    b = SQLiteBackend.from_url(url)
    await b.open()
    now = time.time()
    await b.enqueue([Task(id="unclosed", func="m:f", payload=b"", run_at=now, created_at=now)])
    _keep.append(b)
    print("opened", flush=True)


if __name__ == "__main__":
    mode, url, *rest = sys.argv[1:]
    if mode == "claim":
        asyncio.run(claim(url, rest[0]))
    elif mode == "open":
        asyncio.run(open_close(url, rest[0]))
    elif mode == "no-close":
        asyncio.run(no_close(url))
    else:
        raise SystemExit(f"unknown mode {mode}")

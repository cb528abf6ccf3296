"""Run by the multi-process tests: ``python _child.py MODE URL GO_FILE``.

Modes:
  claim   open, print "ready", wait for GO_FILE, claim until the queue is empty, print ids (JSON).
  open    print "ready", wait for GO_FILE, then open, enqueue one task, close, print "ok".
  finish  like claim, but finish every claimed task (success) and print the ids.
  settle  open, list the waiting tasks, print "ready", wait for GO_FILE, settle them all (in a
          per-process order), print the ids this process released (JSON).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from omniq.backend import Outcome, TaskQuery
from omniq.models import Task, TaskState
from omniq_obstore.backend import ObjectStoreBackend


def wait_for(go: str) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("no go file")
        time.sleep(0.002)


async def claim(url: str, go: str, finish: bool) -> None:
    async with ObjectStoreBackend.from_url(url) as b:
        print("ready", flush=True)
        wait_for(go)
        ids: list[str] = []
        while got := await b.claim(
            queues=["default"], worker_id=f"pid-{os.getpid()}", limit=7, lease=60
        ):
            ids += [t.id for t in got]
            if finish:
                await b.finish(
                    [
                        Outcome(
                            task_id=t.id,
                            attempt=t.attempt,
                            state=TaskState.SUCCESS,
                            finished_at=time.time(),
                            result=t.id.encode(),
                        )
                        for t in got
                    ]
                )
    print(json.dumps(ids), flush=True)


async def open_close(url: str, go: str) -> None:
    print("ready", flush=True)
    wait_for(go)
    now = time.time()
    async with ObjectStoreBackend.from_url(url) as b:
        task = Task(id=f"from-{os.getpid()}", func="m:f", payload=b"", run_at=now, created_at=now)
        await b.enqueue([task])
    print("ok", flush=True)


async def settle(url: str, go: str) -> None:
    async with ObjectStoreBackend.from_url(url) as b:
        waiting = await b.list_tasks(TaskQuery(states=(TaskState.WAITING,), limit=100_000))
        ids = [t.id for t in waiting]
        turn = os.getpid() % max(len(ids), 1)
        print("ready", flush=True)
        wait_for(go)
        released = await b.settle_waiting(ids[turn:] + ids[:turn])
    print(json.dumps([t.id for t in released]), flush=True)


if __name__ == "__main__":
    mode, url, go = sys.argv[1:]
    if mode == "open":
        asyncio.run(open_close(url, go))
    elif mode == "settle":
        asyncio.run(settle(url, go))
    else:
        asyncio.run(claim(url, go, finish=mode == "finish"))

"""``python -m omniq.testing._claimer URL WORKER_ID MAX``: claim until the queue stays empty (or
``MAX`` tasks, or 60 s) and print each claimed ``task_id attempt`` line (used by the multi-process
exclusive-claim test)."""

from __future__ import annotations

import asyncio
import sys

from omniq._setup import create_backend


async def claim_all(url: str, worker_id: str, most: int) -> None:
    backend = create_backend(url)
    await backend.open()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    claimed = 0
    try:
        empty_polls = 0
        while empty_polls < 20 and claimed <= most and loop.time() < deadline:
            tasks = await backend.claim(
                queues=["default"], worker_id=worker_id, limit=5, lease=300.0
            )
            if not tasks:
                empty_polls += 1
                await asyncio.sleep(0.02)
                continue
            empty_polls = 0
            claimed += len(tasks)
            for task in tasks:
                print(task.id, task.attempt, flush=True)
    finally:
        await backend.close()


if __name__ == "__main__":
    asyncio.run(claim_all(sys.argv[1], sys.argv[2], int(sys.argv[3])))

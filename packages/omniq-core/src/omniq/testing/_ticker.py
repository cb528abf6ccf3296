"""``python -m omniq.testing._ticker URL SCHEDULE_ID LAST``: fire the ticks of a schedule until
its ``next_run_at`` reaches ``LAST`` (or 60 s pass), printing each tick this process committed
(used by the multi-process exactly-once tick test)."""

from __future__ import annotations

import asyncio
import sys

from omniq._setup import create_backend
from omniq.schedules import TaskDefaults, build_tick_tasks


async def fire_all(url: str, schedule_id: str, last: float) -> None:
    backend = create_backend(url)
    await backend.open()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    try:
        while loop.time() < deadline:
            [schedule] = await backend.get_schedules([schedule_id])
            if schedule is None or schedule.next_run_at is None or schedule.next_run_at >= last:
                return
            tick = schedule.next_run_at
            tasks = build_tick_tasks(schedule, [tick], now=tick, defaults=TaskDefaults())
            if await backend.fire_schedule(schedule_id, tick, tick + 1.0, tasks):
                print(repr(tick), flush=True)
    finally:
        await backend.close()


if __name__ == "__main__":
    asyncio.run(fire_all(sys.argv[1], sys.argv[2], float(sys.argv[3])))

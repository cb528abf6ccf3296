"""Schedules: recurring (cron, interval) and one-shot rules that produce tasks, and when they
fire (see ``docs/schedules.md``)."""

from __future__ import annotations

from omniq.schedules._scheduler import SCHEDULE_HEADER, Scheduler, TaskDefaults, build_tick_tasks
from omniq.schedules._timing import (
    due_ticks,
    next_fire_after,
    next_fires,
    to_epoch,
    validate_schedule,
)

__all__ = [
    "SCHEDULE_HEADER",
    "Scheduler",
    "TaskDefaults",
    "build_tick_tasks",
    "due_ticks",
    "next_fire_after",
    "next_fires",
    "to_epoch",
    "validate_schedule",
]

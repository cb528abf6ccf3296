"""Schedules: recurring (cron, interval) and one-shot rules that produce tasks."""

from __future__ import annotations

from omniq.schedules._scheduler import SCHEDULE_HEADER, Scheduler, TaskDefaults, build_tick_tasks

__all__ = ["SCHEDULE_HEADER", "Scheduler", "TaskDefaults", "build_tick_tasks"]

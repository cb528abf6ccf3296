"""Schedules: when cron, interval and one-shot schedules fire (see ``docs/schedules.md``)."""

from __future__ import annotations

from omniq.schedules._timing import (
    due_ticks,
    next_fire_after,
    next_fires,
    to_epoch,
    validate_schedule,
)

__all__ = ["due_ticks", "next_fire_after", "next_fires", "to_epoch", "validate_schedule"]

"""A pluggy hook module adding global middleware (installed in tests through an entry point)."""

from __future__ import annotations

from typing import Any

from callback_notes import note

from omniq import CallbackContext, Middleware
from omniq.plugins import hookimpl


class GlobalNotes(Middleware):
    """Notes every hook after a run, as layer ``global``."""

    def on_start(self, ctx: CallbackContext) -> None:
        note("global", ctx)

    on_success = on_failure = on_complete = on_start


@hookimpl
def omniq_add_middleware() -> list[Any]:
    return [GlobalNotes()]

"""Writing one callback call as a line of ``$CALLBACK_LOG`` (shared by the callback test helpers)."""

from __future__ import annotations

import os

from omniq import CallbackContext


def note(layer: str, ctx: CallbackContext) -> None:
    """Append one line (O_APPEND, one write: safe across processes)."""
    line = f"{layer} {ctx.hook} {ctx.task_id} {os.getpid()} {ctx.state}\n".encode()
    fd = os.open(os.environ["CALLBACK_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)

"""The ``process`` executor: CPU-bound tasks in a pool of child processes.

:class:`ProcessExecutor` is the executor class (named ``process``). The modules behind it:
``_pool`` (starting, lending, replacing and stopping children), ``_handle`` (the parent's side of
one child: non-blocking messaging and death detection), ``_child`` (the child's main loop) and
``_messages`` (what they say to each other, and the framing).
"""

from __future__ import annotations

from omniq.executors.process._executor import ProcessExecutor

__all__ = ["ProcessExecutor"]

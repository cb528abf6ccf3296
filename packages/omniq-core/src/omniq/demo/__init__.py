"""``omniq demo``: a real job on the embedded default, with standalone worker processes."""

from omniq.demo._runner import run_demo

__all__ = ["run_demo"]

"""``python -m omniq …`` is the ``omniq`` command."""

from omniq.cli import main

main()

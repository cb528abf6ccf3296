"""Development sessions. Run them through the workspace environment: ``uv run nox [-s NAME]``.

The default sessions (lint, typecheck, tests) are the whole test suite, exactly what CI runs.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on omniq-core (configured in pyproject.toml) and on the backends."""
    session.run("mypy", "--strict", "packages/omniq-core/src")
    session.run("mypy", "--strict", "packages/omniq-sqlite/src")
    session.run("mypy", "--strict", "packages/omniq-obstore/src")
    session.run("mypy", "--strict", "packages/omniq-gevent/src")


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """pytest over every package and the cross-package tests; extra arguments go to pytest."""
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=False)
def conformance(session: nox.Session) -> None:
    """Only the shared backend conformance suite (omniq.testing), for every backend in the repo."""
    session.run(
        "pytest",
        "-q",
        "packages/omniq-sqlite/tests/test_conformance.py",
        "packages/omniq-obstore/tests/test_conformance.py",
        *session.posargs,
    )


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with Huey; writes docs/benchmarks.md."""
    session.run("uv", "sync", "--group", "bench", "--inexact", external=True)
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python=False)
def build(session: nox.Session) -> None:
    """Build every wheel and sdist into dist/."""
    session.run("uv", "build", "--all-packages", external=True)

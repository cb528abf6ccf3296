"""Root conftest: load OmniQ's backend conformance suite (fixtures) for every test package, and
keep every test away from the developer's own OmniQ settings and signing key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["omniq.testing", "pytester"]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No OMNIQ_* from the developer's shell; the local signing key lives in tmp."""
    for name in list(os.environ):
        if name.startswith("OMNIQ_") and not name.startswith("OMNIQ_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))

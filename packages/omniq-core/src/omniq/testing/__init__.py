"""The backend conformance suite, as an opt-in pytest plugin (``pip install omniq-core[testing]``).

A backend proves every guarantee of the protocol with one ``conftest.py`` line and a subclass::

    # conftest.py (at the root of the tests)
    pytest_plugins = ["omniq.testing"]

    # test_conformance.py
    import pytest
    from omniq.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend_url(self, omniq_namespace: str) -> str:
            return f"mybackend://{omniq_namespace}"

Fixtures provided: ``omniq_namespace`` (a fresh name per test), ``omniq_clock`` (a
:class:`~omniq.clock.ManualClock` the backend reads), ``omniq_backend`` (opened through
``backend_url``), ``omniq_open_backend`` (more instances on the same URL), ``omniq_make_task``,
and ``omniq_make_client`` (parametrized over the async and sync clients). They are prefixed so
they never collide with a project's own fixtures.
"""

from __future__ import annotations

import pytest

from omniq.testing._clients import omniq_client_flavour, omniq_make_client
from omniq.testing._fixtures import (
    omniq_backend,
    omniq_backend_factory,
    omniq_clock,
    omniq_make_task,
    omniq_namespace,
    omniq_open_backend,
)
from omniq.testing._suite import BackendConformance

__all__ = [
    "BackendConformance",
    "omniq_backend",
    "omniq_backend_factory",
    "backend_url",
    "omniq_client_flavour",
    "omniq_make_client",
    "omniq_make_task",
    "omniq_clock",
    "omniq_namespace",
    "omniq_open_backend",
]


@pytest.fixture
def backend_url() -> str:
    """Override in your ``BackendConformance`` subclass: the URI of a fresh, empty store."""
    raise pytest.UsageError(
        "override the backend_url fixture in your BackendConformance subclass "
        "(return the URI of a fresh, empty store, e.g. built from omniq_namespace or tmp_path)"
    )

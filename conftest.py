"""Root conftest: load OmniQ's backend conformance suite (fixtures) for every test package."""

pytest_plugins = ["omniq.testing", "pytester"]

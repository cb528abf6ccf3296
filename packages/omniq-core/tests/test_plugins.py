"""Plugin discovery through real entry points (distributions written to a temporary site dir)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pluggy
import pytest

from omniq._options import TaskOptions
from omniq.cli import build_cli
from omniq.errors import (
    BackendNotFoundError,
    ConfigError,
    ExecutorNotFoundError,
    PluginConflictError,
)
from omniq.plugins import (
    backend_class,
    executor_class,
    installed_plugins,
    plugin_manager,
    scheme_of,
)
from omniq.plugins._registry import _executor_names

MakeDist = Callable[[str, str, str], None]


def _clear_caches() -> None:
    backend_class.cache_clear()
    executor_class.cache_clear()
    _executor_names.cache_clear()
    plugin_manager.cache_clear()


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Install a tiny distribution (a module plus entry points) into a temporary site dir."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(name: str, entry_points: str, module_source: str) -> None:
        module = name.replace("-", "_")
        (site / f"{module}.py").write_text(textwrap.dedent(module_source))
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        _clear_caches()

    yield make
    for module in [m for m in sys.modules if m.startswith("acme")]:
        del sys.modules[module]
    _clear_caches()


BACKEND_MODULE = """
    from omniq.plugins.specs import BackendSpec
    SPEC = BackendSpec(target="{module}:AcmeBackend", distribution="{dist}", description="acme")
    class AcmeBackend:
        pass
"""


def test_a_third_party_backend_is_found_by_its_scheme(make_dist: MakeDist) -> None:
    make_dist(
        "acme-queue",
        "[omniq.backends]\nacme = acme_queue:SPEC\n",
        BACKEND_MODULE.format(module="acme_queue", dist="acme-queue"),
    )
    assert backend_class("acme").__name__ == "AcmeBackend"
    listed = {(p.group, p.name): p for p in installed_plugins()}
    assert listed[("omniq.backends", "acme")].distribution == "acme-queue"
    assert listed[("omniq.backends", "acme")].description == "acme"


def test_two_distributions_claiming_one_scheme_is_a_conflict_naming_both(
    make_dist: MakeDist,
) -> None:
    make_dist(
        "acme-sqlite",
        "[omniq.backends]\nsqlite = acme_sqlite:SPEC\n",
        BACKEND_MODULE.format(module="acme_sqlite", dist="acme-sqlite"),
    )
    with pytest.raises(PluginConflictError) as info:
        backend_class("sqlite")
    assert "acme-sqlite" in str(info.value)
    assert "omniq-sqlite" in str(info.value)


def test_an_entry_point_that_is_not_a_spec_is_rejected(make_dist: MakeDist) -> None:
    make_dist("acme-bad", "[omniq.backends]\nacmebad = acme_bad:SPEC\n", "SPEC = 42\n")
    with pytest.raises(PluginConflictError, match="expected a BackendSpec"):
        backend_class("acmebad")


def test_a_plugin_for_another_protocol_version_is_rejected(make_dist: MakeDist) -> None:
    make_dist(
        "acme-old",
        "[omniq.backends]\nacmeold = acme_old:SPEC\n",
        "from omniq.plugins.specs import BackendSpec\n"
        "SPEC = BackendSpec(target='x:y', distribution='acme-old', protocol_version=99)\n",
    )
    with pytest.raises(PluginConflictError, match="protocol version 99"):
        backend_class("acmeold")


def test_missing_backends_and_executors_name_the_package_to_install() -> None:
    with pytest.raises(
        BackendNotFoundError, match=r"pip install omniq-redis.*installed schemes: .*sqlite"
    ):
        backend_class("rediss")
    with pytest.raises(BackendNotFoundError, match="no known package serves it"):
        backend_class("gopher")
    with pytest.raises(ExecutorNotFoundError, match="no known package provides it"):
        executor_class("fiber")
    with pytest.raises(ExecutorNotFoundError, match="did you mean 'process'"):
        executor_class("proces")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("proces", r"executor='proces' is not an installed executor .*did you mean 'process'"),
        ("asyncio", r"did you mean 'async'"),
        ("Thread", r"executor='Thread': expected a lower-case executor name"),
        ("", r"executor='': expected a lower-case executor name"),
    ],
)
def test_enqueue_refuses_an_executor_no_worker_could_host(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TaskOptions(executor=name)
    for known in ("async", "thread", "process", "gevent"):
        assert TaskOptions(executor=known).executor == known
    with pytest.raises(ConfigError, match="has no scheme"):
        scheme_of("jobs.db")


def test_hook_modules_add_cli_commands(make_dist: MakeDist) -> None:
    make_dist(
        "acme-cli",
        "[omniq]\nacme = acme_cli\n",
        """
        import click
        from omniq.plugins import hookimpl

        @hookimpl
        def omniq_register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello from acme")
        """,
    )
    cli = build_cli()
    assert "hello" in cli.commands
    assert {"worker", "tasks", "stats", "plugins", "demo"} <= set(cli.commands)


def test_a_misspelled_hook_is_caught_at_load_time(make_dist: MakeDist) -> None:
    make_dist(
        "acme-typo",
        "[omniq]\nacme = acme_typo\n",
        """
        from omniq.plugins import hookimpl

        @hookimpl
        def omniq_register_comands(cli):
            pass
        """,
    )
    with pytest.raises(pluggy.PluginValidationError, match="omniq_register_comands"):
        plugin_manager()


def test_builtins_are_registered_like_third_party_plugins() -> None:
    listed = {(p.group, p.name, p.distribution) for p in installed_plugins()}
    assert ("omniq.backends", "sqlite", "omniq-sqlite") in listed
    assert ("omniq.executors", "async", "omniq-core") in listed
    assert ("omniq.executors", "thread", "omniq-core") in listed
    assert ("omniq", "builtin", "omniq-core") in listed

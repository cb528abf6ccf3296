"""URIs, capabilities and the open/close life cycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniq.errors import BackendError, ConfigError
from omniq.models import Task
from omniq_obstore import SPEC
from omniq_obstore._store import Store
from omniq_obstore.backend import CloudBackend, LocalBackend, MemoryBackend, ObjectStoreBackend


def test_spec_points_to_the_class_and_capabilities() -> None:
    assert SPEC.load() is ObjectStoreBackend
    mem, local, cloud = (c.capabilities for c in (MemoryBackend, LocalBackend, CloudBackend))
    assert (mem.cross_process, mem.durable, mem.network) == (False, False, False)
    assert (local.cross_process, local.durable, local.network) == (True, True, False)
    assert (cloud.cross_process, cloud.durable, cloud.network) == (True, True, True)
    for caps in (mem, local, cloud):
        assert caps.priority
        assert not (caps.notify or caps.transactional_enqueue or caps.atomic_batches)


def test_from_url_picks_the_class_of_the_scheme(tmp_path: Path) -> None:
    assert type(ObjectStoreBackend.from_url("memory://")) is MemoryBackend
    assert type(ObjectStoreBackend.from_url("MEMORY://x/y")) is MemoryBackend
    assert type(ObjectStoreBackend.from_url(f"file://{tmp_path}/q")) is LocalBackend
    assert type(ObjectStoreBackend.from_url(f"file://localhost{tmp_path}/q")) is LocalBackend
    s3 = ObjectStoreBackend.from_url(
        "s3://bucket/pre/fix?endpoint=http://127.0.0.1:1&region=eu-west-1&allow_http=true"
        "&skip_signature=true"
    )
    assert type(s3) is CloudBackend
    assert "endpoint=…" in repr(s3)  # option values (maybe secrets) are never shown
    gs = ObjectStoreBackend.from_url("gs://bucket/prefix?skip_signature=true")
    az = ObjectStoreBackend.from_url(
        "az://container/prefix?account_name=devstoreaccount1&use_emulator=true"
    )
    assert type(gs) is type(az) is CloudBackend
    assert type(MemoryBackend.from_url("memory://m")) is MemoryBackend


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite:///q.db", "not an object-store URI"),
        ("memory:x", "not an object-store URI"),
        ("memory://x?opt=1", "take no options"),
        ("memory://x#frag", "fragment"),
        ("file://host/tmp/q", "names a host"),
        ("file://", "absolute directory"),
        ("file:///", "absolute directory"),
        ("file:///tmp/../etc", "'..'"),
        ("file:///tmp/q?x=1", "take no options"),
        ("s3:///prefix", "names no bucket"),
        ("az:///prefix", "names no container"),
        ("s3://b/p?region=a&region=b", "more than once"),
        ("s3://b/p?no_such_option=1", "no_such_option"),
        ("s3://b/p?allow_http=maybe", "cannot use storage URI"),
        ("az://container/p", "cannot use storage URI"),
    ],
)
def test_from_url_rejects_bad_uris(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("?", r"\?")):
        ObjectStoreBackend.from_url(url)


def test_a_subclass_only_builds_its_own_scheme(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MemoryBackend cannot serve file:// URIs"):
        MemoryBackend.from_url(f"file://{tmp_path}/q")


async def test_open_creates_dirs_and_close_is_idempotent(tmp_path: Path) -> None:
    b = ObjectStoreBackend.from_url(f"file://{tmp_path}/a/b/c")
    with pytest.raises(BackendError, match="not open"):
        await b.get_tasks(["x"])
    await b.open()
    await b.open()  # no-op
    assert (tmp_path / "a" / "b" / "c" / "omniq-format").is_file()
    await b.close()
    await b.close()
    async with b:  # reopen
        assert await b.get_tasks(["x"]) == [None]


async def test_memory_stores_are_shared_by_name_within_the_process() -> None:
    now = 1.0
    task = Task(id="shared", func="m:f", payload=b"", run_at=now, created_at=now)
    async with (
        ObjectStoreBackend.from_url("memory://share-me") as a,
        ObjectStoreBackend.from_url("memory://share-me") as b,
        ObjectStoreBackend.from_url("memory://someone-else") as c,
        ObjectStoreBackend.from_url("memory://share-me/sub") as d,
    ):
        await a.enqueue([task])
        assert await b.get_tasks(["shared"]) == [task]
        assert await c.get_tasks(["shared"]) == [None]
        assert await d.get_tasks(["shared"]) == [None]
    async with ObjectStoreBackend.from_url("memory://share-me") as again:
        assert await again.get_tasks(["shared"]) == [task]  # lives as long as the process


async def test_a_store_that_overwrites_on_create_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def always_creates(self: Store, key: str, data: bytes) -> bool:
        return True

    monkeypatch.setattr(Store, "create", always_creates)
    with pytest.raises(BackendError, match="claims would not be exclusive"):
        await ObjectStoreBackend.from_url("memory://overwriter").open()


async def test_a_newer_layout_is_refused(tmp_path: Path) -> None:
    import msgspec

    root = tmp_path / "newer"
    root.mkdir()
    (root / "omniq-format").write_bytes(msgspec.msgpack.encode({"format": 99}))
    with pytest.raises(BackendError, match="layout version 99, newer"):
        await ObjectStoreBackend.from_url(f"file://{root}").open()

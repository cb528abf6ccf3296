"""Claim-check offload of large results, end to end: a real SQLite store that declares a small
value limit (and refuses anything larger), a real ``file://`` offload directory, S3 through moto,
every executor, the janitor expiring offloaded objects, and what a reader does when the object
is missing, modified, or its location is not configured."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from moto_s3 import moto_s3

from omniq import AsyncTaskQueue, ResultExpiredError, TaskFailedError, TaskQueue
from omniq._offload import OFFLOAD_PREFIX, ResultOffload, is_reference
from omniq.backend import Backend, Capabilities, Outcome
from omniq.clock import ManualClock
from omniq.config import load_settings
from omniq.errors import ConfigError, DeserializationError
from omniq.models import Task
from omniq.serialization import Serializer
from omniq.testing import tasks
from omniq_sqlite import SQLiteBackend

LIMIT = 64 * 1024
FIVE_MB = 5_000_000
START = 1_900_000_000.0


def _check(outcomes: Sequence[Outcome]) -> None:
    for o in outcomes:
        if o.result is not None and len(o.result) > LIMIT:
            raise ValueError(f"a value of {len(o.result)} bytes is over this store's {LIMIT}")


class SmallValueSQLite(SQLiteBackend):
    """SQLite that declares (and enforces) a 64 KiB value limit, like Redis or NATS KV would."""

    capabilities: ClassVar[Capabilities] = msgspec.structs.replace(
        SQLiteBackend.capabilities, max_value_bytes=LIMIT
    )

    async def finish(self, outcomes: Sequence[Outcome]) -> None:
        _check(outcomes)
        await super().finish(outcomes)

    async def finish_and_claim(
        self, outcomes: Sequence[Outcome], **kwargs: Any
    ) -> tuple[list[str], list[Task]]:
        _check(outcomes)
        return await super().finish_and_claim(outcomes, **kwargs)


@pytest.fixture
def small_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients built in this test get :class:`SmallValueSQLite` for ``sqlite://`` URLs."""

    def create(url: str, *, clock: ManualClock | None = None) -> Backend:
        return SmallValueSQLite.from_url(url, clock=clock)

    monkeypatch.setattr("omniq.client.create_backend", create)


@pytest.fixture
def offload_dir(tmp_path: Path) -> Path:
    return tmp_path / "offload"


@pytest.fixture
def make_queue(tmp_path: Path) -> Callable[..., AsyncTaskQueue]:
    def make(clock: ManualClock | None = None, workers: int = 1, **settings: Any) -> AsyncTaskQueue:
        return AsyncTaskQueue(
            settings=load_settings(
                {},
                storage_url=f"sqlite:///{tmp_path / 'omniq.db'}",
                lease_seconds=5.0,
                poll_interval=0.05,
                shutdown_grace=5.0,
                **settings,
            ),
            workers=workers,
            clock=clock,
        )

    return make


def object_file(root: Path, task_id: str) -> Path:
    [path] = root.rglob(f"{task_id}.1")
    return path


def offloaded_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("executor", ["async", "thread", "process"])
async def test_five_megabytes_round_trip_exactly_through_a_file_offload_dir(
    small_store: None, make_queue: Callable[..., AsyncTaskQueue], offload_dir: Path, executor: str
) -> None:
    raw, text = tasks.blob(FIVE_MB), tasks.blob(FIVE_MB // 10 * 4, "str")  # 5 MB of UTF-8 too
    assert len(text.encode()) == FIVE_MB
    async with make_queue(result_offload_url=offload_dir.as_uri()) as queue:
        small = await queue.enqueue(tasks.echo, args=("small",), executor=executor)
        big = await queue.enqueue(tasks.blob, args=(FIVE_MB,), executor=executor)
        utf8 = await queue.enqueue(tasks.blob, args=(FIVE_MB // 10 * 4, "str"), executor=executor)
        got = await queue.get_results([small, big, utf8], timeout=60)
        assert got[0] == "small"
        assert type(got[1]) is bytes and got[1] == raw
        assert type(got[2]) is str and got[2] == text
        stored = await queue.backend.get_results([small, big, utf8])
        assert [s is not None and is_reference(s.data) for s in stored] == [False, True, True]
        assert all(s is not None and len(s.data) < 200 for s in stored[1:])
    files = offloaded_files(offload_dir)
    assert len(files) == 2
    for name in files:  # omniq-results/<deadline, 12 digits>/<task id>.<attempt>
        prefix, deadline, leaf = name.split("/")
        assert prefix + "/" == OFFLOAD_PREFIX and len(deadline) == 12 and leaf.endswith(".1")
        assert int(deadline) % 3600 == 0


async def test_over_the_limit_without_offload_fails_that_task_naming_the_setting(
    small_store: None, make_queue: Callable[..., AsyncTaskQueue]
) -> None:
    async with make_queue() as queue:
        big = await queue.enqueue(tasks.blob, args=(LIMIT + 1,), retries=2)
        with pytest.raises(TaskFailedError) as info:
            await queue.get_result(big, timeout=20)
        assert info.value.remote_type == "omniq.errors.PayloadTooLargeError"
        assert "OMNIQ_RESULT_OFFLOAD_URL" in info.value.remote_message
        assert (await queue.get_task(big)).attempt == 1  # not retried: it would fail again
        fits = await queue.enqueue(tasks.blob, args=(LIMIT - 100,))
        assert await queue.get_result(fits, timeout=20) == tasks.blob(LIMIT - 100)


def test_the_sync_client_reads_offloaded_results_too(
    small_store: None, tmp_path: Path, offload_dir: Path
) -> None:
    settings = load_settings(
        {},
        storage_url=f"sqlite:///{tmp_path / 'omniq.db'}",
        result_offload_url=offload_dir.as_uri(),
        poll_interval=0.05,
    )
    with TaskQueue(settings=settings) as queue:
        ids = queue.enqueue_many(tasks.blob, [(200_000,), (300_000,)])
        results = list(queue.as_completed(ids, timeout=30))
    assert sorted(len(r.value) for r in results) == [200_000, 300_000]


@pytest.fixture(scope="module")
def s3_endpoint() -> Any:
    with moto_s3("omniq-offload") as endpoint:
        yield endpoint


async def test_five_megabytes_round_trip_through_s3(
    make_queue: Callable[..., AsyncTaskQueue], s3_endpoint: str
) -> None:
    import boto3

    url = f"s3://omniq-offload/results?endpoint={s3_endpoint}&region=us-east-1&allow_http=true"
    async with make_queue(result_offload_url=url) as queue:
        big = await queue.enqueue(tasks.blob, args=(FIVE_MB,))
        small = await queue.enqueue(tasks.blob, args=(1000,))  # under the 256 KiB default
        assert await queue.get_result(big, timeout=60) == tasks.blob(FIVE_MB)
        assert await queue.get_result(small, timeout=60) == tasks.blob(1000)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket="omniq-offload", Prefix="results/")["Contents"]
    assert [o["Size"] for o in listed] == [len(Serializer().dumps(tasks.blob(FIVE_MB)))]
    assert listed[0]["Key"].startswith("results/" + OFFLOAD_PREFIX)
    assert listed[0]["Key"].endswith(f"/{big}.1")


async def test_the_janitor_deletes_offloaded_objects_once_nobody_can_read_them(
    make_queue: Callable[..., AsyncTaskQueue], offload_dir: Path
) -> None:
    clock = ManualClock(START)
    url = offload_dir.as_uri()
    queue = make_queue(
        clock, result_offload_url=url, result_offload_bytes=1024, purge_interval=0.05
    )
    async with queue:
        brief = await queue.enqueue(tasks.blob, args=(5000,), result_ttl=30)
        kept = await queue.enqueue(tasks.blob, args=(6000,), result_ttl=None)
        await queue.get_results([brief, kept], timeout=20)
        assert len(offloaded_files(offload_dir)) == 2
        # ``brief`` may go at START + 30 rounded up to the hour; ``kept`` when its task is
        # purged, a week (OMNIQ_RETENTION) after it finished.
        clock.advance(3600)
        for _ in range(600):
            if len(offloaded_files(offload_dir)) == 1:
                break
            await asyncio.sleep(0.05)
        assert [f.rsplit("/", 1)[1] for f in offloaded_files(offload_dir)] == [f"{kept}.1"]
        with pytest.raises(ResultExpiredError):
            await queue.get_result(brief, timeout=0)
        assert await queue.get_result(kept, timeout=0) == tasks.blob(6000)


async def test_a_missing_or_modified_object_and_an_unconfigured_reader_are_reported(
    make_queue: Callable[..., AsyncTaskQueue], offload_dir: Path
) -> None:
    url = offload_dir.as_uri()
    async with make_queue(result_offload_url=url, result_offload_bytes=1024) as queue:
        first = await queue.enqueue(tasks.blob, args=(5000,))
        second = await queue.enqueue(tasks.blob, args=(5000,))
        good = await queue.enqueue(tasks.blob, args=(5000,))
        await queue.get_results([first, second, good], timeout=20)
    path_1, path_2 = object_file(offload_dir, first), object_file(offload_dir, second)
    path_1.write_bytes(path_1.read_bytes()[:-1] + b"!")
    path_2.unlink()
    async with make_queue(workers=0, result_offload_url=url) as reader:
        with pytest.raises(DeserializationError, match="does not match its reference"):
            await reader.get_result(first, timeout=0)
        with pytest.raises(ResultExpiredError, match="was deleted"):
            await reader.get_result(second, timeout=0)
        # one damaged or missing value never hides the others of a batch
        values = await reader.get_results([first, good, second], return_exceptions=True)
        assert isinstance(values[0], DeserializationError) and values[1] == tasks.blob(5000)
        assert isinstance(values[2], ResultExpiredError)
        states = {
            r.task_id: r.value_state async for r in reader.as_completed([first, good, second])
        }
        assert states == {first: "unreadable", good: "available", second: "expired"}
        assert (await reader.get_task_result(first)).value_state == "unreadable"
    async with make_queue(workers=0) as blind:
        with pytest.raises(ConfigError, match="OMNIQ_RESULT_OFFLOAD_URL"):
            await blind.get_task_result(first)


def test_an_offload_url_without_omniq_obstore_names_the_package(
    make_queue: Callable[..., AsyncTaskQueue], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "omniq_obstore.offload", None)
    with pytest.raises(ConfigError, match="omniq-obstore"):
        make_queue(result_offload_url="memory://x")


async def test_keys_group_objects_by_the_hour_after_which_nobody_reads_them() -> None:
    class Recorder:
        label = "memory://test"

        def __init__(self) -> None:
            self.keys: list[str] = []

        async def put(self, key: str, data: bytes) -> None:
            self.keys.append(key)

        async def get(self, key: str) -> bytes | None:
            return None

        async def dirs(self, prefix: str) -> list[str]:
            return []

        async def delete_prefix(self, prefix: str) -> int:
            return 0

    store = Recorder()
    offload = ResultOffload(store, threshold=10, backend_limit=None)
    assert offload.needed(11) and not offload.needed(10)
    assert ResultOffload(None, threshold=10, backend_limit=None).limit is None
    assert ResultOffload(store, threshold=1000, backend_limit=100).limit == 100
    plain = Task(id="abc-1", func="m:f", payload=b"", run_at=0, created_at=0, attempt=3)
    odd = Task(id="tick/ü 1", func="m:f", payload=b"", run_at=0, created_at=0, attempt=1)
    await offload.offload(plain, b"x" * 20, deadline=7200.0)
    await offload.offload(odd, b"x" * 20, deadline=7200.5)
    digest = hashlib.sha256(b"tick/\xc3\xbc 1").hexdigest()
    assert store.keys == [
        f"{OFFLOAD_PREFIX}000000007200/abc-1.3",
        f"{OFFLOAD_PREFIX}000000010800/{digest}.1",
    ]

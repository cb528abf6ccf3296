"""A thin async layer over one obstore store: errors mapped, immutable objects cached.

Every call goes through obstore's async API (``put_async``, ``get_async``, ``head_async``,
``delete_async``, ``list``). Three additions:

* **Error mapping.** A missing object is ``None``/``False``, a lost create-if-absent race is
  ``False``; any other store failure becomes :class:`omniq.errors.BackendError` naming the key.
* **A cache of immutable objects** (specs, claim and end markers: written once, never changed
  until purge deletes them). Bounded by bytes and by age; never caches absence.
* **Local directories are listed with** :func:`os.scandir` (names only), because obstore's
  ``LocalStore`` listing reads every file's metadata, which dominates a claim on a large backlog.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import obstore as obs
from obstore.exceptions import AlreadyExistsError, BaseError

from omniq.errors import BackendError

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = ["ImmutableCache", "Store"]

T = TypeVar("T")

_STAGING = re.compile(r"#\d+$")  # LocalStore's temporary files while a put is in flight
_LIST_CHUNK = 500
_SETTLE = 0.25
_in_gather: contextvars.ContextVar[bool] = contextvars.ContextVar("_in_gather", default=False)
_last_call = [0.0]


def _touch() -> None:
    _last_call[0] = time.monotonic()


async def _io(call: Awaitable[T]) -> T:
    """Await one obstore call, noting when the store was last busy (see below)."""
    try:
        return await call
    finally:
        _touch()


@atexit.register
def _let_obstore_settle() -> None:
    """Give obstore's Tokio threads time to finish the callbacks of the last calls.

    pyo3-async-runtimes resolves each awaited call from a Tokio thread, which still holds
    Python objects for a moment after the awaiting coroutine resumed; if the interpreter starts
    finalizing in that window the thread panics and the process aborts (SIGABRT) although every
    operation completed. Waiting until the store has been quiet for a quarter second at exit
    (``atexit`` runs while the interpreter is still whole) closes the window in practice.
    """
    quiet = time.monotonic() - _last_call[0]
    if quiet < _SETTLE:
        time.sleep(_SETTLE - quiet)


class ImmutableCache:
    """A thread-safe LRU of decoded immutable objects, bounded by encoded size and age.

    Args:
        max_bytes: total encoded size kept (bytes).
        max_age: seconds an entry stays valid (limits the effect of a purge and re-enqueue of the
            same id by another process).
    """

    def __init__(self, max_bytes: int = 64 << 20, max_age: float = 300.0) -> None:
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._entries: OrderedDict[str, tuple[object, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> object | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry[2] > self._max_age:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: str, value: object, size: int) -> None:
        if size > self._max_bytes // 8:
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = (value, size, time.monotonic())
            self._bytes += size
            while self._bytes > self._max_bytes:
                self._drop(next(iter(self._entries)))

    def forget(self, prefix: str) -> None:
        """Drop every entry whose key starts with ``prefix``."""
        with self._lock:
            for key in [k for k in self._entries if k.startswith(prefix)]:
                self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]


class Store:
    """One obstore store as the backend uses it.

    Args:
        raw: the obstore store.
        label: how to name the store in error messages (its URI).
        cache: the immutable-object cache (shared by backends on one ``memory://`` store).
        local_root: the directory of a ``LocalStore``, listed with :func:`os.scandir`.
        concurrency: most store calls one :meth:`gather` runs at once.
    """

    def __init__(
        self,
        raw: ObjectStore,
        *,
        label: str,
        cache: ImmutableCache,
        local_root: Path | None = None,
        concurrency: int = 64,
    ) -> None:
        self.raw = raw
        self.label = label
        self.cache = cache
        self.local_root = local_root
        self._limit = asyncio.Semaphore(concurrency)

    def _error(self, what: str, key: str, exc: BaseException) -> BackendError:
        text = str(exc).split("\n", 1)[0][:300]
        return BackendError(f"{self.label}: cannot {what} {key!r}: {type(exc).__name__}: {text}")

    async def gather(self, coros: Iterable[Awaitable[T]]) -> list[T]:
        """Await ``coros`` concurrently, at most ``concurrency`` at a time; results in order.

        A ``gather`` inside another one runs unbounded (the outer one already bounds the
        concurrency); bounding it too could deadlock with every permit held by outer tasks.
        """
        if _in_gather.get():
            return list(await asyncio.gather(*coros))

        async def run(c: Awaitable[T]) -> T:
            async with self._limit:
                _in_gather.set(True)  # in this task's own context copy
                return await c

        return list(await asyncio.gather(*(run(c) for c in coros)))

    # -- single objects ----------------------------------------------------------------------
    async def read(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` if it does not exist."""
        try:
            result = await _io(obs.get_async(self.raw, key))
            return bytes(await _io(result.bytes_async()))
        except FileNotFoundError:
            return None
        except (BaseError, OSError) as exc:
            raise self._error("read", key, exc) from exc

    async def read_immutable(self, key: str, decode: Callable[[str, bytes], T]) -> T | None:
        """Read and decode an object that never changes once written, through the cache.

        Raises:
            Whatever ``decode`` raises (the failure is not cached).
        """
        hit = self.cache.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
        data = await self.read(key)
        if data is None:
            return None
        value = decode(key, data)
        self.cache.put(key, value, len(data) + len(key))
        return value

    def remember(self, key: str, value: object, size: int) -> None:
        """Cache an immutable object this process has just written."""
        self.cache.put(key, value, size + len(key))

    async def create(self, key: str, data: bytes) -> bool:
        """Create-if-absent. Returns ``False`` when the object already exists."""
        try:
            await _io(obs.put_async(self.raw, key, data, mode="create"))
        except AlreadyExistsError:
            return False
        except (BaseError, OSError) as exc:
            raise self._error("create", key, exc) from exc
        return True

    async def write(self, key: str, data: bytes) -> None:
        """Create or overwrite."""
        try:
            await _io(obs.put_async(self.raw, key, data))
        except (BaseError, OSError) as exc:
            raise self._error("write", key, exc) from exc

    async def exists(self, key: str) -> bool:
        try:
            await _io(obs.head_async(self.raw, key))
        except FileNotFoundError:
            return False
        except (BaseError, OSError) as exc:
            raise self._error("check", key, exc) from exc
        return True

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete objects; missing ones are ignored."""
        if not keys:
            return
        if self.local_root is None:
            try:
                await _io(obs.delete_async(self.raw, list(keys)))
            except FileNotFoundError:
                pass
            except (BaseError, OSError) as exc:
                raise self._error("delete", keys[0], exc) from exc
            return
        await self.gather(self._delete_one(k) for k in keys)  # LocalStore stops at a missing one

    async def _delete_one(self, key: str) -> None:
        try:
            await _io(obs.delete_async(self.raw, key))
        except FileNotFoundError:
            pass
        except (BaseError, OSError) as exc:
            raise self._error("delete", key, exc) from exc

    # -- listings ----------------------------------------------------------------------------
    async def names(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (recursive), in no particular order."""
        if self.local_root is not None:
            return await asyncio.to_thread(self._walk, prefix)
        try:
            metas = await _io(obs.list(self.raw, prefix, chunk_size=_LIST_CHUNK).collect_async())
        except (BaseError, OSError) as exc:
            raise self._error("list", prefix, exc) from exc
        return [m["path"] for m in metas]

    async def dirs(self, prefix: str) -> list[str]:
        """Names of the directories directly under ``prefix`` (which ends with ``/``)."""
        if self.local_root is not None:
            return await asyncio.to_thread(self._subdirs, prefix)
        try:
            result = await _io(obs.list_with_delimiter_async(self.raw, prefix))
        except (BaseError, OSError) as exc:
            raise self._error("list", prefix, exc) from exc
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in result["common_prefixes"]]

    async def sorted_chunks(self, prefix: str) -> AsyncIterator[list[str]]:
        """Keys directly under ``prefix`` (a flat directory) in lexicographic order, a chunk at
        a time; the caller may stop early."""
        if self.local_root is not None:
            names = sorted(await asyncio.to_thread(self._files, prefix))
            for i in range(0, len(names), _LIST_CHUNK):
                yield names[i : i + _LIST_CHUNK]
            return
        # Object stores (and MemoryStore) list in lexicographic key order.
        stream = obs.list(self.raw, prefix, chunk_size=_LIST_CHUNK)
        while True:
            try:
                chunk = await _io(stream.__anext__())
            except StopAsyncIteration:
                return
            except (BaseError, OSError) as exc:
                raise self._error("list", prefix, exc) from exc
            yield [m["path"] for m in chunk]

    def _local(self, prefix: str) -> Path:
        assert self.local_root is not None
        return self.local_root / prefix

    def _walk(self, prefix: str) -> list[str]:
        base = self._local(prefix)
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.local_root).replace(os.sep, "/")
            head = "" if rel == "." else rel + "/"
            out.extend(head + f for f in files if not _STAGING.search(f))
        return out

    def _files(self, prefix: str) -> list[str]:
        """Keys of the files directly in ``prefix`` (the due index is flat: no walk, no stat)."""
        try:
            names = os.listdir(self._local(prefix))
        except FileNotFoundError:
            return []
        return [prefix + n for n in names if not _STAGING.search(n)]

    def _subdirs(self, prefix: str) -> list[str]:
        try:
            with os.scandir(self._local(prefix)) as it:
                return [e.name for e in it if e.is_dir()]
        except FileNotFoundError:
            return []

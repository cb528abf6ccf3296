"""The object store behind ``OMNIQ_RESULT_OFFLOAD_URL`` (claim-check of large results).

omniq-core imports this module only when that setting is set, so obstore stays out of a
deployment that does not offload. URLs are read exactly as storage URIs are
(:mod:`omniq_obstore._url`): ``memory://name`` (shared in this process with a ``memory://name``
backend), ``file:///abs/dir``, ``s3://bucket/prefix?endpoint=…`` and so on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from obstore.store import LocalStore

from omniq_obstore._store import ImmutableCache, Store
from omniq_obstore._url import cloud_store, parse_url
from omniq_obstore.backend import memory_store

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = ["OffloadStore", "open_store"]


class OffloadStore:
    """Offloaded results in one obstore store (implements ``omniq._offload.OffloadStore``).

    Args:
        store: the store, with obstore's errors mapped to :class:`omniq.errors.BackendError`.
        label: the URL without option values.
    """

    def __init__(self, store: Store, label: str) -> None:
        self._store = store
        self.label = label

    def __repr__(self) -> str:
        return f"OffloadStore({self.label!r})"

    async def put(self, key: str, data: bytes) -> None:
        """Write (or overwrite) the object ``key``."""
        await self._store.write(key, data)

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` if it does not exist."""
        return await self._store.read(key)

    async def dirs(self, prefix: str) -> list[str]:
        """Names of the "directories" directly under ``prefix`` (ending with ``/``)."""
        return await self._store.dirs(prefix)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many were deleted."""
        keys = await self._store.names(prefix)
        await self._store.delete(keys)
        return len(keys)


def open_store(url: str) -> OffloadStore:
    """Build the offload store of an object-store URI (nothing is contacted yet).

    Raises:
        omniq.errors.ConfigError: the URI cannot be used (the message says why).
    """
    spec = parse_url(url)
    raw: ObjectStore
    root: Path | None = None
    if spec.scheme == "memory":
        raw, _ = memory_store(spec.name)
    elif spec.scheme == "file":
        local = LocalStore(Path(spec.path), mkdir=True, automatic_cleanup=True)
        raw, root = local, local.prefix
    else:
        raw = cloud_store(spec)
    label = spec.display
    # Offloaded objects are read once per reader and are large: nothing is cached.
    store = Store(raw, label=label, cache=ImmutableCache(max_bytes=0), local_root=root)
    return OffloadStore(store, label)

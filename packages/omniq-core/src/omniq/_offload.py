"""Claim-check offload: large results go to an object store, the backend keeps a reference.

A worker encodes a result as usual (:meth:`omniq.serialization.Serializer.dumps`). When the
bytes exceed ``OMNIQ_RESULT_OFFLOAD_BYTES`` (with ``OMNIQ_RESULT_OFFLOAD_URL`` set) or the
backend's own value limit (``Capabilities.max_value_bytes``), the bytes are written unchanged to
the offload store and the backend stores a small reference instead: tag ``0x03`` + msgpack
``[key, size, sha256, store]``. A reader fetches the object, checks its size and SHA-256, and
decodes it like any result, so the value comes back exactly.

Object keys (relative to the offload URL)::

    omniq-results/{D}/{T}.{n}

``D`` is the time, in whole seconds since the epoch (12 digits, rounded *up* to the hour), after
which nobody can read the object any more: the earlier of the result's expiry and the end of the
task's retention (``finished + OMNIQ_RETENTION``, when purge deletes the task). ``T`` is the
task id (its SHA-256 when it holds characters unsafe in keys) and ``n`` the attempt, so two
attempts never write the same object. The janitor lists the ``omniq-results/`` "directories"
(one per hour: at most ``OMNIQ_RETENTION / 3600`` of them) and deletes the ones whose ``D`` has
passed, whole: expiring objects costs one listing plus the deletes, never a read per object.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import re
from typing import TYPE_CHECKING, Protocol

import msgspec

from omniq.errors import (
    ConfigError,
    DeserializationError,
    PayloadTooLargeError,
    ResultExpiredError,
)
from omniq.serialization import TAG_OFFLOAD

if TYPE_CHECKING:
    from omniq.backend import Backend
    from omniq.config import Settings
    from omniq.models import Task

__all__ = [
    "OFFLOAD_PREFIX",
    "OffloadRef",
    "OffloadStore",
    "ResultOffload",
    "is_reference",
    "open_offload_store",
    "result_offload",
]

log = logging.getLogger("omniq.offload")

OFFLOAD_PREFIX = "omniq-results/"
"""Where offloaded results live under ``OMNIQ_RESULT_OFFLOAD_URL``."""

_BUCKET_SECONDS = 3600
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,96}")
_DEADLINE = re.compile(r"\d{12}")
_PREFIX = bytes([TAG_OFFLOAD])


class OffloadStore(Protocol):
    """The object store behind ``OMNIQ_RESULT_OFFLOAD_URL`` (built by omniq-obstore).

    Attributes:
        label: the URL without option values (for messages; never secrets).
    """

    label: str

    async def put(self, key: str, data: bytes) -> None:
        """Write (or overwrite) the object ``key``."""

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` if it does not exist."""

    async def dirs(self, prefix: str) -> list[str]:
        """Names of the "directories" directly under ``prefix`` (which ends with ``/``)."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many were deleted."""


class OffloadRef(msgspec.Struct, array_like=True, frozen=True):
    """What the backend stores in place of an offloaded result.

    Attributes:
        key: the object's key in the offload store.
        size: the payload's length in bytes.
        sha256: the payload's SHA-256 digest (32 bytes).
        store: the offload URL it was written to (no option values), for messages.
    """

    key: str
    size: int
    sha256: bytes
    store: str


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(OffloadRef)


def is_reference(data: bytes) -> bool:
    """True when stored result bytes are a claim-check rather than the payload itself."""
    return bool(data) and data[0] == TAG_OFFLOAD


def _object_key(task: Task, deadline: float) -> str:
    bucket = math.ceil(deadline / _BUCKET_SECONDS) * _BUCKET_SECONDS
    tid = task.id if _SAFE_ID.fullmatch(task.id) else hashlib.sha256(task.id.encode()).hexdigest()
    return f"{OFFLOAD_PREFIX}{bucket:012d}/{tid}.{task.attempt}"


class ResultOffload:
    """Decides which results are offloaded, writes them, resolves references, expires objects.

    Args:
        store: the offload store, or ``None`` when ``OMNIQ_RESULT_OFFLOAD_URL`` is not set.
        threshold: results larger than this many bytes are offloaded (with a store).
        backend_limit: the backend's ``max_value_bytes`` (``None``: unlimited); a larger result
            is offloaded, or fails its task when there is no store.
    """

    def __init__(
        self,
        store: OffloadStore | None = None,
        *,
        threshold: int | None = None,
        backend_limit: int | None = None,
    ) -> None:
        self.store = store
        own = threshold if store is not None else None
        limits = [n for n in (own, backend_limit) if n is not None]
        self.limit: int | None = min(limits) if limits else None
        self._backend_limit = backend_limit

    def needed(self, size: int) -> bool:
        """True when a result of ``size`` bytes cannot be stored inline."""
        return self.limit is not None and size > self.limit

    async def offload(self, task: Task, data: bytes, *, deadline: float) -> bytes:
        """Write ``data`` (the encoded result of ``task``'s current attempt) to the store and
        return the reference the backend stores instead.

        Args:
            deadline: seconds since the epoch after which nobody reads the result (its expiry,
                or the end of its task's retention); the janitor deletes the object after it.

        Raises:
            PayloadTooLargeError: no offload store is configured (the message names
                ``OMNIQ_RESULT_OFFLOAD_URL``).
            omniq.errors.BackendError: the store refused the write.
        """
        if self.store is None:
            raise PayloadTooLargeError(
                f"the result of task {task.id} is {len(data)} bytes, over this backend's limit of "
                f"{self._backend_limit} bytes per value; set OMNIQ_RESULT_OFFLOAD_URL to an "
                "object store (file:///dir, s3://bucket/prefix; needs omniq-obstore) so large "
                "results are stored there, or return a smaller value"
            )
        key = _object_key(task, deadline)
        await self.store.put(key, data)
        ref = OffloadRef(
            key=key, size=len(data), sha256=hashlib.sha256(data).digest(), store=self.store.label
        )
        return _PREFIX + _ENCODER.encode(ref)

    async def resolve(self, task_id: str, data: bytes) -> bytes:
        """The payload of stored result bytes: ``data`` itself, or the object it refers to.

        Raises:
            ConfigError: a reference arrived but ``OMNIQ_RESULT_OFFLOAD_URL`` is not set here.
            ResultExpiredError: the object is gone (deleted after its deadline, or by a
                lifecycle rule of the store).
            DeserializationError: the reference is corrupt, or the object does not match its
                size and SHA-256.
        """
        if not is_reference(data):
            return data
        try:
            ref = _DECODER.decode(memoryview(data)[1:])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DeserializationError(
                f"task {task_id}: corrupt offloaded-result reference: {exc}"
            ) from None
        if self.store is None:
            raise ConfigError(
                f"the result of task {task_id} was offloaded to {ref.store}; set "
                "OMNIQ_RESULT_OFFLOAD_URL to that location (needs omniq-obstore) to read it"
            )
        body = await self.store.get(ref.key)
        if body is None:
            raise ResultExpiredError(
                f"the result of task {task_id} is gone from {self.store.label} ({ref.key}): "
                "its object was deleted (expired, or removed by a lifecycle rule)"
            )
        if len(body) != ref.size or hashlib.sha256(body).digest() != ref.sha256:
            raise DeserializationError(
                f"task {task_id}: the offloaded result {ref.key} in {self.store.label} does not "
                f"match its reference ({len(body)} bytes, expected {ref.size} with SHA-256 "
                f"{ref.sha256.hex()[:16]}…); it was modified after it was written"
            )
        return body

    async def purge(self, now: float) -> int:
        """Delete the offloaded objects nobody can read after ``now``; return how many.

        Raises:
            omniq.errors.BackendError: the store cannot be listed or written.
        """
        if self.store is None:
            return 0
        deleted = 0
        for name in sorted(await self.store.dirs(OFFLOAD_PREFIX)):
            if _DEADLINE.fullmatch(name) and int(name) <= now:
                deleted += await self.store.delete_prefix(f"{OFFLOAD_PREFIX}{name}/")
        if deleted:
            log.info("deleted %d expired offloaded result(s)", deleted)
        return deleted


def open_offload_store(url: str) -> OffloadStore:
    """Build the offload store of ``url`` through omniq-obstore (imported only when needed).

    Raises:
        ConfigError: omniq-obstore is not installed, or it cannot use ``url``.
    """
    try:
        module = importlib.import_module("omniq_obstore.offload")
    except ModuleNotFoundError as exc:
        if exc.name is not None and not exc.name.startswith(("omniq_obstore", "obstore")):
            raise
        raise ConfigError(
            f"OMNIQ_RESULT_OFFLOAD_URL={url!r} needs the omniq-obstore package "
            "(pip install omniq-obstore)"
        ) from None
    store: OffloadStore = module.open_store(url)
    return store


def result_offload(settings: Settings, backend: Backend) -> ResultOffload:
    """The :class:`ResultOffload` of a client or worker: its settings and its backend's limit.

    Raises:
        ConfigError: as :func:`open_offload_store`.
    """
    url = settings.result_offload_url
    return ResultOffload(
        open_offload_store(url) if url else None,
        threshold=settings.result_offload_bytes,
        backend_limit=backend.capabilities.max_value_bytes,
    )

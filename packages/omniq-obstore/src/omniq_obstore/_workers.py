"""Worker health records: one object per worker under ``workers/``, rewritten at each heartbeat.

A record is written with a plain put (create or overwrite), which every obstore store applies
atomically: a reader sees the old object or the new one. Expiry is read from the record itself
(``expires_at``), so listing reads every record; there are as many as there are workers.
"""

from __future__ import annotations

import logging

from omniq.backend import encode_worker_record
from omniq.models import WorkerInfo
from omniq_obstore import _keys as K
from omniq_obstore import _records as R
from omniq_obstore._store import Store

__all__ = ["list_workers", "purge_workers", "put_worker", "remove_worker"]

log = logging.getLogger("omniq.backend.obstore")


async def put_worker(store: Store, info: WorkerInfo) -> None:
    """Create or replace the record of ``info.id``.

    Raises:
        ValueError: when ``info`` holds a value of the wrong type (nothing is written).
    """
    await store.write(K.worker_key(info.id), encode_worker_record(info))


async def _all(store: Store) -> list[tuple[str, WorkerInfo]]:
    """Every decodable worker record with its key (undecodable ones are logged and skipped)."""
    keys = [k for k in await store.names(K.WORKERS_PREFIX) if "/" not in k[len(K.WORKERS_PREFIX) :]]
    datas = await store.gather(store.read(k) for k in keys)
    out: list[tuple[str, WorkerInfo]] = []
    for key, data in zip(keys, datas, strict=True):
        if data is None:
            continue  # removed meanwhile
        try:
            out.append((key, R.decode_worker(key, data)))
        except R.RecordError as exc:
            log.warning("%s (skipped)", exc)
    return out


async def list_workers(store: Store, now: float) -> list[WorkerInfo]:
    """Records with ``expires_at > now``, sorted by id."""
    live = [info for _, info in await _all(store) if info.expires_at > now]
    return sorted(live, key=lambda info: info.id)


async def remove_worker(store: Store, worker_id: str) -> None:
    """Delete the record of ``worker_id`` (absent: nothing to do)."""
    await store.delete([K.worker_key(worker_id)])


async def purge_workers(store: Store, now: float) -> int:
    """Delete records with ``expires_at <= now``; return how many.

    A worker that heartbeats between the read and the delete loses its record until its next
    beat (it is rewritten then); that worker was late by three heartbeats already.
    """
    dead = [key for key, info in await _all(store) if info.expires_at <= now]
    await store.delete(dead)
    return len(dead)

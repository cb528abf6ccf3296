"""Time-ordered ids: UUIDv7 (RFC 9562 §5.7) text, monotonic within a process.

The 48-bit millisecond timestamp comes first, then a 12-bit counter (``rand_a`` used as the
"fixed-length dedicated counter" of RFC 9562 §6.2, method 1) so ids made in the same millisecond
still sort in creation order, then 62 random bits. Lexicographic order of the text equals time order.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time

__all__ = ["new_id", "tick_task_id"]

_random = random.Random(os.urandom(16))  # uniqueness, not secrecy: no need for os.urandom per id

_lock = threading.Lock()
_last_ms = 0
_counter = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))


def new_id() -> str:
    """Return a new UUIDv7 as 36-character lowercase text; later calls in a process sort after."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        counter = _counter
        rand = _random.getrandbits(62)
    return _format((ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand)


def _format(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def tick_task_id(schedule_id: str, tick: float, index: int = 0) -> str:
    """The deterministic id of the task a schedule produces for ``tick`` (UUIDv7 layout).

    The 48-bit millisecond timestamp is the tick's, so ids still sort by time; the other 74
    bits come from SHA-256 of ``(schedule_id, tick, index)``. Every scheduler computes the same
    id for the same tick, so enqueueing it twice stores one task.
    """
    digest = hashlib.sha256(f"{schedule_id}\x00{tick!r}\x00{index}".encode()).digest()
    bits = int.from_bytes(digest[:10], "big")
    counter = bits >> 68 & 0xFFF
    rand = bits & ((1 << 62) - 1)
    ms = max(0, int(tick * 1000)) & 0xFFFF_FFFF_FFFF
    return _format(ms << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand)

"""What the parent and a child say to each other over their socket pair, and how it is framed.

Every message is one frame: a 4-byte big-endian length, then the msgpack (msgspec) encoding of a
tagged struct. The parent sends :class:`Run`, :class:`Cancel` and :class:`Stop`; the child
answers :class:`Ready` once at start and one :class:`Done` per :class:`Run`, in order.

Task data inside the messages is already encoded by the :class:`~omniq.serialization.Serializer`
(``payload``, ``value``), so a frame never carries a pickle of its own.
"""

from __future__ import annotations

import socket

import msgspec

from omniq.models import ErrorInfo

__all__ = [
    "Cancel",
    "ChildMessage",
    "Done",
    "FrameReader",
    "ParentMessage",
    "Ready",
    "Run",
    "Stop",
    "encode",
    "read_message",
]

_HEADER = 4
_MAX_FRAME = 2**32 - 1


class Run(msgspec.Struct, tag="run", kw_only=True):
    """Parent → child: run one task.

    Attributes:
        task_id: the task's id.
        attempt: the attempt number (for the child's :class:`~omniq.TaskContext`).
        queue: the task's queue.
        worker_id: the id of the worker hosting the pool.
        func: the function's import path.
        func_bytes: its signed dill bytes, or ``None``.
        payload: the encoded ``(args, kwargs)``.
        want_result: encode and send back the return value (``False`` for ``result_ttl=0``).
    """

    task_id: str
    attempt: int
    queue: str
    worker_id: str
    func: str
    func_bytes: bytes | None
    payload: bytes
    want_result: bool = True


class Cancel(msgspec.Struct, tag="cancel", kw_only=True):
    """Parent → child: set the cancel token of task ``task_id`` (cooperative cancellation)."""

    task_id: str


class Stop(msgspec.Struct, tag="stop"):
    """Parent → child: exit once the task in hand (if any) is done."""


class Ready(msgspec.Struct, tag="ready", kw_only=True):
    """Child → parent: started and waiting for work.

    Attributes:
        pid: the child's process id.
    """

    pid: int


class Done(msgspec.Struct, tag="done", kw_only=True):
    """Child → parent: the outcome of one :class:`Run`.

    Attributes:
        task_id: the task's id.
        value: the return value encoded by the child's serializer (``None`` on error or when the
            result was not wanted).
        error: the function's exception as data, or ``None`` on success.
        refused: not the task's own error: the child could not decode the task (function or
            arguments) and never ran it, or could not encode its result; never retried.
        rss_bytes: the child's resident set size after the task, in bytes.
    """

    task_id: str
    value: bytes | None = None
    error: ErrorInfo | None = None
    refused: bool = False
    rss_bytes: int = 0


ParentMessage = Run | Cancel | Stop
ChildMessage = Ready | Done

_encoder = msgspec.msgpack.Encoder()
_parent_decoder = msgspec.msgpack.Decoder(ParentMessage)
_child_decoder = msgspec.msgpack.Decoder(ChildMessage)


def encode(message: ParentMessage | ChildMessage) -> bytes:
    """One frame: the length prefix and the encoded message.

    Raises:
        ValueError: the encoded message is larger than 4 GiB.
    """
    buffer = bytearray(_HEADER)
    _encoder.encode_into(message, buffer, _HEADER)
    size = len(buffer) - _HEADER
    if size > _MAX_FRAME:
        raise ValueError(f"message of {size} bytes is too large for one frame")
    buffer[:_HEADER] = size.to_bytes(_HEADER, "big")
    return bytes(buffer)


class FrameReader:
    """Cuts a byte stream from a child into messages (parent side; non-blocking reads)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[ChildMessage]:
        """Add received bytes; return the messages now complete, in order.

        Raises:
            msgspec.DecodeError: a frame is not a valid child message.
        """
        self._buffer += chunk
        messages: list[ChildMessage] = []
        start = 0
        with memoryview(self._buffer) as view:
            while len(view) - start >= _HEADER:
                size = int.from_bytes(view[start : start + _HEADER], "big")
                end = start + _HEADER + size
                if len(view) < end:
                    break
                messages.append(_child_decoder.decode(view[start + _HEADER : end]))
                start = end
        if start:
            del self._buffer[:start]
        return messages


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_message(sock: socket.socket) -> ParentMessage | None:
    """Block until the next message from the parent arrives (child side).

    Returns:
        The message, or ``None`` when the parent closed its end (it exited or died).

    Raises:
        msgspec.DecodeError: a frame is not a valid parent message.
    """
    try:
        header = _read_exactly(sock, _HEADER)
        if header is None:
            return None
        body = _read_exactly(sock, int.from_bytes(header, "big"))
    except OSError:  # reset by a dying parent
        return None
    if body is None:
        return None
    return _parent_decoder.decode(body)

"""Turn task arguments, results and functions into bytes and back, keeping every value's type.

Values come back as the type they went in as, or encoding fails in the caller. msgpack (via
msgspec) is tried first; a value that msgpack plus OmniQ's extension types cannot carry exactly is
pickled whole with dill instead, but only when a secret key is configured (``OMNIQ_SECRET_KEY``),
because loading dill bytes runs code: dill payloads are HMAC-SHA256 signed and refused unless the
signature matches. Exceptions are never pickled; :func:`error_info` stores them as data.

Wire format (every payload starts with a one-byte format tag):

============  ================================================================================
Bytes         Meaning
============  ================================================================================
``0x01`` …    msgpack (msgspec) of the packed value; extension types below.
``0x02`` …    32-byte HMAC-SHA256 (key: ``OMNIQ_SECRET_KEY``) of the dill bytes, then the dill
              bytes (``dill.dumps(value, recurse=True)``).
``0x03`` …    a claim-check: msgpack ``[key, size, sha256, store]`` naming an object in
              ``OMNIQ_RESULT_OFFLOAD_URL`` that holds the real (``0x01``/``0x02``) payload of a
              large result; only ever stored as a result (see :mod:`omniq._offload`).
============  ================================================================================

:meth:`Serializer.dumps_call` packs ``(args, kwargs)`` as the msgpack array
``[args as an array, kwargs as a map]``, or dills the tuple ``(args, kwargs)``.

msgpack extension codes (each extension's data is itself msgpack unless noted):

====  ===============================  ==========================================================
Code  Type                             Data
====  ===============================  ==========================================================
1     ``int`` outside int64/uint64     big-endian two's complement bytes (not msgpack)
2     ``tuple``                        array of items
3     ``set``                          array of items
4     ``frozenset``                    array of items
5     ``dict`` with a non-``str`` key  flat array ``[k1, v1, k2, v2, …]`` (``str``-keyed dicts are
                                       plain maps)
6     ``bytearray``                    the raw bytes (not msgpack)
7     ``datetime.date``                proleptic Gregorian ordinal, 4 bytes big-endian (not msgpack)
8     ``datetime.time``                ``[hour, minute, second, microsecond, fold, tz]``
9     ``datetime.datetime``            ``[year, month, day, hour, minute, second, microsecond,
                                       fold, tz]``
10    ``datetime.timedelta``           ``[days, seconds, microseconds]``
11    ``decimal.Decimal``              ``str(value)`` as ASCII (not msgpack); keeps exponent, NaN
12    ``uuid.UUID``                    the 16 bytes (not msgpack)
13    ``complex``                      ``[real, imag]``
14    ``pathlib`` paths                ``[kind, str(path)]``; kind 0 ``PurePosixPath``,
                                       1 ``PureWindowsPath``, 2 ``PosixPath``, 3 ``WindowsPath``
15    ``msgspec.UNSET``                empty
16    ``enum.Enum`` member             ``[module, qualname, value]``; rebuilt as ``cls(value)``
17    ``msgspec.Struct`` instance      ``[module, qualname, {field: value}]``; ``cls(**fields)``
18    dataclass instance               ``[module, qualname, {attribute: value}]``; rebuilt without
                                       calling ``__init__``, like pickle
19    namedtuple instance              ``[module, qualname, [items]]``; ``cls._make(items)``
====  ===============================  ==========================================================

``tz`` is ``nil`` (naive), an ``int`` UTC offset in microseconds (``datetime.timezone``), an
``[offset, name]`` pair (a named ``datetime.timezone``) or a ``str`` IANA key (``ZoneInfo``).
``str``, ``int`` within 64 bits, ``float``, ``bool``, ``None``, ``bytes``, ``list`` and
``str``-keyed ``dict`` are plain msgpack. Classes are found again by import path, so instances of
classes defined in ``__main__`` or inside functions, other subclasses of built-in types, other
``tzinfo`` types and everything else go to dill.
"""

from __future__ import annotations

import hashlib
import hmac
import traceback
from collections.abc import Callable
from typing import Any, Final

import msgspec

from omniq import _codec
from omniq._codec import PASSTHROUGH, Unsupported, type_path
from omniq.errors import (
    ConfigError,
    DeserializationError,
    PayloadTooLargeError,
    SerializationError,
    SignatureError,
)
from omniq.models import ErrorInfo

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "TAG_DILL",
    "TAG_MSGPACK",
    "TAG_OFFLOAD",
    "Serializer",
    "error_info",
    "type_path",
]

TAG_MSGPACK: Final = 0x01
TAG_DILL: Final = 0x02
TAG_OFFLOAD: Final = 0x03
DEFAULT_MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024

_MSGPACK_PREFIX: Final = bytes([TAG_MSGPACK])
_DILL_PREFIX: Final = bytes([TAG_DILL])
_MAC_SIZE: Final = 32
_ENABLE_HINT: Final = (
    "set OMNIQ_SECRET_KEY to allow dill-serialized values (see docs/serialization.md)"
)
# Failures of the msgspec encoder on an already packed value mean the value cannot be carried
# (a str with lone surrogates); RecursionError means the caller's stack was already deep.
_ENCODE_ERRORS: Final = (Unsupported, msgspec.EncodeError, UnicodeEncodeError, RecursionError)


def _describe(data: bytes | bytearray | memoryview) -> str:
    head = bytes(data[:16]).hex(" ")
    more = " …" if len(data) > 16 else ""
    return f"{len(data)} bytes, starting {head or '(nothing)'}{more}"


class Serializer:
    """Encodes values, call arguments and functions to tagged bytes, and back.

    One instance is safe to share between threads and event loops (it holds only settings).

    Args:
        secret_key: the HMAC-SHA256 key (``OMNIQ_SECRET_KEY``) that signs dill payloads; ``None``
            turns dill off, so values msgpack cannot carry fail to encode and dill payloads are
            refused.
        max_payload_bytes: largest encoded payload accepted by the ``dumps*`` methods, in bytes
            (``OMNIQ_MAX_PAYLOAD_BYTES``).

    Raises:
        ConfigError: ``secret_key`` is empty or not bytes, or ``max_payload_bytes`` is not a
            positive int.
    """

    __slots__ = ("_key", "_max")

    def __init__(
        self,
        *,
        secret_key: bytes | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if secret_key is not None and (not isinstance(secret_key, bytes) or not secret_key):
            raise ConfigError(
                "secret_key (OMNIQ_SECRET_KEY) must be non-empty bytes, or None to disable dill"
            )
        if type(max_payload_bytes) is not int or max_payload_bytes < 1:
            raise ConfigError(
                f"max_payload_bytes (OMNIQ_MAX_PAYLOAD_BYTES) must be a positive number of bytes, "
                f"got {max_payload_bytes!r}"
            )
        self._key = secret_key
        self._max = max_payload_bytes

    def __repr__(self) -> str:
        return f"Serializer(dill_enabled={self.dill_enabled}, max_payload_bytes={self._max})"

    @property
    def dill_enabled(self) -> bool:
        """True when a secret key is set, so dill payloads can be written and verified."""
        return self._key is not None

    @property
    def max_payload_bytes(self) -> int:
        """The largest encoded payload the ``dumps*`` methods accept, in bytes."""
        return self._max

    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that build an equivalent serializer: ``Serializer(**s.init_kwargs())``.

        Used to rebuild this serializer in another process of the same deployment (the
        ``process`` executor's children). The result holds the secret key itself: hand it only to
        processes you trust with the key, and never log or store it (``repr`` of the serializer
        never shows the key).

        Returns:
            ``{"secret_key": bytes | None, "max_payload_bytes": int}``.
        """
        return {"secret_key": self._key, "max_payload_bytes": self._max}

    # ------------------------------------------------------------------------------- values

    def dumps(self, value: object) -> bytes:
        """Encode any value so that :meth:`loads` returns an equal value of the same type.

        Args:
            value: the value; nested containers included.

        Returns:
            ``0x01`` + msgpack, or ``0x02`` + HMAC + dill when msgpack cannot carry ``value``.

        Raises:
            SerializationError: msgpack cannot carry ``value`` and no secret key is set (the message
                names the offending type), or dill cannot pickle it either.
            PayloadTooLargeError: the encoded bytes exceed ``max_payload_bytes``.
        """
        try:
            data = _MSGPACK_PREFIX + _codec.encode(_codec.pack(value))
        except _ENCODE_ERRORS as exc:
            data = self._dill_fallback(value, exc, f"a {type_path(type(value))} value")
        return self._checked_size(data)

    def loads(self, data: bytes) -> Any:
        """Decode bytes produced by :meth:`dumps` (with the same secret key, for dill payloads).

        Args:
            data: the encoded payload.

        Returns:
            The value, of the same type as the one encoded.

        Raises:
            SignatureError: a dill payload arrived without a configured key, or its HMAC does not
                match this key; it is never unpickled.
            DeserializationError: the bytes are empty, truncated, have an unknown tag, or name a
                type that cannot be imported here.
        """
        if not data:
            raise DeserializationError("cannot decode an empty payload (0 bytes)")
        tag = data[0]
        if tag == TAG_MSGPACK:
            try:
                return _codec.decode(memoryview(data)[1:])
            except DeserializationError:
                raise
            except Exception as exc:
                raise DeserializationError(
                    f"corrupt msgpack payload ({_describe(data)}): {type(exc).__name__}: {exc}"
                ) from exc
        if tag == TAG_DILL:
            return self._load_dill(data, what="value")
        if tag == TAG_OFFLOAD:
            raise DeserializationError(
                f"payload ({_describe(data)}) is a reference to an offloaded result, not a value; "
                "read results through the client (it fetches them from OMNIQ_RESULT_OFFLOAD_URL)"
            )
        raise DeserializationError(
            f"unknown format tag 0x{tag:02x} in payload ({_describe(data)}); expected 0x01 "
            "(msgpack) or 0x02 (signed dill); was it written by OmniQ?"
        )

    # -------------------------------------------------------------------------------- calls

    def dumps_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """Encode a call's positional and keyword arguments.

        Args:
            args: positional arguments.
            kwargs: keyword arguments.

        Returns:
            The payload; :meth:`loads_call` returns ``(args, kwargs)`` with every type kept.

        Raises:
            SerializationError: as :meth:`dumps`.
            PayloadTooLargeError: as :meth:`dumps`.
        """
        try:
            packed = [
                [a if type(a) in PASSTHROUGH else _codec.pack(a, 1) for a in args],
                _codec.pack(kwargs, 0) if kwargs else {},
            ]
            data = _MSGPACK_PREFIX + _codec.encode(packed)
        except _ENCODE_ERRORS as exc:
            data = self._dill_fallback((tuple(args), kwargs), exc, "call arguments")
        return self._checked_size(data)

    def loads_call(self, data: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Decode a payload produced by :meth:`dumps_call`.

        Args:
            data: the encoded payload.

        Returns:
            ``(args, kwargs)``.

        Raises:
            SignatureError: as :meth:`loads`.
            DeserializationError: as :meth:`loads`, or the payload does not hold a call.
        """
        value = self.loads(data)
        if type(value) is list and len(value) == 2:
            args, kwargs = value
            if type(args) is list and type(kwargs) is dict:
                return tuple(args), kwargs
        elif type(value) is tuple and len(value) == 2:
            args, kwargs = value
            if type(args) is tuple and type(kwargs) is dict:
                return args, kwargs
        raise DeserializationError(
            f"payload ({_describe(data)}) does not hold call arguments (args, kwargs); "
            f"it decodes to a {type(value).__name__}"
        )

    # ---------------------------------------------------------------------------- functions

    def dumps_function(self, fn: Callable[..., Any]) -> bytes:
        """Pickle a function that cannot be imported by path (lambda, closure, ``__main__``).

        Args:
            fn: the callable.

        Returns:
            ``0x02`` + HMAC-SHA256 + ``dill.dumps(fn, recurse=True)``.

        Raises:
            SerializationError: no secret key is set, ``fn`` is not callable, or dill cannot
                pickle it.
            PayloadTooLargeError: the signed bytes exceed ``max_payload_bytes``.
        """
        name = getattr(fn, "__qualname__", None) or type_path(type(fn))
        if not callable(fn):
            raise SerializationError(f"expected a callable, got a {type_path(type(fn))}")
        if self._key is None:
            raise SerializationError(
                f"function {name} cannot be imported by path, so it must travel as dill bytes, "
                "which are only written when signed; set OMNIQ_SECRET_KEY to allow "
                "dill-serialized functions (see docs/serialization.md)"
            )
        return self._checked_size(self._dill_sign(fn, f"function {name}"))

    def loads_function(self, data: bytes) -> Callable[..., Any]:
        """Verify and unpickle a function produced by :meth:`dumps_function`.

        Args:
            data: the signed dill payload.

        Returns:
            The callable.

        Raises:
            SignatureError: no key is set or the HMAC does not match.
            DeserializationError: not a dill payload, corrupt, or it does not hold a callable.
        """
        if not data or data[0] != TAG_DILL:
            raise DeserializationError(
                f"expected a signed dill function payload (tag 0x02), got {_describe(data)}"
            )
        fn = self._load_dill(data, what="function")
        if not callable(fn):
            raise DeserializationError(
                f"function payload ({_describe(data)}) holds a {type_path(type(fn))}, "
                "not a callable"
            )
        return fn  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------ private

    def _checked_size(self, data: bytes) -> bytes:
        if len(data) > self._max:
            raise PayloadTooLargeError(
                f"encoded payload is {len(data)} bytes, over the limit of {self._max} bytes; "
                "pass smaller arguments (e.g. a reference to data in storage) or raise "
                "OMNIQ_MAX_PAYLOAD_BYTES"
            )
        return data

    def _dill_fallback(self, value: object, cause: BaseException, what: str) -> bytes:
        if isinstance(cause, Unsupported):
            reason = str(cause)
        else:
            reason = f"{type(cause).__name__}: {cause}"
        if self._key is None:
            raise SerializationError(
                f"cannot serialize {what} with msgpack: {reason}; {_ENABLE_HINT}"
            ) from None
        return self._dill_sign(value, f"{what} ({reason})")

    def _dill_sign(self, obj: object, what: str) -> bytes:
        import dill  # imported on first use: most deployments never need it

        assert self._key is not None
        try:
            raw: bytes = dill.dumps(obj, recurse=True)
        except Exception as exc:
            raise SerializationError(
                f"cannot serialize {what} with dill either: {type(exc).__name__}: {exc}"
            ) from exc
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()
        return b"".join((_DILL_PREFIX, mac, raw))

    def _load_dill(self, data: bytes, *, what: str) -> Any:
        if self._key is None:
            raise SignatureError(
                f"refusing a dill {what} payload ({_describe(data)}): no secret key is configured "
                "here, so its signature cannot be checked; set OMNIQ_SECRET_KEY to the key the "
                "producer uses (loading unverified dill bytes would run arbitrary code)"
            )
        if len(data) <= 1 + _MAC_SIZE:
            raise SignatureError(
                f"refusing a dill {what} payload ({_describe(data)}): too short to hold a "
                f"{_MAC_SIZE}-byte HMAC-SHA256 signature and a pickle"
            )
        view = memoryview(data)
        raw = view[1 + _MAC_SIZE :]
        expected = hmac.new(self._key, raw, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, view[1 : 1 + _MAC_SIZE]):
            raise SignatureError(
                f"refusing a dill {what} payload ({_describe(data)}): its HMAC-SHA256 signature "
                "does not match this OMNIQ_SECRET_KEY (signed with another key, or tampered with)"
            )
        import dill

        try:
            return dill.loads(raw)
        except Exception as exc:
            raise DeserializationError(
                f"signed dill {what} payload ({_describe(data)}) could not be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def error_info(exc: BaseException) -> ErrorInfo:
    """Describe an exception as data, for storing with a failed task (never a pickle).

    Args:
        exc: the exception, ideally with its ``__traceback__``.

    Returns:
        Its type path (e.g. ``"builtins.ValueError"``), ``str(exc)`` and the formatted traceback
        text (chained causes included; empty if formatting fails).
    """
    tp = type_path(type(exc))
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {tp} object>"
    try:
        tb = "".join(traceback.format_exception(exc))
    except Exception:
        tb = ""
    return ErrorInfo(type=tp, message=message, traceback=tb)

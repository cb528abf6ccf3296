"""The msgpack half of :mod:`omniq.serialization`: exact-type packing and unpacking.

msgspec encodes ``tuple``, ``set``, ``datetime``, ``Decimal``, ``UUID`` and friends natively, but
decodes them as ``list`` or ``str``. So :func:`pack` walks a value first and turns every type that
plain msgpack would not bring back as itself into a :class:`msgspec.msgpack.Ext` whose bytes are
again msgpack; :func:`decode` rebuilds them in the decoder's ``ext_hook``. What no extension can
carry exactly raises :class:`Unsupported`, and the caller falls back to dill. The extension codes
are listed in the module docstring of :mod:`omniq.serialization`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import importlib
import pathlib
import sys
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec
from msgspec.msgpack import Ext

from omniq.errors import DeserializationError

__all__ = ["MAX_DEPTH", "PASSTHROUGH", "Unsupported", "decode", "encode", "pack", "type_path"]

EXT_BIGINT: Final = 1
EXT_TUPLE: Final = 2
EXT_SET: Final = 3
EXT_FROZENSET: Final = 4
EXT_DICT: Final = 5
EXT_BYTEARRAY: Final = 6
EXT_DATE: Final = 7
EXT_TIME: Final = 8
EXT_DATETIME: Final = 9
EXT_TIMEDELTA: Final = 10
EXT_DECIMAL: Final = 11
EXT_UUID: Final = 12
EXT_COMPLEX: Final = 13
EXT_PATH: Final = 14
EXT_UNSET: Final = 15
EXT_ENUM: Final = 16
EXT_STRUCT: Final = 17
EXT_DATACLASS: Final = 18
EXT_NAMEDTUPLE: Final = 19

MAX_DEPTH: Final = 100
"""Containers nested deeper than this (or containing themselves) are not packed."""

PASSTHROUGH: Final[frozenset[type]] = frozenset({str, float, bool, type(None), bytes})
"""Types msgpack carries exactly as they are (``int`` needs a range check, so it is not here)."""

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1

_encoder = msgspec.msgpack.Encoder()
encode: Final[Callable[[Any], bytes]] = _encoder.encode
"""Encode an already packed value to msgpack bytes."""


class Unsupported(Exception):
    """Raised by :func:`pack` when a value has no exact msgpack encoding; the message says why."""


def type_path(tp: type) -> str:
    """Return the import path of a class as ``"module.QualName"``, e.g. ``"builtins.ValueError"``.

    Args:
        tp: any class.

    Returns:
        ``tp.__module__`` and ``tp.__qualname__`` joined by a dot.
    """
    module = getattr(tp, "__module__", None) or "builtins"
    return f"{module}.{getattr(tp, '__qualname__', tp.__name__)}"


# --------------------------------------------------------------------------------------- packing


def pack(x: Any, depth: int = 0) -> Any:
    """Return ``x`` with every value plain msgpack would not bring back exactly made an ``Ext``.

    Args:
        x: the value to pack.
        depth: how many containers enclose ``x`` (for the :data:`MAX_DEPTH` guard).

    Returns:
        A structure of ``str``/``int``/``float``/``bool``/``None``/``bytes``/``list``/``dict``
        (``str`` keys only) and ``Ext`` that msgspec encodes as is.

    Raises:
        Unsupported: some part of ``x`` has no exact encoding, or ``x`` nests too deep.
    """
    t = type(x)
    if t in PASSTHROUGH:
        return x
    if t is int:
        if _INT_MIN <= x <= _INT_MAX:
            return x
        return Ext(EXT_BIGINT, x.to_bytes((x.bit_length() + 8) // 8, "big", signed=True))
    if depth >= MAX_DEPTH:
        raise Unsupported(
            f"the value nests containers deeper than {MAX_DEPTH} levels or contains itself"
        )
    depth += 1
    if t is list:
        return [v if type(v) in PASSTHROUGH else pack(v, depth) for v in x]
    if t is dict:
        return _pack_dict(x, depth)
    packer = _PACKERS.get(t)
    if packer is not None:
        return packer(x, depth)
    return _pack_class(x, t, depth)


def _pack_dict(x: dict[Any, Any], depth: int) -> Any:
    for k in x:
        if type(k) is not str:
            break
    else:
        return {k: v if type(v) in PASSTHROUGH else pack(v, depth) for k, v in x.items()}
    flat: list[Any] = []
    for k, v in x.items():
        flat.append(pack(k, depth))
        flat.append(pack(v, depth))
    return Ext(EXT_DICT, encode(flat))


def _pack_items(code: int) -> Callable[[Any, int], Ext]:
    def packer(x: Any, depth: int) -> Ext:
        return Ext(code, encode([v if type(v) in PASSTHROUGH else pack(v, depth) for v in x]))

    return packer


def _pack_tz(tz: dt.tzinfo | None) -> Any:
    if tz is None:
        return None
    if type(tz) is dt.timezone:
        off = tz.utcoffset(None)
        us = (off.days * 86_400 + off.seconds) * 1_000_000 + off.microseconds
        name = tz.tzname(None)
        return us if name == dt.timezone(off).tzname(None) else [us, name]
    if type(tz) is ZoneInfo and tz.key is not None:
        return tz.key
    raise Unsupported(
        f"tzinfo of type {type_path(type(tz))} cannot be carried exactly "
        "(supported: datetime.timezone and zoneinfo.ZoneInfo with a key)"
    )


def _pack_datetime(x: dt.datetime, depth: int) -> Ext:
    fields = [x.year, x.month, x.day, x.hour, x.minute, x.second, x.microsecond]
    return Ext(EXT_DATETIME, encode([*fields, x.fold, _pack_tz(x.tzinfo)]))


def _pack_time(x: dt.time, depth: int) -> Ext:
    fields = [x.hour, x.minute, x.second, x.microsecond, x.fold, _pack_tz(x.tzinfo)]
    return Ext(EXT_TIME, encode(fields))


_PATH_TYPES: Final[tuple[type[pathlib.PurePath], ...]] = (
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.PosixPath,
    pathlib.WindowsPath,
)


def _pack_path(x: pathlib.PurePath, depth: int) -> Ext:
    return Ext(EXT_PATH, encode([_PATH_TYPES.index(type(x)), str(x)]))


_PACKERS: Final[dict[type, Callable[[Any, int], Ext]]] = {
    tuple: _pack_items(EXT_TUPLE),
    set: _pack_items(EXT_SET),
    frozenset: _pack_items(EXT_FROZENSET),
    bytearray: lambda x, _: Ext(EXT_BYTEARRAY, bytes(x)),
    dt.date: lambda x, _: Ext(EXT_DATE, x.toordinal().to_bytes(4, "big")),
    dt.time: _pack_time,
    dt.datetime: _pack_datetime,
    dt.timedelta: lambda x, _: Ext(EXT_TIMEDELTA, encode([x.days, x.seconds, x.microseconds])),
    decimal.Decimal: lambda x, _: Ext(EXT_DECIMAL, str(x).encode("ascii")),
    uuid.UUID: lambda x, _: Ext(EXT_UUID, x.bytes),
    complex: lambda x, _: Ext(EXT_COMPLEX, encode([x.real, x.imag])),
    type(msgspec.UNSET): lambda x, _: Ext(EXT_UNSET, b""),
    **dict.fromkeys(_PATH_TYPES, _pack_path),
}

# Per class: (ext code, module, qualname) when instances travel by import path, else the reason
# they cannot. Weak keys, so classes made at run time are not kept alive.
_KINDS: weakref.WeakKeyDictionary[type, tuple[int, str, str] | str] = weakref.WeakKeyDictionary()


def _classify(t: type) -> tuple[int, str, str] | str:
    path = type_path(t)
    if issubclass(t, enum.Enum):
        code = EXT_ENUM
    elif issubclass(t, msgspec.Struct):
        code = EXT_STRUCT
    elif dataclasses.is_dataclass(t):
        code = EXT_DATACLASS
    elif issubclass(t, tuple) and hasattr(t, "_fields") and hasattr(t, "_make"):
        code = EXT_NAMEDTUPLE
    else:
        return f"type {path} has no exact msgpack encoding"
    module, qualname = t.__module__, t.__qualname__
    if module == "__main__":
        return f"type {path} is defined in __main__, so a worker cannot import it by path"
    if "<locals>" in qualname:
        return f"type {path} is defined inside a function, so a worker cannot import it by path"
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is not t:
        return f"type {path} is not reachable at its import path {path}"
    return (code, module, qualname)


def _pack_class(x: Any, t: type, depth: int) -> Ext:
    kind = _KINDS.get(t)
    if kind is None:
        kind = _KINDS[t] = _classify(t)
    if isinstance(kind, str):
        raise Unsupported(kind)
    code, module, qualname = kind
    body: Any
    if code == EXT_ENUM:
        body = pack(x.value, depth)
    elif code == EXT_STRUCT:
        body = {f: pack(getattr(x, f), depth) for f in t.__struct_fields__}  # type: ignore[attr-defined]
    elif code == EXT_DATACLASS:
        state = dict(getattr(x, "__dict__", ()))
        for f in dataclasses.fields(x):
            if f.name not in state and hasattr(x, f.name):
                state[f.name] = getattr(x, f.name)
        body = _pack_dict(state, depth)
    else:
        body = [pack(v, depth) for v in x]
    return Ext(code, encode([module, qualname, body]))


# ------------------------------------------------------------------------------------- unpacking


def _unpack_tz(tz: Any) -> dt.tzinfo | None:
    if tz is None:
        return None
    if type(tz) is int:
        return dt.timezone(dt.timedelta(microseconds=tz))
    if type(tz) is str:
        try:
            return ZoneInfo(tz)
        except (KeyError, ValueError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise DeserializationError(
                f"unknown time zone key {tz!r} in payload; is the time zone database "
                "(system zoneinfo or the tzdata package) installed on this worker?"
            ) from exc
    us, name = tz
    return dt.timezone(dt.timedelta(microseconds=us), name)


def _unpack_datetime(data: memoryview) -> dt.datetime:
    y, mo, d, h, mi, s, us, fold, tz = decode(data)
    return dt.datetime(y, mo, d, h, mi, s, us, tzinfo=_unpack_tz(tz), fold=fold)


def _unpack_time(data: memoryview) -> dt.time:
    h, mi, s, us, fold, tz = decode(data)
    return dt.time(h, mi, s, us, tzinfo=_unpack_tz(tz), fold=fold)


def _unpack_dict(data: memoryview) -> dict[Any, Any]:
    flat = decode(data)
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def _unpack_path(data: memoryview) -> pathlib.PurePath:
    kind, text = decode(data)
    cls: type[pathlib.PurePath] = _PATH_TYPES[kind]
    try:
        return cls(text)
    except NotImplementedError as exc:  # e.g. WindowsPath on Linux
        raise DeserializationError(f"cannot build a {cls.__name__} on this system") from exc


_KIND_NAMES: Final = {
    EXT_ENUM: "an enum.Enum subclass",
    EXT_STRUCT: "a msgspec.Struct subclass",
    EXT_DATACLASS: "a dataclass",
    EXT_NAMEDTUPLE: "a namedtuple class",
}
_CLASSES: dict[tuple[int, str, str], type] = {}


def _load_class(code: int, module: Any, qualname: Any) -> Any:
    if type(module) is not str or type(qualname) is not str:
        raise DeserializationError(f"malformed type path in payload: {module!r}, {qualname!r}")
    key = (code, module, qualname)
    cls = _CLASSES.get(key)
    if cls is not None:
        return cls
    path = f"{module}.{qualname}"
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise DeserializationError(
            f"cannot import type {path} named in the payload ({type(exc).__name__}: {exc}); "
            "is the code that defines it installed on this worker?"
        ) from exc
    ok = isinstance(obj, type) and (
        (code == EXT_ENUM and issubclass(obj, enum.Enum))
        or (code == EXT_STRUCT and issubclass(obj, msgspec.Struct))
        or (code == EXT_DATACLASS and dataclasses.is_dataclass(obj))
        or (code == EXT_NAMEDTUPLE and issubclass(obj, tuple) and hasattr(obj, "_make"))
    )
    if not ok:
        raise DeserializationError(f"{path} named in the payload is not {_KIND_NAMES[code]}")
    if len(_CLASSES) >= 4096:
        _CLASSES.clear()
    _CLASSES[key] = obj
    return obj


def _unpack_class(code: int) -> Callable[[memoryview], Any]:
    def unpacker(data: memoryview) -> Any:
        module, qualname, body = decode(data)
        cls = _load_class(code, module, qualname)
        if code == EXT_ENUM:
            try:
                return cls(body)
            except ValueError as exc:
                raise DeserializationError(
                    f"{module}.{qualname} has no member with value {body!r}"
                ) from exc
        if code == EXT_STRUCT:
            return cls(**body)
        if code == EXT_DATACLASS:
            obj = cls.__new__(cls)
            for name, value in body.items():
                object.__setattr__(obj, name, value)
            return obj
        return cls._make(body)

    return unpacker


_UNPACKERS: Final[dict[int, Callable[[memoryview], Any]]] = {
    EXT_BIGINT: lambda b: int.from_bytes(b, "big", signed=True),
    EXT_TUPLE: lambda b: tuple(decode(b)),
    EXT_SET: lambda b: set(decode(b)),
    EXT_FROZENSET: lambda b: frozenset(decode(b)),
    EXT_DICT: _unpack_dict,
    EXT_BYTEARRAY: bytearray,
    EXT_DATE: lambda b: dt.date.fromordinal(int.from_bytes(b, "big")),
    EXT_TIME: _unpack_time,
    EXT_DATETIME: _unpack_datetime,
    EXT_TIMEDELTA: lambda b: dt.timedelta(*decode(b)),
    EXT_DECIMAL: lambda b: decimal.Decimal(bytes(b).decode("ascii")),
    EXT_UUID: lambda b: uuid.UUID(bytes=bytes(b)),
    EXT_COMPLEX: lambda b: complex(*decode(b)),
    EXT_PATH: _unpack_path,
    EXT_UNSET: lambda b: msgspec.UNSET,
    **{code: _unpack_class(code) for code in _KIND_NAMES},
}


def _ext_hook(code: int, data: memoryview) -> Any:
    unpacker = _UNPACKERS.get(code)
    if unpacker is None:
        raise DeserializationError(f"unknown msgpack extension code {code} in payload")
    return unpacker(data)


decode: Final[Callable[[Any], Any]] = msgspec.msgpack.Decoder(ext_hook=_ext_hook).decode
"""Decode msgpack bytes produced from a :func:`pack`-ed value back to the original value."""

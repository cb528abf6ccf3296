"""Tests of omniq.serialization: exact-type round trips, signed dill fallback, limits, errors."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import hmac
import math
import pathlib
import pickle
import typing
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omniq.errors import (
    ConfigError,
    DeserializationError,
    PayloadTooLargeError,
    SerializationError,
    SignatureError,
)
from omniq.models import ErrorInfo, TaskState
from omniq.serialization import Serializer, error_info, type_path

KEY = b"test-secret-key"
HINT = "set OMNIQ_SECRET_KEY to allow dill-serialized values (see docs/serialization.md)"


# ------------------------------------------------------------------------- module-level types


class Color(enum.Enum):
    RED = 1
    GREEN = "green"
    BLUE = (0, 0, 255)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Point(msgspec.Struct, frozen=True):
    x: int
    y: tuple[int, int] = (0, 0)


class Order(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    when: dt.datetime
    lines: list[Point]
    total: decimal.Decimal
    note: str | msgspec.UnsetType = msgspec.UNSET


@dataclasses.dataclass
class Item:
    name: str
    tags: tuple[str, ...]
    price: decimal.Decimal
    computed: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.computed += 1  # not idempotent: proves __init__ is not re-run on decode


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    a: int
    b: frozenset[str]


Pair = collections.namedtuple("Pair", "left right")


class Span(typing.NamedTuple):
    start: dt.date
    end: dt.date


class Outer:
    class Inner(msgspec.Struct):
        v: int


class CustomError(Exception):
    pass


side_effects: list[str] = []


def _record(tag: str) -> str:
    side_effects.append(tag)
    return tag


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_record, ("code ran",))


# ----------------------------------------------------------------------------- helpers


def assert_same(a: Any, b: Any, path: str = "value") -> None:
    """Assert ``b`` equals ``a`` with the exact same type at every nesting level."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} came back as {type(b).__name__}"
    if isinstance(a, float | complex):
        assert repr(a) == repr(b), f"{path}: {a!r} != {b!r}"  # nan, -0.0
    elif isinstance(a, decimal.Decimal):
        assert str(a) == str(b), f"{path}: {a} != {b}"  # exponent, NaN
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            assert_same(ka, kb, f"{path} key {ka!r}")
            assert_same(va, vb, f"{path}[{ka!r}]")
    elif isinstance(a, set | frozenset):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        stored = {e: e for e in b}
        for e in a:
            assert e in stored, f"{path}: {e!r} missing"
            assert_same(e, stored[e], f"{path} element {e!r}")
    elif isinstance(a, dt.datetime | dt.time):
        assert a.replace(tzinfo=None) == b.replace(tzinfo=None), f"{path}: {a!r} != {b!r}"
        assert a.fold == b.fold, f"{path}: fold"
        assert_same_tz(a.tzinfo, b.tzinfo, path)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_same_tz(a: dt.tzinfo | None, b: dt.tzinfo | None, path: str) -> None:
    assert type(a) is type(b), f"{path}: tzinfo {a!r} came back as {b!r}"
    if isinstance(a, ZoneInfo):
        assert isinstance(b, ZoneInfo)
        assert a.key == b.key, f"{path}: zone {a.key} != {b.key}"
    elif a is not None:
        assert a.utcoffset(None) == b.utcoffset(None), f"{path}: offset"  # type: ignore[union-attr]
        assert a.tzname(None) == b.tzname(None), f"{path}: tzname"  # type: ignore[union-attr]


def roundtrip(value: Any, s: Serializer | None = None) -> Any:
    s = s or Serializer()
    data = s.dumps(value)
    out = s.loads(data)
    assert_same(value, out)
    return out


def sign(key: bytes, raw: bytes) -> bytes:
    return b"\x02" + hmac.new(key, raw, hashlib.sha256).digest() + raw


@pytest.fixture
def plain() -> Serializer:
    return Serializer()


@pytest.fixture
def keyed() -> Serializer:
    return Serializer(secret_key=KEY)


# ------------------------------------------------------------------------ explicit round trips

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
BRT = dt.timezone(dt.timedelta(hours=-3))

EXAMPLES: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "int": -42,
    "int-uint64-max": 2**64 - 1,
    "int-int64-min": -(2**63),
    "int-above-uint64": 2**64,
    "int-below-int64": -(2**63) - 1,
    "int-huge": 10**100,
    "int-huge-negative": -(7**300),
    "float": 1.5,
    "float-inf": float("inf"),
    "float-minus-inf": float("-inf"),
    "float-nan": float("nan"),
    "float-minus-zero": -0.0,
    "str": "héllo ✓",
    "bytes": b"\x00\xff",
    "bytearray": bytearray(b"abc"),
    "list": [1, "a", None],
    "tuple": (1, "x"),
    "empty-tuple": (),
    "nested-tuple": ((1, (2, (3,))), [(4,)]),
    "set": {1, "a", (2, 3)},
    "frozenset": frozenset({1.5, b"x"}),
    "empty-set": set(),
    "dict-str-keys": {"a": (1, 2), "b": {"c": (3,)}},
    "dict-int-keys": {1: "a", 2: "b"},
    "dict-tuple-keys": {(1, 2): "a", ("x",): (3, 4)},
    "dict-mixed-keys": {1: 1, "1": 2, 1.5: 3, None: 4, b"k": 5, frozenset({1}): 6},
    "date": dt.date(2024, 2, 29),
    "date-min": dt.date.min,
    "time": dt.time(23, 59, 59, 999_999),
    "time-aware": dt.time(12, 0, tzinfo=IST),
    "datetime-naive": dt.datetime(2024, 1, 2, 3, 4, 5, 678_901),
    "datetime-utc": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "datetime-plus-0530": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=IST),
    "datetime-minus-0300": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=BRT),
    "datetime-named-offset": dt.datetime(
        2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=1), "X")
    ),
    "datetime-paris": dt.datetime(2024, 7, 1, 12, 30, tzinfo=ZoneInfo("Europe/Paris")),
    "datetime-fold": dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),
    "timedelta": dt.timedelta(days=-3, seconds=5, microseconds=7),
    "decimal": decimal.Decimal("1.10"),
    "decimal-exp": decimal.Decimal("-1.2300E+40"),
    "decimal-nan": decimal.Decimal("NaN"),
    "decimal-snan": decimal.Decimal("-sNaN12"),
    "decimal-minus-zero": decimal.Decimal("-0.000"),
    "decimal-inf": decimal.Decimal("-Infinity"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "complex": complex(1.5, -2),
    "enum": Color.BLUE,
    "enum-str-value": Color.GREEN,
    "int-enum": Level.HIGH,
    "str-enum": TaskState.RUNNING,
    "flag-combination": Perm.R | Perm.W,
    "struct": Point(1, (2, 3)),
    "struct-nested": Order(
        id=uuid.UUID(int=7),
        when=dt.datetime(2024, 1, 1, tzinfo=IST),
        lines=[Point(1), Point(2, (5, 6))],
        total=decimal.Decimal("9.90"),
    ),
    "struct-nested-class": Outer.Inner(3),
    "struct-library": ErrorInfo(type="builtins.ValueError", message="m"),
    "dataclass-frozen-slots": Frozen(1, frozenset({"a", "b"})),
    "namedtuple": Pair((1, 2), [3]),
    "typed-namedtuple": Span(dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
    "pure-posix-path": pathlib.PurePosixPath("/a/b.txt"),
    "pure-windows-path": pathlib.PureWindowsPath(r"C:\x\y"),
    "posix-path": pathlib.Path("relative/file"),
    "unset": msgspec.UNSET,
}


@pytest.mark.parametrize("value", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_value_round_trips_with_its_exact_type_via_msgpack(plain: Serializer, value: Any) -> None:
    data = plain.dumps(value)
    assert data[0] == 0x01
    assert_same(value, plain.loads(data))


def test_all_examples_together_round_trip_as_tuple_list_and_dict_values(plain: Serializer) -> None:
    values = tuple(EXAMPLES.values())
    roundtrip(values, plain)
    roundtrip([values, list(values)], plain)
    roundtrip({"all": values, 1: values, (1, 2): [values]}, plain)


def test_aware_datetimes_keep_their_offset_and_zone(plain: Serializer) -> None:
    out = roundtrip(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=IST), plain)
    assert out.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert out.isoformat() == "2024-01-02T03:04:05+05:30"
    assert roundtrip(dt.datetime(2024, 1, 2, tzinfo=BRT), plain).isoformat().endswith("-03:00")
    paris = roundtrip(dt.datetime(2024, 1, 15, 9, tzinfo=ZoneInfo("Europe/Paris")), plain)
    assert paris.tzinfo is ZoneInfo("Europe/Paris")
    assert paris.utcoffset() == dt.timedelta(hours=1)
    seconds = dt.timezone(dt.timedelta(hours=-1, seconds=-7, microseconds=-9))
    assert roundtrip(dt.datetime(2024, 1, 1, tzinfo=seconds), plain).tzinfo == seconds


def test_decimal_keeps_exponent(plain: Serializer) -> None:
    assert str(plain.loads(plain.dumps(decimal.Decimal("1.10")))) == "1.10"
    assert plain.loads(plain.dumps(decimal.Decimal("1.10"))).as_tuple().exponent == -2


def test_floats_keep_nan_inf_and_negative_zero(plain: Serializer) -> None:
    assert math.isnan(plain.loads(plain.dumps(float("nan"))))
    assert math.copysign(1.0, plain.loads(plain.dumps(-0.0))) == -1.0
    assert plain.loads(plain.dumps(float("inf"))) == float("inf")


def test_dataclass_is_rebuilt_from_its_fields_without_rerunning_init(plain: Serializer) -> None:
    item = Item("pen", ("a", "b"), decimal.Decimal("2.50"))
    item.computed = 41
    out = plain.loads(plain.dumps(item))
    assert type(out) is Item
    assert out == item
    assert out.computed == 41
    assert type(out.tags) is tuple


def test_struct_unset_field_round_trips(plain: Serializer) -> None:
    order = Order(id=uuid.uuid4(), when=dt.datetime(2024, 1, 1), lines=[], total=decimal.Decimal(0))
    out = plain.loads(plain.dumps(order))
    assert out == order
    assert out.note is msgspec.UNSET


def test_call_round_trip_keeps_tuple_args_and_kwarg_types(plain: Serializer) -> None:
    args = (1, "x", (2, 3), {4, 5}, dt.date(2024, 1, 1))
    kwargs = {"when": dt.datetime(2024, 1, 1, tzinfo=IST), "amount": decimal.Decimal("1.10")}
    out_args, out_kwargs = plain.loads_call(plain.dumps_call(args, kwargs))
    assert_same(args, out_args)
    assert_same(kwargs, out_kwargs)
    assert plain.loads_call(plain.dumps_call((), {})) == ((), {})
    assert plain.loads_call(plain.dumps_call((1, "x"), {})) == ((1, "x"), {})


def test_loads_call_rejects_a_non_call_payload(plain: Serializer) -> None:
    with pytest.raises(DeserializationError, match="does not hold call arguments"):
        plain.loads_call(plain.dumps({"a": 1}))


# -------------------------------------------------------------------- property-based round trip

_fixed_offsets = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=-dt.timedelta(hours=23, minutes=59, seconds=59),
        max_value=dt.timedelta(hours=23, minutes=59, seconds=59),
    ),
)
_tz = st.none() | st.timezones() | _fixed_offsets
_hashable_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**200),
    st.integers(min_value=-(2**200), max_value=-(2**63) - 1),
    st.floats(allow_nan=False),
    st.complex_numbers(allow_nan=False),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.dates(),
    st.times(timezones=_tz),
    st.datetimes(timezones=_tz),
    st.timedeltas(),
    st.sampled_from([*Color, *Level, *Perm, TaskState.SUCCESS]),
)
_hashables = st.recursive(
    _hashable_leaves,
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
_values = st.recursive(
    _hashables | st.builds(bytearray, st.binary(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(_hashables, max_size=4),
        st.frozensets(_hashables, max_size=4),
        st.dictionaries(_hashables, inner, max_size=4),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.builds(Point, st.integers(), st.tuples(st.integers(), st.integers())),
        st.builds(Pair, inner, inner),
    ),
    max_leaves=20,
)
_fast = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@_fast
@given(_values)
def test_any_supported_value_round_trips_with_exact_types(value: Any) -> None:
    s = Serializer()  # no key: a dill fallback would raise, so this proves msgpack carried it
    assert_same(value, s.loads(s.dumps(value)))


@settings(_fast, max_examples=100)
@given(st.lists(_values, max_size=4).map(tuple), st.dictionaries(st.text(max_size=5), _values))
def test_any_supported_call_round_trips_with_exact_types(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    s = Serializer()
    out_args, out_kwargs = s.loads_call(s.dumps_call(args, kwargs))
    assert_same(args, out_args)
    assert_same(kwargs, out_kwargs)


# ------------------------------------------------------------------------------ dill fallback


def _local_instance() -> Any:
    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

        def __eq__(self, other: object) -> bool:
            return type(other).__name__ == "Local" and other.v == self.v  # type: ignore[attr-defined]

        __hash__ = None  # type: ignore[assignment]

    return Local(5)


def test_without_key_fallback_is_refused_naming_the_type(plain: Serializer) -> None:
    assert not plain.dill_enabled
    with pytest.raises(SerializationError, match=r"builtins\.function") as info:
        plain.dumps({"f": lambda x: x})
    assert HINT in str(info.value)
    with pytest.raises(SerializationError, match=r"<locals>\.Local has no exact") as info:
        plain.dumps([_local_instance()])
    assert HINT in str(info.value)

    @dataclasses.dataclass
    class LocalData:
        a: int

    with pytest.raises(SerializationError, match=r"LocalData is defined inside a function"):
        plain.dumps({"x": LocalData(1)})

    class MainStruct(msgspec.Struct):
        a: int

    MainStruct.__module__ = "__main__"
    with pytest.raises(
        SerializationError, match=r"__main__\.test_.*MainStruct is defined in __main__"
    ):
        plain.dumps(MainStruct(1))
    with pytest.raises(SerializationError, match=r"call arguments.*builtins\.object"):
        plain.dumps_call((object(),), {})
    with pytest.raises(SerializationError, match=r"collections\.OrderedDict"):
        plain.dumps(collections.OrderedDict(a=1))


def test_with_key_a_lambda_inside_a_dict_travels_as_signed_dill(keyed: Serializer) -> None:
    data = keyed.dumps({"f": lambda x: x * 2, "t": (1, 2)})
    assert data[0] == 0x02
    out = keyed.loads(data)
    assert out["f"](21) == 42
    assert out["t"] == (1, 2)


def test_with_key_a_local_class_instance_round_trips(keyed: Serializer) -> None:
    value = _local_instance()
    out = keyed.loads(keyed.dumps((value, 2**70)))
    assert out[0].v == 5
    assert type(out[0]).__qualname__ == type(value).__qualname__
    assert out[1] == 2**70


def test_with_key_call_arguments_fall_back_as_a_whole(keyed: Serializer) -> None:
    args, kwargs = keyed.loads_call(keyed.dumps_call((lambda: 7, (1,)), {"k": {2}}))
    assert args[0]() == 7
    assert_same(((1,), {"k": {2}}), (args[1], kwargs))


def test_self_referencing_container(plain: Serializer, keyed: Serializer) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(SerializationError, match="contains itself"):
        plain.dumps(loop)
    out = keyed.loads(keyed.dumps(loop))
    assert out[1] is out


def test_tzinfo_without_exact_encoding_is_not_silently_converted(plain: Serializer) -> None:
    class Fixed(dt.tzinfo):
        def utcoffset(self, d: dt.datetime | None) -> dt.timedelta:
            return dt.timedelta(hours=2)

        def dst(self, d: dt.datetime | None) -> dt.timedelta:
            return dt.timedelta(0)

        def tzname(self, d: dt.datetime | None) -> str:
            return "FIXED"

    with pytest.raises(SerializationError, match="tzinfo of type"):
        plain.dumps(dt.datetime(2024, 1, 1, tzinfo=Fixed()))


def test_str_with_lone_surrogate_needs_dill(plain: Serializer, keyed: Serializer) -> None:
    with pytest.raises(SerializationError, match=HINT.split(" (")[0]):
        plain.dumps("a\ud800")
    assert keyed.loads(keyed.dumps("a\ud800")) == "a\ud800"


def test_one_serializer_is_safe_to_share_between_threads(keyed: Serializer) -> None:
    value = {"t": (1, (2, 3)), 4: {dt.date(2024, 1, 1)}, "d": decimal.Decimal("1.10")}

    def work(i: int) -> bool:
        return all(keyed.loads(keyed.dumps((i, value))) == (i, value) for _ in range(200))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(16)))


# ---------------------------------------------------------------------------------- signatures


def test_dill_payload_with_wrong_mac_is_refused_and_never_unpickled(keyed: Serializer) -> None:
    raw = pickle.dumps(_Evil())
    payload = b"\x02" + b"\x00" * 32 + raw
    with pytest.raises(SignatureError, match="does not match"):
        keyed.loads(payload)
    assert side_effects == []
    assert keyed.loads(sign(KEY, raw)) == "code ran"  # the control: a valid MAC does load it
    side_effects.clear()


def test_dill_payload_signed_with_another_key_is_refused(keyed: Serializer) -> None:
    other = Serializer(secret_key=b"another-key")
    with pytest.raises(SignatureError, match="does not match this OMNIQ_SECRET_KEY"):
        keyed.loads(other.dumps(lambda: 1))
    with pytest.raises(SignatureError):
        keyed.loads_function(other.dumps_function(lambda: 1))
    with pytest.raises(SignatureError, match="does not match"):
        keyed.loads(sign(b"another-key", pickle.dumps(_Evil())))
    assert side_effects == []


def test_dill_payload_is_refused_without_a_key(keyed: Serializer, plain: Serializer) -> None:
    data = keyed.dumps(lambda: 1)
    with pytest.raises(SignatureError, match="no secret key is configured"):
        plain.loads(data)
    with pytest.raises(SignatureError, match="no secret key"):
        plain.loads_function(keyed.dumps_function(lambda: 1))


def test_tampered_or_truncated_dill_payload_is_refused(keyed: Serializer) -> None:
    data = bytearray(keyed.dumps(lambda: 1))
    data[-2] ^= 0xFF
    with pytest.raises(SignatureError):
        keyed.loads(bytes(data))
    with pytest.raises(SignatureError, match="too short"):
        keyed.loads(b"\x02" + b"\x00" * 10)


# ----------------------------------------------------------------------------------- functions


def test_dumps_function_round_trips_lambda_and_closure(keyed: Serializer) -> None:
    factor = 3

    def times(x: int) -> int:
        return x * factor

    assert keyed.loads_function(keyed.dumps_function(times))(2) == 6
    data = keyed.dumps_function(lambda x, y=1: x + y)
    assert data[0] == 0x02
    assert keyed.loads_function(data)(1) == 2


def test_dumps_function_without_key_says_how_to_enable(plain: Serializer) -> None:
    with pytest.raises(SerializationError, match="set OMNIQ_SECRET_KEY"):
        plain.dumps_function(lambda: 1)


def test_loads_function_rejects_non_functions(keyed: Serializer) -> None:
    with pytest.raises(DeserializationError, match="expected a signed dill function"):
        keyed.loads_function(keyed.dumps(1))
    with pytest.raises(DeserializationError, match="not a callable"):
        keyed.loads_function(keyed.dumps({"f": lambda: 1}))
    with pytest.raises(SerializationError, match="expected a callable"):
        keyed.dumps_function(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- bad bytes


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty payload"),
        (b"\x07garbage", "unknown format tag 0x07.*8 bytes, starting 07 67 61"),
        (b"\x01\x92\x01", "corrupt msgpack payload.*3 bytes"),
        (b"\x01\xc1", "corrupt msgpack payload"),
        (b"\x01" + msgspec.msgpack.encode(msgspec.msgpack.Ext(99, b"")), "extension code 99"),
        (b"\x01" + msgspec.msgpack.encode(msgspec.msgpack.Ext(2, b"\xc1")), "corrupt"),
        (b"\x01" + msgspec.msgpack.encode(msgspec.msgpack.Ext(9, b"\x90")), "corrupt"),
    ],
)
def test_garbage_bytes_raise_deserialization_error(
    plain: Serializer, data: bytes, match: str
) -> None:
    with pytest.raises(DeserializationError, match=match) as info:
        plain.loads(data)
    assert not isinstance(info.value, SignatureError)


def _ext(code: int, body: Any) -> bytes:
    return b"\x01" + msgspec.msgpack.encode(msgspec.msgpack.Ext(code, msgspec.msgpack.encode(body)))


def test_unimportable_type_path_raises_naming_it(plain: Serializer) -> None:
    with pytest.raises(DeserializationError, match=r"no_such_module\.Thing"):
        plain.loads(_ext(17, ["no_such_module", "Thing", {}]))
    with pytest.raises(DeserializationError, match=r"os\.NoSuchClass"):
        plain.loads(_ext(16, ["os", "NoSuchClass", 1]))
    with pytest.raises(DeserializationError, match=r"os\.getcwd .* is not a msgspec.Struct"):
        plain.loads(_ext(17, ["os", "getcwd", {}]))
    with pytest.raises(DeserializationError, match="no member with value 99"):
        plain.loads(_ext(16, [Color.__module__, "Color", 99]))
    with pytest.raises(DeserializationError, match="unknown time zone key"):
        plain.loads(_ext(9, [2024, 1, 1, 0, 0, 0, 0, 0, "Mars/Olympus_Mons"]))


# --------------------------------------------------------------------------------- size limits


def test_payload_size_limit_is_enforced_with_both_sizes(plain: Serializer) -> None:
    s = Serializer(max_payload_bytes=100)
    with pytest.raises(PayloadTooLargeError, match="OMNIQ_MAX_PAYLOAD_BYTES") as info:
        s.dumps("x" * 200)
    assert "203 bytes" in str(info.value)
    assert "100 bytes" in str(info.value)
    with pytest.raises(PayloadTooLargeError):
        s.dumps_call(("x" * 200,), {})
    exact = plain.dumps("y" * 90)
    assert Serializer(max_payload_bytes=len(exact)).dumps("y" * 90) == exact
    with pytest.raises(PayloadTooLargeError):
        Serializer(secret_key=KEY, max_payload_bytes=100).dumps_function(lambda: "z" * 500)


def test_invalid_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="OMNIQ_MAX_PAYLOAD_BYTES"):
        Serializer(max_payload_bytes=0)
    with pytest.raises(ConfigError, match="OMNIQ_SECRET_KEY"):
        Serializer(secret_key=b"")
    assert Serializer(secret_key=KEY).dill_enabled
    assert "test-secret-key" not in repr(Serializer(secret_key=KEY))


# ------------------------------------------------------------------------------- error_info


def _fail() -> None:
    raise CustomError("it broke: 42")


def test_error_info_carries_type_path_message_and_traceback() -> None:
    try:
        _fail()
    except CustomError as exc:
        info = error_info(exc)
    assert info.type == f"{__name__}.CustomError"
    assert info.message == "it broke: 42"
    assert 'raise CustomError("it broke: 42")' in info.traceback
    assert "in _fail" in info.traceback
    assert info.traceback.rstrip().endswith("CustomError: it broke: 42")


def test_error_info_of_builtin_and_unraised_exceptions() -> None:
    assert error_info(ValueError("bad")) == ErrorInfo(
        type="builtins.ValueError", message="bad", traceback="ValueError: bad\n"
    )

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    assert error_info(Unprintable()).message.startswith("<unprintable")


def test_type_path() -> None:
    assert type_path(ValueError) == "builtins.ValueError"
    assert type_path(Outer.Inner) == f"{__name__}.Outer.Inner"
    assert type_path(ErrorInfo) == "omniq.models.ErrorInfo"

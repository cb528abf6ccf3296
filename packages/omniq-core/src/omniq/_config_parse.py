"""Reading and validating settings: per-field facts, ``OMNIQ_*`` variables, collected problems.

:func:`field_infos` derives from a settings struct's declared types what loading needs to know
about each field; :func:`read_env` and :func:`normalize` turn variables and arguments into data
for msgspec; :func:`validate` converts it, reporting every rejected value at once. The settings
struct itself, its prefix and its literal types come from :mod:`omniq.config`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import msgspec
import msgspec.inspect as mi

from omniq._config_text import LiteralOrder, SettingDoc, default_text, expected_text, suggest
from omniq.errors import ConfigError

__all__ = ["FieldInfo", "field_infos", "normalize", "read_env", "source_text", "validate"]

_S = TypeVar("_S", bound=msgspec.Struct)

_BOOL_ALIASES = {"yes": True, "on": True, "no": False, "off": False}
_NONE_WORDS = frozenset({"", "none", "null"})
_PATH_RE = re.compile(r"`\$\.([A-Za-z_][A-Za-z0-9_]*)")  # "at `$.f`", "at `key` in `$.f`"


class FieldInfo:
    """What :func:`~omniq.config.load_settings` needs to know about one field, from its type."""

    __slots__ = (
        "bool_",
        "doc",
        "env",
        "expected",
        "literal_case",
        "mapping",
        "name",
        "optional",
        "secret",
    )

    def __init__(self, field: mi.Field, prefix: str, order: LiteralOrder) -> None:
        self.name = field.name
        self.env = prefix + field.name.upper()
        extra: dict[str, Any] = {}
        description = ""
        typ = field.type
        if isinstance(typ, mi.Metadata):
            extra = dict(typ.extra or {})
            description = str((typ.extra_json_schema or {}).get("description", ""))
            typ = typ.type
        self.optional = isinstance(typ, mi.UnionType) and any(
            isinstance(t, mi.NoneType) for t in typ.types
        )
        core = _strip_none(typ)
        self.bool_ = isinstance(core, mi.BoolType)
        self.mapping = isinstance(core, mi.DictType)
        self.literal_case: Literal["upper", "lower"] | None = None
        if isinstance(core, mi.LiteralType):
            self.literal_case = _literal_case(core)
        elif extra.get("case") in ("upper", "lower"):  # a free-form name folded to one case
            self.literal_case = extra["case"]
        self.secret = bool(extra.get("secret", False))
        expected = str(extra.get("expected") or expected_text(core, order, unit=extra.get("unit")))
        if self.optional:
            expected += f", or none/empty ({extra.get('none', 'unset')})"
        self.expected = expected
        self.doc = SettingDoc(
            name=field.name,
            env=self.env,
            accepted=expected,
            default=str(extra.get("default_text") or default_text(field.default, extra)),
            description=description,
        )


def _strip_none(typ: mi.Type) -> mi.Type:
    if isinstance(typ, mi.UnionType):
        rest = [t for t in typ.types if not isinstance(t, mi.NoneType)]
        if len(rest) == 1:
            return rest[0]
    return typ


def _literal_case(typ: mi.LiteralType) -> Literal["upper", "lower"]:
    return "upper" if all(str(v).isupper() for v in typ.values) else "lower"


def field_infos(
    struct: type[msgspec.Struct], prefix: str, order: LiteralOrder
) -> dict[str, FieldInfo]:
    """Describe every field of ``struct``, in field order; variables are ``prefix`` + NAME."""
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    return {f.name: FieldInfo(f, prefix, order) for f in info.fields}


def source_text(info: FieldInfo, value: Any, *, from_env: bool) -> str:
    """Name where a value came from, for messages: ``OMNIQ_X='v'`` or ``argument x='v'``."""
    shown = "'***'" if info.secret else repr(value)
    if from_env:
        return f"{info.env}={shown}"
    return f"argument {info.name}={shown}"


def normalize(info: FieldInfo, value: Any) -> Any:
    """Adapt spellings msgspec does not accept by itself; msgspec does the conversion."""
    if isinstance(value, str):
        text = value.strip()
        word = text.lower()
        if info.optional and word in _NONE_WORDS:
            return None
        if info.bool_:
            return _BOOL_ALIASES.get(word, text)
        if info.literal_case is not None:
            return text.upper() if info.literal_case == "upper" else word
        return text
    if info.mapping and isinstance(value, Mapping):
        return {
            (k.strip().removeprefix("omniq.") if isinstance(k, str) else k): (
                v.strip().upper() if isinstance(v, str) else v
            )
            for k, v in value.items()
        }
    return value


def read_env(
    source_env: Mapping[str, str],
    by_env: Mapping[str, FieldInfo],
    *,
    skip: set[str],
    prefix: str,
    ignored: tuple[str, ...],
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Read the ``prefix`` variables of ``source_env``, in sorted order.

    Variables under an ``ignored`` prefix, and those of fields named in ``skip`` (given as
    arguments, which win), are not parsed.

    Returns:
        ``(data, sources, problems)``: normalized values and where each came from, by field
        name, and a message for each unknown variable or undecodable value.
    """
    problems: list[str] = []
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    env_names = list(by_env)
    for key in sorted(source_env):
        upper = key.upper()
        if not upper.startswith(prefix) or upper.startswith(ignored):
            continue
        info = by_env.get(key)
        if info is None:
            if upper in by_env:
                problems.append(
                    f"{key} is not an OmniQ variable: names are upper-case, use {upper}"
                )
            else:
                problems.append(
                    f"unknown environment variable {key}: {suggest(upper, env_names, prefix)}"
                )
            continue
        if info.name in skip:  # the argument wins; its variable is not even parsed
            continue
        raw = source_env[key]
        sources[info.name] = source_text(info, raw, from_env=True)
        value: Any = raw
        if info.mapping:
            text = raw.strip()
            try:
                value = msgspec.json.decode(text) if text else {}
            except msgspec.DecodeError as exc:
                problems.append(
                    f"{sources[info.name]} is invalid: not JSON ({exc}); expected {info.expected}"
                )
                continue
        data[info.name] = normalize(info, value)
    return data, sources, problems


def validate(
    struct: type[_S],
    fields: Mapping[str, FieldInfo],
    data: dict[str, Any],
    sources: Mapping[str, str],
    problems: list[str],
) -> _S:
    """Convert ``data`` to ``struct``, dropping and reporting each rejected value in turn.

    Returns:
        The validated struct, if neither ``problems`` nor conversion found anything wrong.

    Raises:
        ConfigError: listing every problem, each naming its variable or argument.
    """
    result: _S | None = None
    error: msgspec.ValidationError | None = None
    while result is None:
        try:
            result = msgspec.convert(data, struct, strict=False)
        except msgspec.ValidationError as exc:
            error = exc
            match = _PATH_RE.search(str(exc))
            bad = match.group(1) if match else None
            if bad is None or bad not in data:  # pragma: no cover - msgspec always names the path
                raise ConfigError(f"invalid OmniQ settings: {exc}") from exc
            info = fields[bad]
            detail = ""
            if info.mapping:
                detail = (
                    " (a key is not a dotted component name like backend.sqlite)"
                    if "at `key`" in str(exc)
                    else " (" + str(exc).split(" - at `", 1)[0] + ")"
                )
            problems.append(f"{sources[bad]} is invalid: expected {info.expected}{detail}")
            del data[bad]

    if problems:
        message = (
            problems[0]
            if len(problems) == 1
            else "invalid OmniQ settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )
        raise ConfigError(message) from error
    return result

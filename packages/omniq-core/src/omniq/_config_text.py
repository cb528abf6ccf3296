"""Settings in words: accepted values, defaults and the docs table.

The same phrases document a setting (:class:`SettingDoc`, ``docs/configuration.md``) and explain
a rejected value in a :class:`~omniq.errors.ConfigError`, so docs and messages cannot disagree.
Nothing here knows :class:`~omniq.config.Settings`; :mod:`omniq.config` passes in what it needs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import msgspec.inspect as mi

__all__ = [
    "LiteralOrder",
    "SettingDoc",
    "bounds_text",
    "default_text",
    "expected_text",
    "markdown_table",
    "suggest",
]

LiteralOrder = Mapping[frozenset[Any], tuple[Any, ...]]
"""Declared order of literal values, keyed by the set of values (msgspec reports them sorted)."""


class SettingDoc(msgspec.Struct, frozen=True, kw_only=True):
    """Documentation of one setting, as listed by :meth:`Settings.describe`.

    Attributes:
        name: field name of :class:`Settings` and keyword of :func:`load_settings`.
        env: environment variable, e.g. ``"OMNIQ_MAX_WORKERS"``.
        accepted: the accepted values in words, e.g. ``"an integer ≥ 1"``.
        default: the default in words, e.g. ``"10"`` or ``"unset"``.
        description: what the setting does.
    """

    __module__ = "omniq.config"  # public home, re-exported there

    name: str
    env: str
    accepted: str
    default: str
    description: str


def bounds_text(base: str, typ: mi.IntType | mi.FloatType) -> str:
    """Append a number type's bounds to ``base``: ``"an integer ≥ 1"``, ``"… from 1 to 60"``."""
    if typ.ge is not None and typ.le is not None:
        return f"{base} from {typ.ge:g} to {typ.le:g}"
    parts = [
        f"{sign} {bound:g}"
        for sign, bound in (("≥", typ.ge), (">", typ.gt), ("≤", typ.le), ("<", typ.lt))
        if bound is not None
    ]
    return " ".join([base, " and ".join(parts)]) if parts else base


def expected_text(typ: mi.Type, order: LiteralOrder, *, unit: str | None = None) -> str:
    """Describe the values ``typ`` accepts, literal values in their ``order`` of declaration."""
    if isinstance(typ, mi.Metadata):
        return expected_text(typ.type, order, unit=unit)
    if isinstance(typ, mi.IntType):
        return bounds_text("an integer", typ)
    if isinstance(typ, mi.FloatType):
        return bounds_text(f"a number of {unit}" if unit else "a number", typ)
    if isinstance(typ, mi.BoolType):
        return "a boolean: true/false, 1/0, yes/no, on/off (case-insensitive)"
    if isinstance(typ, mi.LiteralType):
        values = order.get(frozenset(typ.values), typ.values)  # declared, not sorted
        return "one of " + ", ".join(str(v) for v in values) + " (case-insensitive)"
    if isinstance(typ, mi.DictType):
        return (
            'a JSON object such as {"worker": "DEBUG"} mapping dotted component names to '
            + expected_text(typ.value_type, order)
        )
    return "a string"


def default_text(default: Any, extra: Mapping[str, Any]) -> str:
    """Describe a default value; ``None`` reads as the field's ``extra["none"]`` (``"unset"``)."""
    if default is None:
        return str(extra.get("none", "unset"))
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def suggest(name: str, candidates: list[str], prefix: str = "") -> str:
    """Suggest close matches of ``name``, comparing the parts after the shared ``prefix``."""
    stems = {c.removeprefix(prefix): c for c in candidates}
    matches = difflib.get_close_matches(name.removeprefix(prefix), list(stems), n=3, cutoff=0.6)
    if matches:
        return "did you mean " + " or ".join(stems[m] for m in matches) + "?"
    return "no such setting; known names: " + ", ".join(candidates)


def markdown_table(docs: Iterable[SettingDoc]) -> str:
    """Render setting docs as a Markdown table, one row per variable, ending with a newline."""
    rows = [
        "| Variable | Accepted values | Default | Meaning |",
        "| --- | --- | --- | --- |",
    ]
    for doc in docs:
        cells = (f"`{doc.env}`", doc.accepted, doc.default, doc.description)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"

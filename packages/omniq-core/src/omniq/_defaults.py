"""The ``DEFAULT`` marker: "use the configured default", as opposed to ``None`` ("none at all")."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["DEFAULT", "Default"]


class Default(enum.Enum):
    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = Default.DEFAULT

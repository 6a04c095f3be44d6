"""Whole numbers from text, as people type them: ASCII digits only, within 64 bits.

`str.isdigit()` is not a number check: it accepts '²' and other digits `int()` refuses.
"""

from __future__ import annotations

import re

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")


def parse_int(text: str, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int | None:
    """The integer `text` spells (surrounding blanks allowed), or None if it is not one in [low, high]."""
    text = text.strip()
    if not _INTEGER.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None

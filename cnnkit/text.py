"""Small text helpers every layer shares: one copy each, so a message reads the same wherever it is made.

Below every sub-package: imports only the standard library.
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable, Sequence


def did_you_mean(word: str, choices: Iterable) -> str | None:
    """'did you mean ...?' for a misspelled name (case-insensitive, up to three candidates), or None."""
    choices = [str(c) for c in choices]
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{lowered[c]}'" for c in close) + "?"


def shape_text(shape: Sequence) -> str:
    """(28, 28, 1) -> '28×28×1'; an unknown dimension (None) shows as '?'."""
    return "×".join("?" if d is None else str(d) for d in shape)


def compact_number(n: float | int | None) -> str:
    """121930 -> '121.93K', 3.2e9 -> '3.20G': params and MACs are read for magnitude, not digits."""
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


# Every character str.splitlines() breaks on: a key or value holding one must not split an error line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    """``text`` with line breaks written as escapes (``\\n``), so an error quoting the user's text stays one line."""
    return text.translate(_LINE_BREAKS)


def squeeze(text: str, limit: int = 300) -> str:
    """Someone else's message (a library's, an OS's) as one line of at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slug(name: str, fill: str = "-", empty: str = "run") -> str:
    """Free text (a spec's name) as a file or Keras name: runs of other characters become `fill`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", fill, name).strip(fill) or empty

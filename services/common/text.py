"""Stored and configured text made safe to show on a terminal."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Every control character: C0 (U+0000-U+001F, tab and newline included), DEL and C1
# (U+007F-U+009F), shown as its Python escape: ESC as \x1b, newline as \n, CSI as \x9b.
# An escape sequence is thereby inert: its ESC shows as \x1b and the rest as plain text.
_ESCAPES = {code: repr(chr(code))[1:-1] for code in (*range(0x20), *range(0x7F, 0xA0))}


def printable(text: str, *, keep: str = "") -> str:
    """``text`` with each control character, except those in ``keep``, shown as its
    escape: ``printable("a\\x1b[2J")`` is ``'a\\\\x1b[2J'``."""
    table = _ESCAPES if not keep else {code: shown for code, shown in _ESCAPES.items() if chr(code) not in keep}
    return text.translate(table)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` naming the known name closest to ``name`` (case and
    ``-``/``_`` aside), or ``""`` when none is close."""
    candidates = {candidate.lower().replace("-", "_"): candidate for candidate in known}
    close = difflib.get_close_matches(name.lower().replace("-", "_"), candidates, n=1, cutoff=0.6)
    return f"did you mean {candidates[close[0]]!r}? " if close else ""

"""Text that cannot be stored or shown: lone surrogates.

Python decodes undecodable bytes (a terminal's `surrogateescape`, JSON's `\\ud800`
escapes) into lone surrogates: they are not text, SQLite and UTF-8 refuse them,
so every face and parser finds them here and says where they are.
"""

from __future__ import annotations

import re

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> re.Match[str] | None:
    """The first lone surrogate in `text`, or None; cheap for ASCII."""
    if text.isascii():
        return None
    return _LONE_SURROGATE.search(text)

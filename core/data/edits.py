"""What users keep, delete and add when they edit an AI draft.

Acceptance is the share of the draft's characters that survive into the final
text, measured on a word-level diff (whitespace runs count with the word before
them, so reflowing text costs nothing):

    acceptance = characters of the draft inside matching blocks / characters of the draft

It is 1.0 when the user approved the draft unedited (or gave no final text),
falls as more of the draft is deleted or rewritten, and is 0.0 when nothing of
the draft survived. Adding text does not lower it: acceptance measures what of
the AI's work was kept, and `added_chars` reports the rest.

Edit operations are the diff's non-matching blocks: each says what was deleted
from the draft and what was added in its place, with character offsets.

The diff runs on the edited middle (the common head and tail are cut off
first). Its cost grows with the product of the two middles' word counts, so
beyond `MAX_DIFF_CELLS` (two rewritten texts of well over a thousand words each)
the middle counts as one replacement: acceptance then credits only the common
head and tail, and no input can make an ingest stall on one event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from itertools import accumulate

from pydantic import BaseModel

_PIECE = re.compile(r"\s*\S+")
MAX_OP_TEXT = 500  # keep stored spans bounded; offsets locate the full text
MAX_DIFF_CELLS = 2_000_000  # draft words × final words diffed exactly (about 0.3 s at worst)


class EditOp(BaseModel):
    op: str  # "delete", "insert" or "replace"
    draft_span: tuple[int, int]
    final_span: tuple[int, int]
    deleted: str
    added: str


class EditSummary(BaseModel):
    acceptance: float
    deleted_chars: int
    added_chars: int
    ops: list[EditOp]


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by binary search over slice comparisons (done in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _common_suffix(a: str, b: str, limit: int) -> int:
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            low = mid
        else:
            high = mid - 1
    return low


def _word_start(text: str, i: int) -> bool:
    return i == 0 or i == len(text) or text[i - 1].isspace()


def _trim(draft: str, final: str) -> tuple[int, int]:
    """Common head and tail lengths, snapped to word boundaries in both texts.

    Most edits touch a small part of a draft; diffing only the middle keeps
    ingest fast without changing the result.
    """
    head = _common_prefix(draft, final)
    while head and not (_word_start(draft, head) and _word_start(final, head)):
        head -= 1
    tail = _common_suffix(draft, final, min(len(draft), len(final)) - head)
    while tail and not (_word_start(draft, len(draft) - tail) and _word_start(final, len(final) - tail)):
        tail -= 1
    return head, tail


def _words(text: str, base: int) -> tuple[list[str], list[int]]:
    """Words (whitespace dropped, so reflowing costs nothing) and their offsets, plus the end offset."""
    pieces = _PIECE.findall(text)  # each: leading whitespace + one word
    offsets = list(accumulate((len(p) for p in pieces), initial=base))
    lead = len(text) - len(text.lstrip())
    if pieces:
        offsets = [base + lead, *offsets[1:]]
    return text.split(), offsets


def _opcodes(a_words: list[str], b_words: list[str]) -> Sequence[tuple[str, int, int, int, int]]:
    """The word diff's blocks; one replacement of everything when an exact diff would cost too much."""
    if not a_words and not b_words:
        return []
    if len(a_words) * len(b_words) > MAX_DIFF_CELLS:
        return [("replace", 0, len(a_words), 0, len(b_words))]
    return SequenceMatcher(None, a_words, b_words, autojunk=False).get_opcodes()


def compare(draft: str, final: str | None) -> EditSummary:
    """Acceptance and edit operations of `final` against `draft`."""
    if final is None or final == draft:
        return EditSummary(acceptance=1.0, deleted_chars=0, added_chars=0, ops=[])
    if not draft:
        return EditSummary(acceptance=0.0 if final else 1.0, deleted_chars=0, added_chars=len(final), ops=[])
    head, tail = _trim(draft, final)
    a_mid, b_mid = draft[head : len(draft) - tail], final[head : len(final) - tail]
    a_words, a_off = _words(a_mid, head)
    b_words, b_off = _words(b_mid, head)
    a_off[-1], b_off[-1] = len(draft) - tail, len(final) - tail
    kept = head + tail + (len(a_mid) if not a_words else 0)  # a whitespace-only change keeps everything
    deleted = added = 0
    ops: list[EditOp] = []
    opcodes = _opcodes(a_words, b_words)
    for tag, i1, i2, j1, j2 in opcodes:
        a_span, b_span = (a_off[i1], a_off[i2]), (b_off[j1], b_off[j2])
        if tag == "equal":
            kept += a_span[1] - a_span[0]
            continue
        removed, inserted = draft[a_span[0] : a_span[1]], final[b_span[0] : b_span[1]]
        deleted += len(removed)
        added += len(inserted)
        ops.append(
            EditOp(
                op=tag,
                draft_span=a_span,
                final_span=b_span,
                deleted=removed[:MAX_OP_TEXT],
                added=inserted[:MAX_OP_TEXT],
            )
        )
    return EditSummary(
        acceptance=round(min(kept, len(draft)) / len(draft), 4), deleted_chars=deleted, added_chars=added, ops=ops
    )

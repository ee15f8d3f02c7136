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
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from pydantic import BaseModel

_WORD = re.compile(r"\S+\s*|\s+")
MAX_OP_TEXT = 500  # keep stored spans bounded; offsets locate the full text


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


def _words(text: str) -> tuple[list[str], list[int]]:
    words, offsets = [], []
    for match in _WORD.finditer(text):
        words.append(match.group().rstrip() or match.group())
        offsets.append(match.start())
    offsets.append(len(text))
    return words, offsets


def compare(draft: str, final: str | None) -> EditSummary:
    """Acceptance and edit operations of `final` against `draft`."""
    if final is None or final == draft:
        return EditSummary(acceptance=1.0, deleted_chars=0, added_chars=0, ops=[])
    if not draft:
        return EditSummary(acceptance=0.0 if final else 1.0, deleted_chars=0, added_chars=len(final), ops=[])
    a_words, a_off = _words(draft)
    b_words, b_off = _words(final)
    matcher = SequenceMatcher(None, a_words, b_words, autojunk=False)
    kept = deleted = added = 0
    ops: list[EditOp] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        a_span, b_span = (a_off[i1], a_off[i2]), (b_off[j1], b_off[j2])
        if tag == "equal":
            kept += a_span[1] - a_span[0]
            continue
        removed, inserted = draft[a_span[0] : a_span[1]], final[b_span[0] : b_span[1]]
        deleted += len(removed)
        added += len(inserted)
        ops.append(
            EditOp(op=tag, draft_span=a_span, final_span=b_span, deleted=removed[:MAX_OP_TEXT], added=inserted[:MAX_OP_TEXT])
        )
    return EditSummary(acceptance=round(kept / len(draft), 4), deleted_chars=deleted, added_chars=added, ops=ops)

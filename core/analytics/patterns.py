"""Edit patterns: the phrases users delete from an agent's drafts and add to them, turned into suggestions.

Phrases are word n-grams of 1 to 4 words, normalised: lowercase, punctuation
trimmed from both ends of each word (inside a word it stays: "don't", "30-day"),
words of punctuation only dropped, except markup (`#`, `**`, `-`, `>`, fences),
which is kept so formatting edits show. A phrase never spans the end of a
sentence or clause (a word ending in . ! ? ; or :), so two habits that sit side
by side ("Let me analyze this. I think...") stay two phrases. Deleted phrases come from the deleted
side of each stored edit operation, added ones from the added side; a phrase
counts once per draft. Per phrase and agent:

- support: edited drafts where users deleted (or added) it;
- frequency: support over the agent's edited drafts;
- lift: for a deletion, how much more often the phrase appears in drafts that
  got edited than in drafts accepted unedited; for an addition, how much more
  often users add it than unedited drafts already hold it. Both read presence
  from a fixed sample of drafts (every `SAMPLE_EVERY`-th feedback row, the
  first `MAX_DRAFT_CHARS` characters of each), counted from the moment the
  phrase is tracked, and are smoothed by half a draft (so nothing divides by
  zero). A phrase whose lift is below `min_lift` is what every draft says, not
  a pattern;
- an example diff: the first edit operation it was seen in.

Categories come from a keyword classifier (first match wins; the lexicons are
below): formatting (markup), filler removed (openers and pleasantries such as
"let me", "happy to help", "great question"), hedging removed ("might",
"perhaps", "i think"), length (padding such as "in summary", "furthermore"),
tone (apologies, politeness, greetings), and otherwise content added or
content removed. Each pattern becomes a suggestion sentence and an action:
a prompt experiment for style (filler, hedging, tone, length, formatting),
DPO pairs of draft and final for content.

Mining is incremental, like the rollups: each run reads only feedback rows past
its watermark and keeps per-agent counts in `analytics_phrases`. Those counts
stay bounded with lossy counting (Manku and Motwani, 2002) over each agent's
edited drafts in buckets of `BUCKET`: a phrase in fewer than one draft in
`BUCKET` is eventually pruned, and any phrase kept is undercounted by at most
that share, so every phrase frequent enough to report is counted to within
1/`BUCKET` of its true frequency.
"""

from __future__ import annotations

import json
import string
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.analytics import db
from core.data.edits import MAX_OP_TEXT
from core.errors import InvalidInput, NotFound
from core.platform.store import Store

WATERMARK = "patterns"
MAX_N = 4
SAMPLE_EVERY = 8  # drafts read for presence: feedback rows whose rowid is a multiple of this
MAX_DRAFT_CHARS = 20_000
MAX_PHRASE_CHARS = 120
BUCKET = 500  # lossy counting's bucket width, in edited drafts: counts are exact to within 1/BUCKET
BATCH_ROWS = 20_000  # feedback rows mined per transaction
EXAMPLE_CHARS = 240
CANDIDATES = 400  # most supported phrases considered for a report
MIN_LIFT_SAMPLE = 20  # unedited drafts in the presence sample before a lift is trusted
CONTAINED = 0.8  # a phrase inside or overlapping a kept one, with this share of its support, is the same habit

_PUNCTUATION = string.punctuation + "“”‘’«»„…–—¡¿·•"
_MARKUP = frozenset("#*-_>|`~=+")
_ENDS = frozenset(".!?;:")  # punctuation that ends a run of words


class PhraseKind(StrEnum):
    DELETED = "deleted"
    ADDED = "added"


class PatternCategory(StrEnum):
    """What kind of edit a phrase stands for."""

    FILLER_REMOVED = "filler removed"
    HEDGING_REMOVED = "hedging removed"
    CONTENT_ADDED = "content added"
    CONTENT_REMOVED = "content removed"
    TONE = "tone"
    LENGTH = "length"
    FORMATTING = "formatting"


class SuggestedAction(StrEnum):
    PROMPT_EXPERIMENT = "prompt_experiment"  # change the system prompt and test it against the current one
    DPO_PAIRS = "dpo_pairs"  # train on (draft, final) preference pairs


FILLER = (
    "let me", "allow me", "happy to help", "i'd be happy", "i would be happy", "great question", "good question",
    "certainly", "of course", "absolutely", "sure", "as an ai", "hope this helps", "feel free", "here is", "here's",
    "analyze this", "let's dive", "i understand", "thank you for reaching out", "thanks for reaching out", "basically",
)  # fmt: skip
HEDGING = (
    "might", "may", "perhaps", "possibly", "maybe", "i think", "i believe", "it seems", "seems", "could be",
    "likely", "probably", "appears", "somewhat", "not sure", "generally", "typically", "in some cases",
)  # fmt: skip
LENGTH = (
    "in summary", "in conclusion", "to summarize", "to sum up", "overall", "additionally", "furthermore",
    "moreover", "in addition", "as mentioned", "to recap", "in other words", "that being said",
)  # fmt: skip
TONE = (
    "sorry", "apologize", "apologies", "unfortunately", "please", "kindly", "dear", "regret", "thank you", "thanks",
    "appreciate", "hi", "hello", "hey", "cheers", "regards", "sincerely", "excited", "delighted", "awesome",
)  # fmt: skip
_LEXICONS: tuple[tuple[PatternCategory, tuple[str, ...], frozenset[PhraseKind]], ...] = (
    (PatternCategory.FILLER_REMOVED, FILLER, frozenset({PhraseKind.DELETED})),
    (PatternCategory.HEDGING_REMOVED, HEDGING, frozenset({PhraseKind.DELETED})),
    (PatternCategory.LENGTH, LENGTH, frozenset({PhraseKind.DELETED})),
    (PatternCategory.TONE, TONE, frozenset(PhraseKind)),
)
_ADVICE: dict[PatternCategory, tuple[str, SuggestedAction]] = {
    PatternCategory.FILLER_REMOVED: ("remove it from the prompt", SuggestedAction.PROMPT_EXPERIMENT),
    PatternCategory.HEDGING_REMOVED: ("ask for direct answers in the prompt", SuggestedAction.PROMPT_EXPERIMENT),
    PatternCategory.LENGTH: ("ask for shorter answers in the prompt", SuggestedAction.PROMPT_EXPERIMENT),
    PatternCategory.TONE: ("set the tone users want in the prompt", SuggestedAction.PROMPT_EXPERIMENT),
    PatternCategory.FORMATTING: ("say which formatting to use in the prompt", SuggestedAction.PROMPT_EXPERIMENT),
    PatternCategory.CONTENT_ADDED: (
        "train on DPO pairs of these drafts and their finals so the model includes it",
        SuggestedAction.DPO_PAIRS,
    ),
    PatternCategory.CONTENT_REMOVED: (
        "train on DPO pairs of these drafts and their finals so the model leaves it out",
        SuggestedAction.DPO_PAIRS,
    ),
}


# Phrases -------------------------------------------------------------------------------------------------------


def runs(text: str) -> list[list[str]]:
    """The normalised words of `text` (see the module doc), in runs that end where a sentence or clause does."""
    found: list[list[str]] = []
    run: list[str] = []
    for token in text.split():
        lowered = token.lower()
        trimmed = lowered.strip(_PUNCTUATION)
        if trimmed:
            run.append(trimmed)
            if _ENDS & set(lowered[len(lowered.rstrip(_PUNCTUATION)) :]):
                found.append(run)
                run = []
        elif len(lowered) <= 6 and set(lowered) <= _MARKUP:
            run.append(lowered)
    return [*found, run] if run else found


def words(text: str) -> list[str]:
    """The normalised words of `text`, all runs together."""
    return [word for run in runs(text) for word in run]


def normalise_phrase(text: str) -> str:
    """`text` as patterns name phrases: "Let me analyze this." is "let me analyze this"."""
    return " ".join(words(text))


def edits_show(ops_json: str | None, wanted: Collection[str]) -> bool:
    """Whether stored edit operations deleted or added any of the `wanted` phrases (normalised), within one run of
    words as mining counts them: the edited drafts a pattern's support counts are exactly those that show it."""
    for op in _ops(ops_json):
        for kind in PhraseKind:
            for run in _edited_runs(str(op.get(kind.value) or "")):
                text = f" {' '.join(run)} "
                if any(f" {phrase} " in text for phrase in wanted):
                    return True
    return False


def phrases(word_runs: list[list[str]], *, max_n: int = MAX_N) -> set[str]:
    """Every run of 1 to `max_n` consecutive words within one run, as text (longer than MAX_PHRASE_CHARS left out).

    A phrase never spans the end of a sentence: "Let me check. I think" yields no "check i think".
    """
    found = set()
    for tokens in word_runs:
        for n in range(1, max_n + 1):
            for start in range(len(tokens) - n + 1):
                phrase = " ".join(tokens[start : start + n])
                if len(phrase) <= MAX_PHRASE_CHARS:
                    found.add(phrase)
    return found


def _edited_runs(text: str) -> list[list[str]]:
    """Runs of one side of an edit operation; a side cut at MAX_OP_TEXT loses its last, possibly cut, word."""
    found = runs(text)
    if len(text) >= MAX_OP_TEXT and found:
        found[-1] = found[-1][:-1]
    return found


def categorize(phrase: str, kind: PhraseKind) -> PatternCategory:
    """The category of a deleted or added phrase (see the module doc)."""
    tokens = phrase.split()
    if any(set(token) <= _MARKUP for token in tokens):
        return PatternCategory.FORMATTING
    padded = f" {phrase} "
    for category, lexicon, kinds in _LEXICONS:
        if kind in kinds and any(f" {entry} " in padded for entry in lexicon):
            return category
    return PatternCategory.CONTENT_ADDED if kind == PhraseKind.ADDED else PatternCategory.CONTENT_REMOVED


# Mining ----------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    support: int
    slack: int
    present_edited: int
    present_unedited: int
    base_edited: int
    base_unedited: int
    example: str


@dataclass
class _AgentCounts:
    """One agent's phrase counts while a run mines: loaded once, written back after every batch."""

    totals: dict[str, int]
    entries: dict[PhraseKind, dict[str, _Entry]]
    dirty: set[tuple[PhraseKind, str]] = field(default_factory=set)
    removed: set[tuple[PhraseKind, str]] = field(default_factory=set)

    @classmethod
    def load(cls, store: Store, agent: str) -> _AgentCounts:
        totals = db.phrase_totals(store, agent) or dict.fromkeys(db.TOTAL_COLUMNS, 0)
        entries = {
            kind: {row.pop("phrase"): _Entry(**row) for row in db.phrases(store, agent, kind)} for kind in PhraseKind
        }
        return cls(totals=dict(totals), entries=entries)

    def edited(self, event_id: str, ops: list[dict[str, Any]]) -> None:
        """Count the phrases one edited draft lost and gained, then prune at a bucket's end."""
        self.totals["edited"] += 1
        bucket = -(-self.totals["edited"] // BUCKET)
        for kind in PhraseKind:
            seen: set[str] = set()
            for op in ops:
                for phrase in phrases(_edited_runs(str(op.get(kind.value) or ""))) - seen:
                    seen.add(phrase)
                    self._count(kind, phrase, bucket, event_id, op)
        if self.totals["edited"] % BUCKET == 0:
            self._prune(bucket)

    def _count(self, kind: PhraseKind, phrase: str, bucket: int, event_id: str, op: dict[str, Any]) -> None:
        entry = self.entries[kind].get(phrase)
        if entry is None:
            example = json.dumps(
                {"event": event_id, "deleted": str(op.get("deleted") or "")[:EXAMPLE_CHARS],
                 "added": str(op.get("added") or "")[:EXAMPLE_CHARS]}, ensure_ascii=False,
            )  # fmt: skip
            entry = _Entry(0, bucket - 1, 0, 0, self.totals["sampled_edited"], self.totals["sampled_unedited"], example)
            self.entries[kind][phrase] = entry
            self.removed.discard((kind, phrase))
        entry.support += 1
        self.dirty.add((kind, phrase))

    def _prune(self, bucket: int) -> None:
        for kind, entries in self.entries.items():
            for phrase in [p for p, e in entries.items() if e.support + e.slack <= bucket]:
                del entries[phrase]
                self.dirty.discard((kind, phrase))
                self.removed.add((kind, phrase))

    def sampled(self, draft: str, *, edited: bool) -> None:
        """Count which tracked phrases a sampled draft holds."""
        self.totals["sampled_edited" if edited else "sampled_unedited"] += 1
        for phrase in phrases(runs(draft[:MAX_DRAFT_CHARS])):
            for kind in PhraseKind:
                entry = self.entries[kind].get(phrase)
                if entry is not None:
                    if edited:
                        entry.present_edited += 1
                    else:
                        entry.present_unedited += 1
                    self.dirty.add((kind, phrase))

    def save(self, store: Store, agent: str) -> None:
        upserts = []
        for kind, phrase in self.dirty:
            e = self.entries[kind][phrase]
            upserts.append((kind, phrase, e.support, e.slack, e.present_edited, e.present_unedited,
                            e.base_edited, e.base_unedited, e.example))  # fmt: skip
        db.save_phrases(store, agent=agent, totals=self.totals, upserts=upserts, removed=sorted(self.removed))
        self.dirty.clear()
        self.removed.clear()


class MiningRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    rows_read: int
    edited: int
    last_rowid: int


class _Raced(Exception):
    """Another run moved the watermark while this one mined: its counts stand, this batch's are dropped."""


def mine_patterns(store: Store, *, batch_rows: int = BATCH_ROWS, sample_every: int = SAMPLE_EVERY) -> MiningRun:
    """Fold the edit operations of every feedback row written since the last run into the phrase counts."""
    upto = db.last_feedback_rowid(store)
    after = db.watermark(store, WATERMARK).last_rowid
    counts: dict[str, _AgentCounts] = {}
    read = edited = 0
    while after < upto:
        high = min(upto, after + batch_rows)
        touched: set[str] = set()
        batch_read = batch_edited = 0
        for _rowid, event_id, agent, unedited, ops_json, draft in db.feedback_for_mining(
            store, after=after, upto=high, sample_every=sample_every
        ):
            state = counts.get(agent) or counts.setdefault(agent, _AgentCounts.load(store, agent))
            touched.add(agent)
            batch_read += 1
            batch_edited += _mine_row(state, event_id, bool(unedited), ops_json, draft)
        try:
            _save(store, counts, touched, after=after, high=high)
        except _Raced:
            break
        read, edited, after = read + batch_read, edited + batch_edited, high
    return MiningRun(rows_read=read, edited=edited, last_rowid=after)


def _mine_row(state: _AgentCounts, event_id: str, unedited: bool, ops_json: str | None, draft: str | None) -> int:
    """Count one feedback row; 1 when it was an edited draft."""
    ops = [] if unedited else _ops(ops_json)
    if unedited:
        state.totals["unedited"] += 1
    elif ops:
        state.edited(event_id, ops)
    if draft is not None and (unedited or ops):
        state.sampled(draft, edited=not unedited)
    return 0 if unedited or not ops else 1


def _ops(ops_json: str | None) -> list[dict[str, Any]]:
    """Stored edit operations; anything unreadable counts as none."""
    if not ops_json or ops_json == "[]":
        return []
    try:
        ops = json.loads(ops_json)
    except ValueError:
        return []
    return [op for op in ops if isinstance(op, dict)] if isinstance(ops, list) else []


def _save(store: Store, counts: dict[str, _AgentCounts], touched: set[str], *, after: int, high: int) -> None:
    with store.write():
        if not db.move_watermark(store, WATERMARK, expected=after, last_rowid=high, detail=None):
            raise _Raced
        for agent in sorted(touched):
            counts[agent].save(store, agent)


# Reports ------------------------------------------------------------------------------------------------------------


class ExampleDiff(BaseModel):
    model_config = ConfigDict(frozen=True)

    event: str = Field(description="The feedback event the edit belongs to.")
    deleted: str
    added: str


class Pattern(BaseModel):
    model_config = ConfigDict(frozen=True)

    phrase: str
    kind: PhraseKind
    category: PatternCategory
    support: int = Field(description="Edited drafts where users deleted (or added) the phrase.")
    frequency: float = Field(description="Support over the agent's edited drafts.")
    lift: float | None = Field(description="See the module doc; None until the presence sample is large enough.")
    example: ExampleDiff
    suggestion: str
    action: SuggestedAction


class PatternReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent: str
    edited_drafts: int
    unedited_drafts: int
    patterns: list[Pattern] = Field(description="Most frequent first.")
    by_category: dict[PatternCategory, list[Pattern]]


def pattern_report(
    store: Store, *, agent: str, limit: int = 10, min_support: int = 5, min_lift: float = 2.0
) -> PatternReport:
    """An agent's most frequent edit patterns with their categories and suggestions."""
    for name, value in (("limit", limit), ("min_support", min_support)):
        if value < 1:
            raise InvalidInput(f"`{name}` must be at least 1, got {value}.", hint="Pass a positive whole number.")
    totals = db.phrase_totals(store, agent)
    if totals is None:
        known = ", ".join(db.mined_agents(store)[:20]) or "none yet"
        raise NotFound(
            f"no edits of agent {agent!r} have been mined.",
            hint=f"Agents mined: {known}. Mining follows ingest within minutes while `finetune serve` runs.",
            agent=agent,
        )
    rows = db.top_phrases(store, agent=agent, min_support=min_support, limit=CANDIDATES)
    found = [_pattern(agent, row, totals) for row in rows]
    kept = [p for p in found if p.lift is None or p.lift >= min_lift]
    ranked = _distinct(kept)[:limit]
    grouped: dict[PatternCategory, list[Pattern]] = {}
    for pattern in ranked:
        grouped.setdefault(pattern.category, []).append(pattern)
    return PatternReport(
        agent=agent, edited_drafts=totals["edited"], unedited_drafts=totals["unedited"], patterns=ranked,
        by_category=grouped,
    )  # fmt: skip


def _pattern(agent: str, row: dict[str, Any], totals: dict[str, int]) -> Pattern:
    kind = PhraseKind(row["kind"])
    category = categorize(row["phrase"], kind)
    frequency = row["support"] / totals["edited"] if totals["edited"] else 0.0
    advice, action = _ADVICE[category]
    verb = "delete" if kind == PhraseKind.DELETED else "add"
    return Pattern(
        phrase=row["phrase"], kind=kind, category=category, support=row["support"], frequency=frequency,
        lift=_lift(kind, row, totals), example=ExampleDiff(**json.loads(row["example"])),
        suggestion=f"users {verb} '{row['phrase']}' in {frequency:.0%} of edited drafts of {agent}: {advice}",
        action=action,
    )  # fmt: skip


def _lift(kind: PhraseKind, row: dict[str, Any], totals: dict[str, int]) -> float | None:
    seen_unedited = totals["sampled_unedited"] - int(row["base_unedited"])
    if seen_unedited < MIN_LIFT_SAMPLE:
        return None
    unedited_share = (int(row["present_unedited"]) + 0.5) / (seen_unedited + 1)
    if kind == PhraseKind.ADDED:
        return ((int(row["support"]) + 0.5) / (totals["edited"] + 1)) / unedited_share
    seen_edited = totals["sampled_edited"] - int(row["base_edited"])
    if seen_edited < 1:
        return None
    return ((int(row["present_edited"]) + 0.5) / (seen_edited + 1)) / unedited_share


def _distinct(patterns: list[Pattern]) -> list[Pattern]:
    """Most supported first, each habit once.

    A phrase is left out when it has at least CONTAINED of the support of a phrase of the same kind that
    stands for the same habit: a longer phrase holding it ("think maybe" in "i think maybe"), or a phrase
    already kept that overlaps it by two words or more ("refund policy allows returns" after "our refund
    policy allows").
    """
    longest = [p for p in patterns if not any(_inside(p, other) for other in patterns)]
    kept: list[Pattern] = []
    for pattern in sorted(longest, key=lambda p: (-p.support, -len(p.phrase.split()), p.phrase)):
        if not any(_overlapping(pattern, other) for other in kept):
            kept.append(pattern)
    return kept


def _alike(fewer: Pattern, more: Pattern) -> bool:
    """Same kind, and `fewer` has at least CONTAINED of the support of `more`."""
    return fewer.kind == more.kind and fewer.phrase != more.phrase and fewer.support >= CONTAINED * more.support


def _inside(pattern: Pattern, longer: Pattern) -> bool:
    return _alike(longer, pattern) and f" {pattern.phrase} " in f" {longer.phrase} "


def _overlapping(pattern: Pattern, kept: Pattern) -> bool:
    if not _alike(pattern, kept):
        return False
    inner, outer = pattern.phrase.split(), kept.phrase.split()
    return any(inner[:k] == outer[-k:] or outer[:k] == inner[-k:] for k in range(2, min(len(inner), len(outer))))

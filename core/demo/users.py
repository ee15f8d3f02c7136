"""Simulated users for the demo: made-up reviewers who accept, edit or reject an agent's drafts.

This is a simulation for `finetune demo`, not a model of anyone real. Each demo agent has a small, seeded
population of reviewers who share the preferences planted in the bundled sample (`core.demo.samples`): support
reviewers want no filler and their sign-off, sales reviewers no hedging and a concrete next step, billing
reviewers no "Unfortunately," and the invoice number.

Reviewers edit the way busy people do: they fix what they care about and send the rest. `edit_as_reviewer`
applies an agent's preferences to a draft (deletes the filler, hedges, padding and "Unfortunately,"; ends it with
the team's ending), leaving the answer's own words as the draft has them. `react` first asks whether the draft
answers the customer at all: its `similarity` to `ideal_reply` (what the team would write, read off the message),
through the product's own edit measure (`core.data.edits.compare`, read both ways: the smaller of the share of
the draft kept and the share of the ideal covered). Under the reviewer's `reject_below` (around `REJECT_BELOW`)
the draft is rejected (rated 1-2) and rewritten as the ideal. Otherwise a draft their edit leaves unchanged is
accepted unedited (rated 4-5), and one it changes is sent edited (rated 3-4). So a model that learns the team's
preferences from its corrections gets its drafts accepted more often: what the demo's loop is about.

Reviewers are not machines: each lets a change of one word (`SMALL_CHANGE`) slide now and then (`lets_slide`),
and some rate a point higher (`generous`); which reviewer reacts, and those coin flips, come from the `rng`
passed in, so a seeded rng replays a run exactly.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

from core.data import edits
from core.demo.samples import (
    AGENTS,
    FILLERS,
    HEDGE,
    HEDGE_OPENERS,
    PROFILES,
    SIGN_OFF,
    SUPPORT_CLOSERS,
    UNFORTUNATELY,
    VAGUE_ENDINGS,
    compose_message,
    ideal_parts,
    profile,
)
from core.errors import InvalidInput

REJECT_BELOW = 0.25  # similarity to the ideal under which a draft does not answer the customer (±0.05 each)
SMALL_CHANGE = 1  # words: a draft that needs one word changed, added or deleted may slide through unedited
ACCEPTED_FIVE = 0.75  # accepted drafts rated 5 rather than 4


@dataclass(frozen=True)
class SimulatedUser:
    """One made-up reviewer of an agent's drafts."""

    name: str
    agent: str
    reject_below: float  # similarity under which this reviewer rejects and rewrites
    lets_slide: float  # chance of accepting a draft that needs only a small change
    generous: float  # chance of rating a point higher (within the outcome's range)


@dataclass(frozen=True)
class Reaction:
    """What a simulated reviewer did with a draft: `final` is None when they accepted it unedited."""

    final: str | None
    rating: int
    accepted: bool
    user: str
    similarity: float


@functools.cache
def population(agent: str, seed: int = 0) -> tuple[SimulatedUser, ...]:
    """The reviewers of `agent`'s drafts (the names of the sample's `user` field), traits drawn from `seed`."""
    agent_profile = profile(agent)
    rng = random.Random(f"{agent}:{seed}")
    return tuple(
        SimulatedUser(
            name=name,
            agent=agent,
            reject_below=round(REJECT_BELOW + rng.uniform(-0.05, 0.05), 3),
            lets_slide=round(rng.uniform(0.2, 0.6), 3),
            generous=round(rng.uniform(0.1, 0.4), 3),
        )
        for name in agent_profile.reviewers
    )


def ideal_reply(agent: str, prompt: str, rng: random.Random | None = None) -> str:
    """The reply `agent`'s reviewers want to the customer message `prompt`.

    It depends on the message alone (`rng` is accepted so every simulated-user call has the same shape, and is
    not consulted): the same message always gets the same ideal. InvalidInput for an unknown agent or a message
    that is not one of the demo's.
    """
    return ideal_parts(agent, prompt).text()


def similarity(draft: str, ideal: str) -> float:
    """How close a draft is to the ideal: the smaller of the share of the draft kept and of the ideal covered."""
    kept = edits.compare(draft, ideal).acceptance
    covered = edits.compare(ideal, draft).acceptance
    return min(kept, covered)


def react(agent: str, prompt: str, draft: str, rng: random.Random) -> Reaction:
    """A simulated reviewer's reaction to `draft`, an answer to the customer message `prompt` (see the module doc)."""
    ideal = ideal_reply(agent, prompt)
    user = rng.choice(population(agent))
    score = similarity(draft, ideal)
    if score < user.reject_below:
        return Reaction(ideal, _bump(2 if score >= 0.15 else 1, 2, user, rng), False, user.name, score)
    edited = edit_as_reviewer(agent, prompt, draft)
    change = edits.compare(draft, edited)
    if not change.ops:
        return Reaction(None, 5 if rng.random() < ACCEPTED_FIVE else 4, True, user.name, score)
    if _small(change) and rng.random() < user.lets_slide:
        return Reaction(None, 4, True, user.name, score)
    return Reaction(edited, _bump(4 if change.acceptance >= 0.75 else 3, 4, user, rng), False, user.name, score)


def preference_score(agent: str, prompt: str, draft: str) -> float:
    """How much of the draft a reviewer keeps: 0 when it does not answer the customer, else the share their edit
    keeps (1.0 when they would send it as it is). What the demo's judge compares."""
    if similarity(draft, ideal_reply(agent, prompt)) < REJECT_BELOW:
        return 0.0
    return edits.compare(draft, edit_as_reviewer(agent, prompt, draft)).acceptance


def edit_as_reviewer(agent: str, prompt: str, draft: str) -> str:
    """`draft` as `agent`'s reviewers send it: their dislikes deleted, the team's ending in place, the rest kept."""
    paragraphs = [part.strip() for part in draft.strip().split("\n\n") if part.strip()]
    if not paragraphs:
        return ideal_reply(agent, prompt)
    ending = ideal_parts(agent, prompt).ending
    known_endings = {SIGN_OFF, *SUPPORT_CLOSERS, *VAGUE_ENDINGS} | set(_ENDINGS.findall(draft))
    if len(paragraphs) > 1 and (paragraphs[-1] in known_endings or _ENDING.fullmatch(paragraphs[-1])):
        paragraphs.pop()  # their ending replaces whatever closed the draft
    greeting, body = (paragraphs[0], paragraphs[1:]) if _GREETING.match(paragraphs[0]) else (None, paragraphs)
    cleaned = [_clean(agent, paragraph) for paragraph in body]
    parts = ([greeting] if greeting else []) + [part for part in cleaned if part]
    if ending:
        parts.append(ending)
    return "\n\n".join(parts)


def _clean(agent: str, paragraph: str) -> str:
    """A body paragraph without the sentences and openers `agent`'s reviewers delete."""
    disliked = (
        set(FILLERS) | set(HEDGE_OPENERS) | set(PROFILES[agent].padding) | set(SUPPORT_CLOSERS) | set(VAGUE_ENDINGS)
    )
    sentences = [s for s in _SENTENCES.split(paragraph) if s and s.strip() not in disliked]
    text = " ".join(sentence.strip() for sentence in sentences)
    for opener in (f"{UNFORTUNATELY} ", f"{HEDGE} "):
        while opener in text:
            at = text.index(opener)
            rest = text[at + len(opener) :]
            text = text[:at] + rest[:1].upper() + rest[1:]
    return text.strip()


_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_GREETING = re.compile(r"^(Hi|Hello|Dear)\b[^\n]*,$")
_ENDING = re.compile(r"(Best regards\b.*|Would .* work for a 20-minute call\?|Invoice reference: \S+)")
_ENDINGS = re.compile(r"Would [^\n?]* work for a 20-minute call\?")


def _small(change: edits.EditSummary) -> bool:
    """One edit of at most SMALL_CHANGE words on each side: a fix a busy reviewer may skip."""
    if len(change.ops) != 1:
        return False
    op = change.ops[0]
    return len(op.deleted.split()) <= SMALL_CHANGE and len(op.added.split()) <= SMALL_CHANGE


def _bump(rating: int, most: int, user: SimulatedUser, rng: random.Random) -> int:
    """The rating, a point higher (up to `most`) when the reviewer feels generous."""
    return rating + 1 if rating < most and rng.random() < user.generous else rating


def prompts(agent: str, n: int, rng: random.Random) -> list[str]:
    """`n` fresh customer messages to `agent`, composed from the demo's pools, for simulated traffic."""
    profile(agent)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidInput(f"`n` must be a whole number of messages, 0 or more, got {n!r}.", hint="Pass e.g. n=50.")
    return [compose_message(agent, rng)[1] for _ in range(n)]


__all__ = [
    "AGENTS",
    "REJECT_BELOW",
    "SMALL_CHANGE",
    "Reaction",
    "SimulatedUser",
    "edit_as_reviewer",
    "ideal_reply",
    "population",
    "preference_score",
    "prompts",
    "react",
    "similarity",
]

"""Simulated users for the demo: made-up reviewers who accept, edit or reject an agent's drafts.

This is a simulation for `finetune demo`, not a model of anyone real. Each demo agent has a small, seeded
population of reviewers who share the preferences planted in the bundled sample (`core.demo.samples`): support
reviewers want no filler and their sign-off, sales reviewers no hedging and a concrete next step, billing
reviewers no "Unfortunately," and the invoice number.

For a customer message, `ideal_reply` is what the agent's reviewers want: it is read off the message, so the
same message always gets the same ideal, and the sample's finals are exactly these replies. `react` compares a
draft with that ideal through the product's own edit measure (`core.data.edits.compare`, the one ingest
records as acceptance), read both ways:

    kept     = acceptance of the draft against the ideal: the share of the draft the reviewer would keep
    covered  = acceptance of the ideal against the draft: the share of the ideal the draft already holds
    similarity = min(kept, covered)

A draft with nothing to change is accepted unedited (rated 4-5). A draft the reviewer would change is edited into
the ideal (rated 3-4) unless its similarity is under the reviewer's `reject_below` (around `REJECT_BELOW`): then
it is rejected (rated 1-2) and rewritten as the ideal. Reviewers are not machines: each lets a change of one word
(`SMALL_CHANGE`) slide now and then (`lets_slide`), and some rate a point higher (`generous`); which
reviewer reacts, and those coin flips, come from the `rng` passed in, so a seeded rng replays a run exactly.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from core.data import edits
from core.demo.samples import AGENTS, compose_message, ideal_parts, profile
from core.errors import InvalidInput

REJECT_BELOW = 0.4  # similarity under which a reviewer rewrites the draft; each reviewer's own is within ±0.05
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
    change = edits.compare(draft, ideal)
    score = similarity(draft, ideal)
    if not change.ops:
        return Reaction(None, 5 if rng.random() < ACCEPTED_FIVE else 4, True, user.name, score)
    if score < user.reject_below:
        return Reaction(ideal, _bump(2 if score >= 0.15 else 1, 2, user, rng), False, user.name, score)
    if _small(change) and rng.random() < user.lets_slide:
        return Reaction(None, 4, True, user.name, score)
    return Reaction(ideal, _bump(4 if score >= 0.75 else 3, 4, user, rng), False, user.name, score)


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
    "ideal_reply",
    "population",
    "prompts",
    "react",
    "similarity",
]

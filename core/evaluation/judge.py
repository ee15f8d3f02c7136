"""A head-to-head judge's verdicts summed up, and the judge checked against the users' own choices.

The judge sees two answers to the same prompt and picks the first, the second
or neither. Judges favour a position, so every pair is judged in both orders
(baseline first, then candidate first), and a pair whose two orders disagree
counts as a tie. `head_to_head` gives:

- the candidate's win rate, (wins + ½ ties) / pairs, with a bootstrap interval
  (`scipy.stats.bootstrap`, BCa, seeded so the same pairs give the same interval);
- the judge's order consistency: the share of pairs whose two orders agree;
- a sign test against the baseline (`scipy.stats.binomtest` on the pairs that
  are not tied: under "as good as each other", wins and losses are equally likely).

`calibrate_judge` measures how far to trust the judge: shown a draft beside the
text the user finally sent, in a random order, it should pick the user's text.
Labels are positions, so that agreement by chance is what Cohen's kappa
discounts; the user's label is the position of their final text, or a tie when
they sent the draft unedited. Accuracy is the share of identical labels; kappa
(`statsmodels.stats.inter_rater.cohens_kappa`) is the agreement beyond chance,
with its asymptotic interval and the p-value of "no agreement beyond chance".

scipy and statsmodels are imported inside the functions that use them: together they cost about
0.4 s, which every `finetune` command would otherwise pay at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput
from core.evaluation.base import DEFAULT_CONFIDENCE, Interval, check_count, check_level, shown
from core.vocabulary import one_of

DEFAULT_RESAMPLES = 9999
T = TypeVar("T")


class Pick(StrEnum):
    """Which of the two texts shown a judge (or a user) prefers, by position."""

    FIRST = "first"
    SECOND = "second"
    TIE = "tie"


class Outcome(StrEnum):
    """A pair's result from the candidate's side."""

    WIN = "win"
    LOSS = "loss"
    TIE = "tie"


_PICKS = frozenset(Pick)
_SCORE = {Outcome.WIN: 1.0, Outcome.TIE: 0.5, Outcome.LOSS: 0.0}
_WHEN_BASELINE_FIRST = {Pick.FIRST: Outcome.LOSS, Pick.SECOND: Outcome.WIN, Pick.TIE: Outcome.TIE}
_WHEN_CANDIDATE_FIRST = {Pick.FIRST: Outcome.WIN, Pick.SECOND: Outcome.LOSS, Pick.TIE: Outcome.TIE}


@dataclass(frozen=True)
class JudgedPair:
    """The judge's picks on one prompt, shown baseline first and then candidate first."""

    baseline_first: Pick
    candidate_first: Pick

    @property
    def consistent(self) -> bool:
        """Both orders name the same winner (or both call it a tie)."""
        return _WHEN_BASELINE_FIRST[self.baseline_first] is _WHEN_CANDIDATE_FIRST[self.candidate_first]

    @property
    def outcome(self) -> Outcome:
        """The candidate's result: what both orders agree on, a tie when they disagree."""
        return _WHEN_BASELINE_FIRST[self.baseline_first] if self.consistent else Outcome.TIE


class HeadToHead(BaseModel):
    """The candidate against the baseline, as a judge saw every pair in both orders."""

    model_config = ConfigDict(frozen=True)

    pairs: int
    wins: int
    losses: int
    ties: int = Field(description="Tied pairs, those whose two orders disagree included.")
    win_rate: float = Field(description="(wins + ½ ties) / pairs; 0.5 is a draw.")
    interval: Interval = Field(description="Bootstrap (BCa) interval of the win rate.")
    difference: float = Field(description="win_rate - 0.5: above 0, the candidate is preferred.")
    order_consistency: float = Field(description="Share of pairs whose two orders agree.")
    p_value: float = Field(description="Two-sided sign test of wins against losses (ties left out).")


class Calibration(BaseModel):
    """How well a judge's picks agree with the users' own."""

    model_config = ConfigDict(frozen=True)

    n: int
    accuracy: float = Field(description="Share of pairs where the judge picks as the user did.")
    kappa: float | None = Field(description="Cohen's kappa; None when the judge or the users only ever give one label.")
    kappa_interval: Interval | None
    kappa_p_value: float | None = Field(description="Two-sided test of kappa = 0.")
    confusion: dict[str, dict[str, int]] = Field(description="Counts by the user's pick, then the judge's.")


def head_to_head(
    pairs: Sequence[JudgedPair],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> HeadToHead:
    """Win rate, its bootstrap interval, order consistency and the sign test over `pairs`."""
    from scipy import stats

    level = check_level("confidence", confidence)
    check_count("seed", seed)
    resamples = check_count("resamples", resamples, low=100)
    checked = [_pair(i, pair) for i, pair in enumerate(_nonempty("pairs", pairs))]
    outcomes = [pair.outcome for pair in checked]
    wins, losses = outcomes.count(Outcome.WIN), outcomes.count(Outcome.LOSS)
    scores = np.array([_SCORE[outcome] for outcome in outcomes])
    win_rate = float(scores.mean())
    decided = wins + losses
    return HeadToHead(
        pairs=len(checked),
        wins=wins,
        losses=losses,
        ties=len(checked) - decided,
        win_rate=win_rate,
        interval=_bootstrap_mean(scores, confidence=level, seed=seed, resamples=resamples),
        difference=win_rate - 0.5,
        order_consistency=sum(pair.consistent for pair in checked) / len(checked),
        p_value=float(stats.binomtest(wins, decided, 0.5).pvalue) if decided else 1.0,
    )


def _bootstrap_mean(scores: np.ndarray, *, confidence: float, seed: int, resamples: int) -> Interval:
    from scipy import stats

    if np.ptp(scores) == 0:  # every pair alike: resampling cannot vary, the interval is the point
        return Interval(low=float(scores[0]), high=float(scores[0]), confidence=confidence)
    result = stats.bootstrap(
        (scores,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(low=float(low), high=float(high), confidence=confidence)


def calibrate_judge(
    judge: Sequence[Pick], users: Sequence[Pick], *, confidence: float = DEFAULT_CONFIDENCE
) -> Calibration:
    """Accuracy and Cohen's kappa of the judge's picks against the users' picks on the same pairs."""
    level = check_level("confidence", confidence)
    judged = [_pick("judge", i, pick) for i, pick in enumerate(_nonempty("judge", judge))]
    chosen = [_pick("users", i, pick) for i, pick in enumerate(_nonempty("users", users))]
    if len(judged) != len(chosen):
        raise InvalidInput(
            f"`judge` has {len(judged)} picks and `users` {len(chosen)}.",
            hint="Pass one judge pick and one user pick per pair, in the same order.",
            argument="users",
        )
    labels = list(Pick)
    table = np.zeros((len(labels), len(labels)))
    for user, pick in zip(chosen, judged, strict=True):
        table[labels.index(user), labels.index(pick)] += 1
    confusion = {u.value: {j.value: int(table[r, c]) for c, j in enumerate(labels)} for r, u in enumerate(labels)}
    accuracy = float(np.trace(table) / len(judged))
    kappa, interval, p_value = _kappa(table, level)
    return Calibration(
        n=len(judged),
        accuracy=accuracy,
        kappa=kappa,
        kappa_interval=interval,
        kappa_p_value=p_value,
        confusion=confusion,
    )


def _kappa(table: np.ndarray, confidence: float) -> tuple[float | None, Interval | None, float | None]:
    """Cohen's kappa, its interval and p-value; None for all three when one side only ever gives one label."""
    from scipy import stats
    from statsmodels.stats.inter_rater import (
        cohens_kappa,
    )

    if min(np.count_nonzero(table.sum(0)), np.count_nonzero(table.sum(1))) < 2:
        return None, None, None  # kappa would be 0 or 0 / 0 whatever the judge did
    result = cohens_kappa(table)
    kappa = float(result.kappa)
    spread = math.sqrt(max(float(result.var_kappa), 0.0))  # rounding can leave a tiny negative variance
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    interval = Interval(low=kappa - z * spread, high=kappa + z * spread, confidence=confidence)
    return kappa, interval, float(result.pvalue_two_sided)


def _nonempty(name: str, items: Sequence[T]) -> Sequence[T]:
    if isinstance(items, str | bytes) or not isinstance(items, Sequence) or not items:
        raise InvalidInput(f"`{name}` must be a non-empty list.", hint="Pass at least one item.", argument=name)
    return items


def _pair(index: int, pair: object) -> JudgedPair:
    if not isinstance(pair, JudgedPair):
        raise InvalidInput(
            f"`pairs`[{index}] must be a JudgedPair, got {type(pair).__name__}.",
            hint="Pass JudgedPair(baseline_first=..., candidate_first=...) per prompt.",
            argument="pairs",
            index=index,
        )
    first = _pick(f"pairs[{index}].baseline_first", None, pair.baseline_first)
    second = _pick(f"pairs[{index}].candidate_first", None, pair.candidate_first)
    return JudgedPair(baseline_first=first, candidate_first=second)


def _pick(name: str, index: int | None, value: object) -> Pick:
    where = name if index is None else f"{name}[{index}]"
    if isinstance(value, str) and value in _PICKS:
        return Pick(value)
    raise InvalidInput(f"`{where}` is {shown(value)}, not a pick.", hint=f"Use {one_of(Pick)}.", argument=name)

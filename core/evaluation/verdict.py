"""Winner, loser or inconclusive: one verdict from several metrics' tests, with its reason in one sentence.

The rules, in order:

1. A sample-ratio mismatch blocks every verdict: when the arms' sizes do not
   match the configured split, the assignment or the logging is broken and the
   differences cannot be trusted.
2. The metrics' p-values are adjusted with Holm's method, so testing several
   metrics does not raise the chance of a false verdict above alpha.
3. A candidate significantly worse on any metric loses, whatever else it wins:
   a regression is never traded for a gain without a person deciding so.
4. A candidate significantly better on at least one metric, and worse on none, wins.
5. Otherwise the test is inconclusive.

Every test result of this package (`ProportionTest`, `MeanTest`,
`SequentialTest`, `HeadToHead`) becomes `Evidence` through `evidence`. Mixing
fixed-horizon and always-valid p-values is fine for Holm's method, but a
fixed-horizon p-value is only valid at the sample size planned for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput
from core.evaluation.base import DEFAULT_ALPHA, check_level, check_number, check_p_value, shown
from core.evaluation.judge import HeadToHead
from core.evaluation.sequential import SequentialTest
from core.evaluation.stats import AdjustedP, MeanTest, ProportionTest, SampleRatioCheck, holm, points

TestResult = ProportionTest | MeanTest | SequentialTest | HeadToHead


class Verdict(StrEnum):
    WINNER = "winner"
    LOSER = "loser"
    INCONCLUSIVE = "inconclusive"


class Evidence(BaseModel):
    """One metric's test: the candidate's difference from the baseline and its p-value."""

    model_config = ConfigDict(frozen=True)

    name: str
    difference: float = Field(description="Candidate minus baseline.")
    p_value: float
    higher_is_better: bool = True
    in_points: bool = Field(False, description="The difference is one of rates: shown in percentage points.")


class Decision(BaseModel):
    """The verdict, why, and the adjusted p-values it rests on."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    reason: str = Field(description="One sentence.")
    adjusted: list[AdjustedP] = Field(description="Holm-adjusted p-values; empty when the split check blocked.")


def evidence(name: str, result: TestResult, *, higher_is_better: bool = True) -> Evidence:
    """The `Evidence` a test result gives for metric `name`."""
    if not isinstance(result, TestResult):
        raise InvalidInput(
            f"the result for {shown(name)} is a {type(result).__name__}, not a test result.",
            hint="Pass what compare_proportions, compare_means, sequential_* or head_to_head returned.",
            argument="result",
        )
    if isinstance(result, MeanTest):
        in_points = False
    elif isinstance(result, SequentialTest):
        in_points = result.of_rates
    else:
        in_points = True  # two rates, or a win rate
    return Evidence(
        name=name,
        difference=result.difference,
        p_value=result.p_value,
        higher_is_better=higher_is_better,
        in_points=in_points,
    )


def decide(items: Sequence[Evidence], *, srm: SampleRatioCheck | None, alpha: float = DEFAULT_ALPHA) -> Decision:
    """The verdict on the candidate from every metric's evidence; `srm` is None only where there is no split."""
    alpha = check_level("alpha", alpha)
    checked = _check_evidence(items)
    if srm is not None and srm.mismatch:
        return Decision(verdict=Verdict.INCONCLUSIVE, reason=_srm_reason(srm), adjusted=[])
    adjusted = holm({item.name: item.p_value for item in checked}, alpha=alpha)
    significant = [(item, adj) for item, adj in zip(checked, adjusted, strict=True) if adj.significant]
    worse = [pair for pair in significant if _direction(pair[0]) < 0]
    better = [pair for pair in significant if _direction(pair[0]) > 0]
    if worse:
        also = f", although {_join(better)}" if better else ""
        return Decision(verdict=Verdict.LOSER, reason=f"Loser: {_join(worse)}{also}.", adjusted=adjusted)
    if better:
        reason = f"Winner: {_join(better)}, and no metric is significantly worse."
        return Decision(verdict=Verdict.WINNER, reason=reason, adjusted=adjusted)
    return Decision(verdict=Verdict.INCONCLUSIVE, reason=_no_difference(checked, adjusted), adjusted=adjusted)


def _check_evidence(items: Sequence[Evidence]) -> list[Evidence]:
    if isinstance(items, str | bytes) or not isinstance(items, Sequence) or not items:
        raise InvalidInput("no evidence to decide on.", hint="Pass one Evidence per metric tested.", argument="items")
    for index, item in enumerate(items):
        if not isinstance(item, Evidence):
            raise InvalidInput(
                f"`items`[{index}] is a {type(item).__name__}, not Evidence.",
                hint="Build each item with evidence(name, result) or Evidence(...).",
                argument="items",
                index=index,
            )
    names = [item.name for item in items]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidInput(
            f"metrics {duplicates} appear more than once.", hint="Pass one Evidence per metric.", argument="items"
        )
    for item in items:
        check_number(f"{item.name}.difference", item.difference)
        check_p_value(f"{item.name}.p_value", item.p_value)
    return list(items)


def _direction(item: Evidence) -> int:
    """1 when the candidate is better on this metric, -1 when worse, 0 when equal."""
    sign = (item.difference > 0) - (item.difference < 0)
    return sign if item.higher_is_better else -sign


def _join(pairs: list[tuple[Evidence, AdjustedP]]) -> str:
    return " and ".join(f"{_change(item)} (Holm-adjusted p = {adj.adjusted_p_value:.2g})" for item, adj in pairs)


def _change(item: Evidence) -> str:
    direction = "better" if _direction(item) > 0 else "worse"
    size = points(abs(item.difference)).lstrip("+") if item.in_points else f"{abs(item.difference):.3g}"
    return f"{item.name} is {direction} by {size}"


def _signed(item: Evidence) -> str:
    return points(item.difference) if item.in_points else f"{item.difference:+.3g}"


def _no_difference(items: list[Evidence], adjusted: list[AdjustedP]) -> str:
    item, adj = min(zip(items, adjusted, strict=True), key=lambda pair: pair[1].adjusted_p_value)
    if len(items) == 1:
        return f"Inconclusive: {item.name} does not differ significantly ({_signed(item)}, p = {item.p_value:.2g})."
    return (
        f"Inconclusive: no metric differs significantly after Holm's correction across {len(items)} metrics "
        f"(closest: {item.name}, {_signed(item)}, adjusted p = {adj.adjusted_p_value:.2g})."
    )


def _srm_reason(srm: SampleRatioCheck) -> str:
    observed = " and ".join(f"{count:,}" for count in srm.observed)
    expected = " and ".join(f"{count:,.0f}" for count in srm.expected)
    return (
        f"Inconclusive: the arms' sizes ({observed}) do not match the configured split "
        f"(expected {expected}; SRM p = {srm.p_value:.2g}), so no verdict stands until the assignment is fixed."
    )

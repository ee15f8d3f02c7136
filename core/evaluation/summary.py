"""What an offline evaluation found, computed from its stored per-example rows, and its one-line headline.

Everything here is derived from `eval_results` (`core.evaluation.db`), so an
evaluation that was stopped, failed or resumed after a restart is summed up
from exactly what was measured. Per arm: each metric of `metrics` against the
user's final text (the draft when they sent it unedited) with its interval,
latency and cost. The judge: `head_to_head` over the pairs judged in both
orders, and how many of its answers could not be read (ties). Calibration:
`calibrate_judge` over the judge's picks between the users' final texts and
their drafts. Acceptance, the product's own measure, is compared with Welch's
test, and `decide` turns the judge's win rate and acceptance into a verdict.

The headline is what a deploy approval of the candidate shows
(`core.registry.facts`): "support:v4 beats production (support:v3) 64% (CI
55-72%) of 120 pairs; judge agrees with users 81% (kappa 0.62)".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.evaluation.base import Interval
from core.evaluation.db import ResultRow
from core.evaluation.judge import Calibration, HeadToHead, JudgedPair, Pick, calibrate_judge, head_to_head
from core.evaluation.metrics import ExampleScores, MetricSummary, summarize
from core.evaluation.stats import compare_means
from core.evaluation.verdict import Decision, Evidence, decide, evidence

OUTPUT, JUDGMENT, CALIBRATION = "output", "judgment", "calibration"  # eval_results.metric: the kinds of row
CANDIDATE, BASELINE = "candidate", "baseline"  # eval_results.arm of output rows
WIN_RATE, ACCEPTANCE = "judge win rate", "acceptance"  # names of the evidence the verdict weighs


class LatencySummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    mean_ms: float
    p50_ms: float
    p95_ms: float


class ArmSummary(BaseModel):
    """One side's answers: every metric against the users' final texts, latency and cost."""

    model_config = ConfigDict(frozen=True)

    name: str
    answers: int
    metrics: list[MetricSummary]
    latency: LatencySummary | None
    cost_usd: float = Field(description="What its answers cost, those whose price is known.")
    unpriced: int = Field(description="Answers whose cost is unknown (no price, or no usage reported).")


class JudgeSummary(BaseModel):
    """The candidate against the baseline as the judge saw each pair in both orders."""

    model_config = ConfigDict(frozen=True)

    model: str
    head_to_head: HeadToHead
    answers: int
    unreadable: int = Field(description="Answers without a readable `WINNER:` line, each counted as a tie.")
    cost_usd: float
    unpriced: int


class CalibrationSummary(BaseModel):
    """How often the judge prefers what the users themselves sent over the drafts they edited."""

    model_config = ConfigDict(frozen=True)

    examples: int = Field(description="Edited examples shown to the judge, each in both orders.")
    result: Calibration | None
    unreadable: int
    cost_usd: float = 0.0
    unpriced: int = 0
    note: str | None = None


class MeanDifference(BaseModel):
    """A metric's mean per arm and Welch's test of their difference (candidate minus baseline)."""

    model_config = ConfigDict(frozen=True)

    metric: str
    baseline_mean: float
    candidate_mean: float
    difference: float
    p_value: float
    interval: Interval


class EvaluationSummary(BaseModel):
    """Everything an evaluation measured, and its headline."""

    model_config = ConfigDict(frozen=True)

    headline: str
    examples: int = Field(description="Examples measured and judged.")
    split: str
    split_note: str | None = Field(default=None, description="Why another split than test was used.")
    rubric: str = Field(description="The rubric's file, or `bundled`.")
    candidate: ArmSummary
    baseline: ArmSummary
    judge: JudgeSummary | None
    calibration: CalibrationSummary
    acceptance: MeanDifference | None
    decision: Decision | None


def summarize_rows(
    rows: Sequence[ResultRow], *, candidate: str, baseline: str, judge: str, split: str, split_note: str | None,
    rubric: str,
) -> EvaluationSummary:  # fmt: skip
    """The summary of the examples stored whole in `rows`."""
    by_kind: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for row in rows:
        by_kind[(row.metric, row.arm)].append(row)
    arms = {arm: _arm(name, by_kind[(OUTPUT, arm)]) for arm, name in ((CANDIDATE, candidate), (BASELINE, baseline))}
    judged = _judge(judge, by_kind[(JUDGMENT, "baseline_first")], by_kind[(JUDGMENT, "candidate_first")])
    calibration = _calibration([row for (kind, _), found in by_kind.items() if kind == CALIBRATION for row in found])
    acceptance = _acceptance(by_kind[(OUTPUT, BASELINE)], by_kind[(OUTPUT, CANDIDATE)])
    return EvaluationSummary(
        headline=headline(candidate, baseline, judged, calibration),
        examples=judged.head_to_head.pairs if judged else 0,
        split=split, split_note=split_note, rubric=rubric,
        candidate=arms[CANDIDATE], baseline=arms[BASELINE], judge=judged, calibration=calibration,
        acceptance=acceptance, decision=_decision(judged, acceptance),
    )  # fmt: skip


def _arm(name: str, rows: list[ResultRow]) -> ArmSummary:
    scores = [ExampleScores.model_validate(row.detail["scores"]) for row in rows]
    latencies = [row.latency_ms for row in rows if row.latency_ms is not None]
    latency = None
    if latencies:
        p50, p95 = np.percentile(latencies, [50, 95])
        latency = LatencySummary(mean_ms=float(np.mean(latencies)), p50_ms=float(p50), p95_ms=float(p95))
    return ArmSummary(
        name=name, answers=len(rows), metrics=summarize(scores) if scores else [], latency=latency,
        cost_usd=_spent(rows), unpriced=sum(row.cost_usd is None for row in rows),
    )  # fmt: skip


def _judge(model: str, baseline_first: list[ResultRow], candidate_first: list[ResultRow]) -> JudgeSummary | None:
    second = {row.feedback_id: row for row in candidate_first}
    pairs = [
        JudgedPair(
            baseline_first=Pick(row.detail["pick"]), candidate_first=Pick(second[row.feedback_id].detail["pick"])
        )
        for row in baseline_first
        if row.feedback_id in second
    ]
    if not pairs:
        return None
    answers = baseline_first + candidate_first
    return JudgeSummary(
        model=model, head_to_head=head_to_head(pairs), answers=len(answers),
        unreadable=sum(not row.detail["readable"] for row in answers), cost_usd=_spent(answers),
        unpriced=sum(row.cost_usd is None for row in answers),
    )  # fmt: skip


def _calibration(rows: list[ResultRow]) -> CalibrationSummary:
    if not rows:
        note = "no example was edited by its user, so the judge could not be compared with them"
        return CalibrationSummary(examples=0, result=None, unreadable=0, note=note)
    judged = [Pick(row.detail["pick"]) for row in rows]
    users = [Pick(row.detail["user"]) for row in rows]
    return CalibrationSummary(
        examples=len({row.feedback_id for row in rows}), result=calibrate_judge(judged, users),
        unreadable=sum(not row.detail["readable"] for row in rows), cost_usd=_spent(rows),
        unpriced=sum(row.cost_usd is None for row in rows),
    )  # fmt: skip


def _acceptance(baseline: list[ResultRow], candidate: list[ResultRow]) -> MeanDifference | None:
    base = [row.value for row in baseline if row.value is not None]
    cand = [row.value for row in candidate if row.value is not None]
    if min(len(base), len(cand)) < 2:
        return None  # Welch's test needs two observations per arm
    test = compare_means(base, cand)
    return MeanDifference(
        metric=ACCEPTANCE, baseline_mean=test.baseline_mean, candidate_mean=test.candidate_mean,
        difference=test.difference, p_value=test.p_value, interval=test.interval,
    )  # fmt: skip


def _decision(judged: JudgeSummary | None, acceptance: MeanDifference | None) -> Decision | None:
    items: list[Evidence] = []
    if judged is not None:
        items.append(evidence(WIN_RATE, judged.head_to_head))
    if acceptance is not None:
        items.append(Evidence(name=ACCEPTANCE, difference=acceptance.difference, p_value=acceptance.p_value))
    return decide(items, srm=None) if items else None


def _spent(rows: list[ResultRow]) -> float:
    return round(sum(row.cost_usd for row in rows if row.cost_usd is not None), 9)


# The headline ----------------------------------------------------------------------------------------


def headline(candidate: str, baseline: str, judged: JudgeSummary | None, calibration: CalibrationSummary) -> str:
    """`support:v4 beats production (support:v3) 64% (CI 55-72%) of 120 pairs; judge agrees with users 81% (kappa
    0.62)`: who the judge prefers, by how much and how sure, and how far to trust the judge."""
    if judged is None:
        return f"{candidate} against {baseline}: no pair judged yet"
    result = judged.head_to_head
    low, high = result.interval.low, result.interval.high
    share = f"{result.win_rate:.0%} (CI {low * 100:.0f}-{high * 100:.0f}%) of {result.pairs} pair" + (
        "s" if result.pairs != 1 else ""
    )
    if low > 0.5:
        text = f"{candidate} beats {baseline} {share}"
    elif high < 0.5:
        text = f"{candidate} loses to {baseline}: wins {share}"
    else:
        text = f"{candidate} vs {baseline}: no clear winner, {share}"
    return f"{text}; {_trust(calibration)}"


def _trust(calibration: CalibrationSummary) -> str:
    found = calibration.result
    if found is None:
        return "judge not checked against users (no edited examples)"
    kappa = "n/a" if found.kappa is None else f"{found.kappa:.2f}"
    return f"judge agrees with users {found.accuracy:.0%} (kappa {kappa})"

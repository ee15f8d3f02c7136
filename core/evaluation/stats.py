"""Fixed-horizon tests of a candidate against a baseline, the split check, Holm's correction and sample sizes.

Every difference is candidate minus baseline, so a positive difference means the
candidate scores higher. The statistics come from statsmodels and scipy; this
module checks the arguments, picks the methods and says what the numbers mean:

- `compare_proportions`: the two-sided z-test of two proportions with a pooled
  variance (`proportions_ztest`, the same p-value as R's `prop.test(correct =
  FALSE)`), and Newcombe's hybrid score interval for the difference
  (`confint_proportions_2indep`, method 10 of Newcombe 1998).
- `compare_means`: Welch's t-test (unequal variances, `ttest_ind(equal_var=False)`)
  and its interval for the difference of means, as R's `t.test`.
- `check_sample_ratio`: the chi-square goodness-of-fit test of the arms' sizes
  against the configured split (`chisquare`). A sample-ratio mismatch means the
  assignment or the logging is broken, so no verdict stands: below
  `SRM_THRESHOLD` (0.001, the usual bar, strict because the check runs on every
  look) it blocks one.
- `holm`: Holm's step-down adjustment across metrics (`multipletests`), which
  keeps the chance of any false positive among them at alpha.
- `plan_sample_size`: the sample size a fixed-horizon two-sided test needs to
  detect a given change of a rate (`NormalIndPower` on Cohen's h,
  `proportion_effectsize`), and the time the observed weekly volume takes to
  collect it. The sequential test (`core.evaluation.sequential`) may stop
  earlier on a large effect and typically needs more on an effect of this size.

These p-values are valid only when computed once, at a sample size fixed in
advance; to look at the data as it arrives, use the sequential test.

scipy and statsmodels are imported inside the functions that use them: together they cost about
0.4 s, which every `finetune` command would otherwise pay at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput
from core.evaluation.base import (
    DEFAULT_ALPHA,
    Interval,
    Samples,
    check_count,
    check_level,
    check_number,
    check_p_value,
    check_positive,
    check_successes,
    check_values,
    shown,
)

SRM_THRESHOLD = 0.001
DEFAULT_POWER = 0.8
_SHARE_TOLERANCE = 1e-6


class ProportionTest(BaseModel):
    """Two rates compared: the z-test's p-value and an interval for their difference."""

    model_config = ConfigDict(frozen=True)

    baseline_rate: float
    candidate_rate: float
    difference: float = Field(description="Candidate rate minus baseline rate.")
    statistic: float = Field(description="The z statistic (pooled variance).")
    p_value: float = Field(description="Two-sided.")
    interval: Interval = Field(description="Newcombe's hybrid score interval for the difference.")


class MeanTest(BaseModel):
    """Two means compared by Welch's t-test."""

    model_config = ConfigDict(frozen=True)

    baseline_mean: float
    candidate_mean: float
    difference: float = Field(description="Candidate mean minus baseline mean.")
    statistic: float = Field(description="Welch's t statistic.")
    df: float = Field(description="Welch–Satterthwaite degrees of freedom.")
    p_value: float = Field(description="Two-sided.")
    interval: Interval = Field(description="Welch interval for the difference of means.")


class SampleRatioCheck(BaseModel):
    """The arms' sizes against the configured split."""

    model_config = ConfigDict(frozen=True)

    observed: list[int]
    expected: list[float] = Field(description="Sizes the configured split predicts for the same total.")
    statistic: float = Field(description="Pearson's chi-square.")
    p_value: float
    threshold: float
    mismatch: bool = Field(description="p_value below threshold: the split is broken and no verdict stands.")


class AdjustedP(BaseModel):
    """A metric's p-value before and after Holm's adjustment."""

    model_config = ConfigDict(frozen=True)

    name: str
    p_value: float
    adjusted_p_value: float
    significant: bool = Field(description="Adjusted p-value below alpha.")


class SamplePlan(BaseModel):
    """How many observations a fixed-horizon test needs to detect a change of a rate, and how long they take."""

    model_config = ConfigDict(frozen=True)

    baseline_rate: float
    effect: float = Field(description="The change to detect, in rate (0.05 = +5 points).")
    candidate_share: float
    alpha: float
    power: float
    baseline_n: int
    candidate_n: int
    total_n: int
    weekly_volume: float | None = Field(description="Observations a week over both arms, when known.")
    weeks: float | None = Field(description="Weeks to collect total_n at weekly_volume.")
    summary: str


def compare_proportions(
    *,
    baseline_successes: int,
    baseline_trials: int,
    candidate_successes: int,
    candidate_trials: int,
    alpha: float = DEFAULT_ALPHA,
) -> ProportionTest:
    """The two-sided z-test of two proportions and Newcombe's interval for their difference at 1 - alpha."""
    from statsmodels.stats.proportion import (
        confint_proportions_2indep,
        proportions_ztest,
    )

    alpha = check_level("alpha", alpha)
    k_base, n_base = check_successes("baseline", baseline_successes, baseline_trials)
    k_cand, n_cand = check_successes("candidate", candidate_successes, candidate_trials)
    rate_base, rate_cand = k_base / n_base, k_cand / n_cand
    if k_base + k_cand in (0, n_base + n_cand):  # every outcome alike: no variance, nothing differs
        statistic, p_value = 0.0, 1.0
    else:
        statistic, p_value = proportions_ztest([k_cand, k_base], [n_cand, n_base])
    low, high = confint_proportions_2indep(
        k_cand, n_cand, k_base, n_base, method="newcomb", compare="diff", alpha=alpha
    )
    return ProportionTest(
        baseline_rate=rate_base,
        candidate_rate=rate_cand,
        difference=rate_cand - rate_base,
        statistic=float(statistic),
        p_value=float(p_value),
        interval=Interval(low=float(low), high=float(high), confidence=1 - alpha),
    )


def compare_means(baseline: Samples, candidate: Samples, *, alpha: float = DEFAULT_ALPHA) -> MeanTest:
    """Welch's two-sided t-test of two means and its interval for their difference at 1 - alpha."""
    from scipy import stats

    alpha = check_level("alpha", alpha)
    base = np.asarray(check_values("baseline", baseline, at_least=2))
    cand = np.asarray(check_values("candidate", candidate, at_least=2))
    difference = float(cand.mean() - base.mean())
    if np.ptp(base) == 0 and np.ptp(cand) == 0:
        return _constant_means(base, cand, difference, alpha)
    result = stats.ttest_ind(cand, base, equal_var=False)
    low, high = result.confidence_interval(confidence_level=1 - alpha)
    return MeanTest(
        baseline_mean=float(base.mean()),
        candidate_mean=float(cand.mean()),
        difference=difference,
        statistic=float(result.statistic),
        df=float(result.df),
        p_value=float(result.pvalue),
        interval=Interval(low=float(low), high=float(high), confidence=1 - alpha),
    )


def _constant_means(base: np.ndarray, cand: np.ndarray, difference: float, alpha: float) -> MeanTest:
    """The limit of Welch's test when neither arm varies: the difference is known exactly."""
    p_value = 1.0 if difference == 0 else 0.0
    statistic = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return MeanTest(
        baseline_mean=float(base.mean()),
        candidate_mean=float(cand.mean()),
        difference=difference,
        statistic=statistic,
        df=float(len(base) + len(cand) - 2),
        p_value=p_value,
        interval=Interval(low=difference, high=difference, confidence=1 - alpha),
    )


def check_sample_ratio(
    observed: Sequence[int], *, expected_shares: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SampleRatioCheck:
    """Chi-square test of the arms' sizes `observed` against `expected_shares` (fractions summing to 1)."""
    from scipy import stats

    threshold = check_level("threshold", threshold)
    if isinstance(observed, str | bytes) or not isinstance(observed, Sequence):
        raise InvalidInput(
            f"`observed` must be a list of counts, got {type(observed).__name__}.",
            hint="Pass each arm's size, e.g. [9012, 988].",
            argument="observed",
        )
    counts = [check_count(f"observed[{i}]", value) for i, value in enumerate(observed)]
    shares = _check_shares(expected_shares, arms=len(counts))
    total = sum(counts)
    if total == 0:
        raise InvalidInput(
            "`observed` counts no one: every arm is empty.",
            hint="Check the split once traffic has reached the experiment.",
            argument="observed",
        )
    expected = [share * total for share in shares]
    result = stats.chisquare(counts, f_exp=expected)
    p_value = float(result.pvalue)
    return SampleRatioCheck(
        observed=counts,
        expected=expected,
        statistic=float(result.statistic),
        p_value=p_value,
        threshold=threshold,
        mismatch=p_value < threshold,
    )


def _check_shares(shares: Sequence[float], *, arms: int) -> list[float]:
    if isinstance(shares, str | bytes) or not isinstance(shares, Sequence) or len(shares) != arms or arms < 2:
        raise InvalidInput(
            f"`expected_shares` must give one share per arm ({arms} arms observed, at least 2 needed).",
            hint="Pass the configured split, e.g. [0.9, 0.1] for a 10% canary.",
            argument="expected_shares",
        )
    values = [check_number(f"expected_shares[{i}]", v, low=0.0, high=1.0) for i, v in enumerate(shares)]
    if any(value == 0 for value in values) or abs(sum(values) - 1) > _SHARE_TOLERANCE:
        raise InvalidInput(
            f"`expected_shares` must be fractions above 0 that sum to 1, got {values}.",
            hint="Write a 90/10 split as [0.9, 0.1], not in percent.",
            argument="expected_shares",
        )
    return values


def holm(p_values: Mapping[str, float], *, alpha: float = DEFAULT_ALPHA) -> list[AdjustedP]:
    """Holm-adjusted p-values of several metrics' tests, in the order given.

    statsmodels' `multipletests` runs a full `gc.collect()` on every Holm call (tens of milliseconds in a
    large process): adjust once per decision, never inside a loop over looks or experiments.
    """
    from statsmodels.stats.multitest import (
        multipletests,
    )

    alpha = check_level("alpha", alpha)
    if not isinstance(p_values, Mapping) or not p_values:
        raise InvalidInput(
            "`p_values` must map each metric's name to its p-value, and name at least one.",
            hint='Pass e.g. {"acceptance": 0.01, "rouge_l": 0.2}.',
            argument="p_values",
        )
    names = list(p_values)
    raw = [check_p_value(f"p_values[{shown(name)}]", p_values[name]) for name in names]
    reject, adjusted, _, _ = multipletests(raw, alpha=alpha, method="holm")
    return [
        AdjustedP(name=name, p_value=p, adjusted_p_value=float(a), significant=bool(r))
        for name, p, a, r in zip(names, raw, adjusted, reject, strict=True)
    ]


def plan_sample_size(
    *,
    baseline_rate: float,
    effect: float,
    candidate_share: float = 0.5,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    weekly_volume: float | None = None,
    unit: str = "observations",
) -> SamplePlan:
    """Observations a two-sided test of proportions needs to detect `effect`, split as `candidate_share` says.

    `unit` names the observations in the summary, e.g. "rated replies".
    """
    from statsmodels.stats.power import (
        NormalIndPower,
    )
    from statsmodels.stats.proportion import proportion_effectsize

    alpha, power = check_level("alpha", alpha), check_level("power", power)
    base = check_level("baseline_rate", baseline_rate)
    share = check_level("candidate_share", candidate_share)
    effect = check_number("effect", effect)
    if effect == 0 or not 0 < base + effect < 1:
        raise InvalidInput(
            f"`effect` {effect:+g} on `baseline_rate` {base:g} must lead to a different rate between 0 and 1.",
            hint="Give the change to detect as a fraction, e.g. 0.05 for +5 points.",
            argument="effect",
        )
    volume = None if weekly_volume is None else check_positive("weekly_volume", weekly_volume)
    ratio = share / (1 - share)
    size = proportion_effectsize(base + effect, base)
    baseline_n = NormalIndPower().solve_power(effect_size=abs(size), alpha=alpha, power=power, ratio=ratio)
    n_base, n_cand = math.ceil(baseline_n), math.ceil(baseline_n * ratio)
    weeks = None if volume is None else max(n_base / (volume * (1 - share)), n_cand / (volume * share))
    return SamplePlan(
        baseline_rate=base,
        effect=effect,
        candidate_share=share,
        alpha=alpha,
        power=power,
        baseline_n=n_base,
        candidate_n=n_cand,
        total_n=n_base + n_cand,
        weekly_volume=volume,
        weeks=weeks,
        summary=_plan_summary(base, effect, n_base + n_cand, volume, weeks, unit),
    )


def _plan_summary(base: float, effect: float, total: int, volume: float | None, weeks: float | None, unit: str) -> str:
    target = f"to detect {points(effect)} on a baseline of {base:.0%}"
    if volume is None or weeks is None:
        return f"This needs {total:,} {unit} {target}."
    return f"At {volume:,.0f} {unit} a week this needs {duration(weeks)} ({total:,} {unit}) {target}."


def points(difference: float) -> str:
    """A difference of rates in percentage points: +5 points, −0.5 points."""
    value = difference * 100
    text = f"{abs(value):.1f}".removesuffix(".0")
    sign = "+" if value > 0 else "−" if value < 0 else ""
    return f"{sign}{text} point{'' if text == '1' else 's'}"


def duration(weeks: float) -> str:
    """A rough duration: about 3 weeks, about 4 days, under a day."""
    if weeks >= 1:
        count = math.ceil(weeks - 1e-9)
        return f"about {count} week{'s' if count > 1 else ''}"
    days = math.ceil(weeks * 7 - 1e-9)
    return "about a day" if days <= 1 else f"about {days} days"

"""An always-valid test of a candidate against a baseline: look after every batch, stop when it says so.

A fixed-horizon p-value read every day and acted on the first time it dips
below 0.05 declares far more than 5 % of A/A tests significant. This module
implements the mixture sequential probability ratio test (mSPRT) with a normal
mixture, as in Johari, Pekelis & Walsh, "Always valid inference: continuous
monitoring of A/B tests" (Operations Research, 2022; arXiv:1512.04922), and
Johari, Koomen, Pekelis & Walsh, "Peeking at A/B tests" (KDD 2017).

The method. Let θ̂ be the observed difference (candidate minus baseline), s² its
variance (σ²_baseline / n_baseline + σ²_candidate / n_candidate) and τ² the
mixing variance. Averaging the likelihood ratio of θ against 0 over θ ~ N(0, τ²)
gives, for Gaussian estimates, the closed form

    Λ = sqrt(s² / (s² + τ²)) · exp(τ² θ̂² / (2 s² (s² + τ²)))

Λ is a martingale under "no difference", so by Ville's inequality the chance
that it ever reaches 1/α, however often one looks, is at most α. The
always-valid p-value is the running minimum of 1/Λ over the looks (pass the
previous look's p-value in); rejecting when it falls to α keeps the false-positive
rate under α at any stopping time. Inverting the test at every θ₀ gives a
confidence sequence: θ̂ ± sqrt(2 s² (s² + τ²) / τ² · (log(1/α) + ½ log((s² + τ²) / s²))).

The variances are plugged in from the data (the paper's approach for A/B tests),
which is why a look needs `min_trials` observations in each arm. For
proportions the p-value uses the pooled rate (the variance under "no
difference", as the z-test does) and the interval each arm's own rate.

The mixing variance. τ is the size of effect the test is tuned to: it reaches a
decision soonest on effects of about τ and stays valid for every τ; a τ far from
the real effect only slows it down. `DEFAULT_PROPORTION_MIXING_SD` is 0.05
(5 points), the size of change in acceptance worth a decision; for means pass
`mixing_sd` in the metric's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.evaluation.base import (
    DEFAULT_ALPHA,
    Interval,
    Samples,
    check_count,
    check_level,
    check_number,
    check_p_value,
    check_successes,
    check_values,
)

DEFAULT_PROPORTION_MIXING_SD = 0.05
MIXING_SD_RANGE = (1e-100, 1e100)  # τ² stays a normal float
MIN_TRIALS = 30  # per arm before a look counts: the plug-in variance needs that many to be trusted


class SequentialTest(BaseModel):
    """One look of the mSPRT: the evidence so far and the always-valid p-value."""

    model_config = ConfigDict(frozen=True)

    baseline_trials: int
    candidate_trials: int
    of_rates: bool = Field(description="The difference is one of rates (from `sequential_proportions`).")
    difference: float = Field(description="Candidate minus baseline.")
    mixing_sd: float = Field(description="τ, the standard deviation of the normal mixture over effects.")
    likelihood_ratio: float | None = Field(description="Λ; None when this look does not count (see `reason`).")
    p_value: float = Field(description="Always valid: the running minimum of 1/Λ over the looks.")
    interval: Interval | None = Field(description="The confidence sequence at this look, at 1 - alpha.")
    significant: bool = Field(description="p_value at or below alpha: stop, the arms differ.")
    reason: str | None = Field(description="Why this look does not count, when it does not.")


def sequential_proportions(
    *,
    baseline_successes: int,
    baseline_trials: int,
    candidate_successes: int,
    candidate_trials: int,
    previous_p_value: float = 1.0,
    mixing_sd: float = DEFAULT_PROPORTION_MIXING_SD,
    alpha: float = DEFAULT_ALPHA,
    min_trials: int = MIN_TRIALS,
) -> SequentialTest:
    """A look at two rates so far (cumulative counts); `previous_p_value` is the last look's p-value."""
    k_base, n_base = check_successes("baseline", baseline_successes, baseline_trials)
    k_cand, n_cand = check_successes("candidate", candidate_successes, candidate_trials)
    rate_base, rate_cand = k_base / n_base, k_cand / n_cand
    pooled = (k_base + k_cand) / (n_base + n_cand)
    look = _Look(
        n_base=n_base,
        n_cand=n_cand,
        of_rates=True,
        difference=rate_cand - rate_base,
        null_variance=pooled * (1 - pooled) * (1 / n_base + 1 / n_cand),
        variance=rate_base * (1 - rate_base) / n_base + rate_cand * (1 - rate_cand) / n_cand,
    )
    return _test(look, previous_p_value=previous_p_value, mixing_sd=mixing_sd, alpha=alpha, min_trials=min_trials)


def sequential_means(
    baseline: Samples,
    candidate: Samples,
    *,
    mixing_sd: float,
    previous_p_value: float = 1.0,
    alpha: float = DEFAULT_ALPHA,
    min_trials: int = MIN_TRIALS,
) -> SequentialTest:
    """A look at two samples so far; `mixing_sd` is in the metric's units (see the module docstring)."""
    base = np.asarray(check_values("baseline", baseline, at_least=2))
    cand = np.asarray(check_values("candidate", candidate, at_least=2))
    variance = float(base.var(ddof=1) / len(base) + cand.var(ddof=1) / len(cand))
    look = _Look(
        n_base=len(base),
        n_cand=len(cand),
        of_rates=False,
        difference=float(cand.mean() - base.mean()),
        null_variance=variance,
        variance=variance,
    )
    return _test(look, previous_p_value=previous_p_value, mixing_sd=mixing_sd, alpha=alpha, min_trials=min_trials)


@dataclass(frozen=True)
class _Look:
    n_base: int
    n_cand: int
    of_rates: bool
    difference: float
    null_variance: float  # of the difference, under "no difference": for the p-value
    variance: float  # of the difference, at the observed rates: for the interval


def _test(look: _Look, *, previous_p_value: float, mixing_sd: float, alpha: float, min_trials: int) -> SequentialTest:
    previous = check_p_value("previous_p_value", previous_p_value)
    tau = check_number("mixing_sd", mixing_sd, low=MIXING_SD_RANGE[0], high=MIXING_SD_RANGE[1])
    alpha = check_level("alpha", alpha)
    min_trials = check_count("min_trials", min_trials, low=2)
    reason = _no_count_reason(look, min_trials)
    ratio = None if reason else math.exp(min(log_likelihood_ratio(look.difference, look.null_variance, tau), 700.0))
    p_value = previous if ratio is None else min(previous, 1.0 / ratio, 1.0)
    interval = None if reason or look.variance == 0 else confidence_sequence(look.difference, look.variance, tau, alpha)
    return SequentialTest(
        baseline_trials=look.n_base,
        candidate_trials=look.n_cand,
        of_rates=look.of_rates,
        difference=look.difference,
        mixing_sd=tau,
        likelihood_ratio=ratio,
        p_value=p_value,
        interval=interval,
        significant=p_value <= alpha,
        reason=reason,
    )


def _no_count_reason(look: _Look, min_trials: int) -> str | None:
    fewest = min(look.n_base, look.n_cand)
    if fewest < min_trials:
        return f"an arm has {fewest} observations; a look counts from {min_trials} in each"
    if look.null_variance == 0:
        return "no observation varies yet, so the spread of the difference is unknown"
    return None


def log_likelihood_ratio(difference: float, variance: float, mixing_sd: float) -> float:
    """log Λ of the normal-mixture SPRT for an estimate `difference` of variance `variance` (> 0).

    Written with logarithms and the shrinkage τ² / (s² + τ²) so that no intermediate under- or overflows.
    """
    tau2 = mixing_sd * mixing_sd
    total = variance + tau2
    return 0.5 * (math.log(variance) - math.log(total)) + (tau2 / total) * (difference * difference / (2 * variance))


def confidence_sequence(difference: float, variance: float, mixing_sd: float, alpha: float) -> Interval:
    """Every θ₀ the mSPRT does not reject at this look: an interval valid over all looks at 1 - alpha."""
    tau2 = mixing_sd * mixing_sd
    total = variance + tau2
    log_bound = math.log(1 / alpha) + 0.5 * (math.log(total) - math.log(variance))
    radius = math.sqrt(2 * variance * (total / tau2) * log_bound)
    return Interval(low=difference - radius, high=difference + radius, confidence=1 - alpha)

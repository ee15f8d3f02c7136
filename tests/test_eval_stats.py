"""The statistics experiments stand on, checked against numbers computed another way.

Published examples (Newcombe 1998, R's `t.test` on the sleep data, Kohavi et al. 2020, Cohen 1988,
R's `p.adjust`, Wikipedia's kappa example), the defining formulas written out here or a second
library, and seeded simulations: the sequential test keeps its false-positive rate under alpha when
looked at every day, finds a real difference, and a broken split is caught.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from core.errors import InvalidInput
from core.evaluation import (
    Evidence,
    JudgedPair,
    Outcome,
    Pick,
    SampleRatioCheck,
    Verdict,
    calibrate_judge,
    check_sample_ratio,
    compare_means,
    compare_proportions,
    decide,
    evidence,
    head_to_head,
    holm,
    plan_sample_size,
    sequential_means,
    sequential_proportions,
)
from core.evaluation.sequential import confidence_sequence, log_likelihood_ratio

Z95 = stats.norm.ppf(0.975)


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


# Two proportions


def test_newcombes_interval_matches_the_published_example():
    # Newcombe (1998), "Interval estimation for the difference between independent proportions: comparison
    # of eleven methods", Stat Med 17:873-890, Table II, example (a) 56/70 - 48/80, method 10: 0.0524 to 0.3339.
    result = compare_proportions(baseline_successes=48, baseline_trials=80, candidate_successes=56, candidate_trials=70)
    assert result.difference == pytest.approx(56 / 70 - 48 / 80)
    assert (round(result.interval.low, 4), round(result.interval.high, 4)) == (0.0524, 0.3339)
    # The same interval from its definition: the Wilson limits of each rate, combined (Newcombe's method 10).
    (l1, u1), (l2, u2) = wilson(56, 70), wilson(48, 80)
    p1, p2 = 56 / 70, 48 / 80
    assert result.interval.low == pytest.approx(p1 - p2 - math.hypot(p1 - l1, u2 - p2))
    assert result.interval.high == pytest.approx(p1 - p2 + math.hypot(u1 - p1, p2 - l2))


def test_z_test_agrees_with_the_formula_and_the_uncorrected_chi_square():
    result = compare_proportions(baseline_successes=48, baseline_trials=80, candidate_successes=56, candidate_trials=70)
    pooled = 104 / 150
    z = (56 / 70 - 48 / 80) / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    assert result.statistic == pytest.approx(z)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    # R's prop.test(c(56, 48), c(70, 80), correct = FALSE) is this chi-square test of the 2x2 table.
    chi2 = stats.chi2_contingency([[56, 14], [48, 32]], correction=False)
    assert result.p_value == pytest.approx(chi2.pvalue)


def test_proportions_that_never_vary_give_no_difference_and_no_nan():
    result = compare_proportions(baseline_successes=0, baseline_trials=10, candidate_successes=0, candidate_trials=12)
    assert result.p_value == 1.0 and result.statistic == 0.0
    assert result.interval.low < 0 < result.interval.high


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"candidate_successes": 11}, "candidate_successes"),
        ({"baseline_trials": 0}, "baseline_trials"),
        ({"baseline_successes": -1}, "baseline_successes"),
        ({"candidate_trials": 10.5}, "candidate_trials"),
        ({"candidate_trials": True}, "candidate_trials"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": 5}, "alpha"),
    ],
)
def test_bad_counts_are_refused_naming_the_argument(arguments, named):
    good = {"baseline_successes": 5, "baseline_trials": 10, "candidate_successes": 6, "candidate_trials": 10}
    with pytest.raises(InvalidInput, match=f"`{named}`") as caught:
        compare_proportions(**{**good, **arguments})
    assert caught.value.hint and caught.value.ids["argument"] == named


# Two means

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_matches_r_on_the_sleep_data():
    # R: t.test(extra ~ group, data = sleep) -> Welch Two Sample t-test: t = -1.8608, df = 17.776,
    # p-value = 0.07939, 95 percent confidence interval: -3.3654832 0.2054832 (group 1 minus group 2).
    result = compare_means(SLEEP_2, SLEEP_1)
    assert result.difference == pytest.approx(-1.58)
    assert round(result.statistic, 4) == -1.8608 and round(result.df, 3) == 17.776
    assert round(result.p_value, 5) == 0.07939
    assert (round(result.interval.low, 7), round(result.interval.high, 7)) == (-3.3654832, 0.2054832)


def test_welch_interval_by_the_formula():
    result = compare_means(SLEEP_2, SLEEP_1, alpha=0.1)
    v1, v2 = np.var(SLEEP_1, ddof=1) / 10, np.var(SLEEP_2, ddof=1) / 10
    df = (v1 + v2) ** 2 / (v1**2 / 9 + v2**2 / 9)
    half = stats.t.ppf(0.95, df) * math.sqrt(v1 + v2)
    assert result.df == pytest.approx(df)
    assert (result.interval.low, result.interval.high) == (pytest.approx(-1.58 - half), pytest.approx(-1.58 + half))
    assert result.interval.confidence == pytest.approx(0.9)


def test_means_that_never_vary():
    same = compare_means([1.0, 1.0], [1.0, 1.0, 1.0])
    assert same.p_value == 1.0 and (same.interval.low, same.interval.high) == (0.0, 0.0)
    apart = compare_means([1.0, 1.0], [2.0, 2.0])
    assert apart.p_value == 0.0 and apart.difference == 1.0


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ([1.0, float("nan"), 2.0], r"`baseline`\[1\] must be a finite number"),
        ([1.0, "2"], r"`baseline`\[1\] must be a finite number"),
        ([1.0], "`baseline` needs at least 2 observations"),
        ("1, 2, 3", "`baseline` must be a list of numbers"),
    ],
)
def test_bad_samples_are_refused_naming_the_observation(baseline, message):
    with pytest.raises(InvalidInput, match=message):
        compare_means(baseline, [1.0, 2.0])


def test_values_too_large_to_compute_with_are_refused_briefly():
    for huge in (1e200, 10**400):
        with pytest.raises(InvalidInput, match=r"`candidate`\[0\] must be a finite number of magnitude at most"):
            compare_means([1.0, 2.0], [huge, 1.0])
    with pytest.raises(InvalidInput) as caught:
        compare_means(["x" * 100_000, 1.0], [1.0, 2.0])  # type: ignore[list-item]
    assert len(str(caught.value)) < 300


# Sample-ratio mismatch


def test_srm_matches_kohavis_example():
    # Kohavi, Tang & Xu (2020), Trustworthy Online Controlled Experiments, ch. 21: 821,588 vs 815,482 users on
    # a 50/50 split looks close, yet the p-value is 1.8e-6: a sample-ratio mismatch.
    result = check_sample_ratio([821_588, 815_482], expected_shares=[0.5, 0.5])
    assert f"{result.p_value:.1e}" == "1.8e-06" and result.mismatch
    expected = (821_588 + 815_482) / 2
    chi2 = sum((o - expected) ** 2 / expected for o in (821_588, 815_482))
    assert result.statistic == pytest.approx(chi2) and result.p_value == pytest.approx(stats.chi2.sf(chi2, 1))


def test_srm_against_a_canary_split_by_the_formula():
    result = check_sample_ratio([9_100, 900], expected_shares=[0.9, 0.1])
    chi2 = (9_100 - 9_000) ** 2 / 9_000 + (900 - 1_000) ** 2 / 1_000
    assert result.expected == [9_000, 1_000] and result.statistic == pytest.approx(chi2)
    assert result.p_value == pytest.approx(stats.chi2.sf(chi2, 1)) and result.mismatch


def test_srm_is_caught_in_simulation_and_a_fair_split_passes():
    rng = np.random.default_rng(7)
    broken = [rng.binomial(20_000, 0.47) for _ in range(50)]  # 47/53 where 50/50 was configured
    assert all(check_sample_ratio([k, 20_000 - k], expected_shares=[0.5, 0.5]).mismatch for k in broken)
    fair = [rng.binomial(20_000, 0.1) for _ in range(500)]
    flagged = sum(check_sample_ratio([20_000 - k, k], expected_shares=[0.9, 0.1]).mismatch for k in fair)
    assert flagged <= 3  # 0.1 % expected


@pytest.mark.parametrize(
    ("observed", "shares", "message"),
    [
        ([50, 50], [50, 50], "expected_shares"),
        ([50, 50], [0.5, 0.6], "sum to 1"),
        ([50, 50], [1.0, 0.0], "above 0"),
        ([50, 50, 10], [0.5, 0.5], "one share per arm"),
        ([0, 0], [0.5, 0.5], "every arm is empty"),
        ([10, -1], [0.5, 0.5], r"`observed\[1\]`"),
        (100, [0.5, 0.5], "`observed` must be a list of counts"),
    ],
)
def test_bad_splits_are_refused(observed, shares, message):
    with pytest.raises(InvalidInput, match=message):
        check_sample_ratio(observed, expected_shares=shares)


# Holm


def test_holm_matches_r_p_adjust():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), method = "holm") -> 0.03 0.06 0.06 0.02
    result = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert [r.adjusted_p_value for r in result] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r.significant for r in result] == [True, False, False, True]


def holm_by_hand(p_values: list[float]) -> list[float]:
    m, order = len(p_values), sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@settings(max_examples=40, deadline=None)  # each call pays statsmodels' gc.collect()
@given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_holm_equals_the_step_down_procedure(p_values):
    result = holm({f"m{i}": p for i, p in enumerate(p_values)})
    assert [r.adjusted_p_value for r in result] == pytest.approx(holm_by_hand(p_values))
    assert all(r.adjusted_p_value >= r.p_value for r in result)


def test_holm_refuses_what_is_not_a_p_value():
    with pytest.raises(InvalidInput, match="p_values\\['b'\\]"):
        holm({"a": 0.1, "b": 1.5})
    bad_values: list[object] = [{}, ["a", "b"], 0.01]
    for bad in bad_values:
        with pytest.raises(InvalidInput, match="`p_values` must map"):
            holm(bad)  # type: ignore[arg-type]


# Power and time to decision


def test_sample_size_matches_cohens_table_and_the_formula():
    # Cohen (1988), Statistical Power Analysis, Table 6.4.1: h = 0.20, two-sided alpha .05, power .80 -> n = 392.
    base = 0.5
    target = math.sin(math.asin(math.sqrt(base)) + 0.1) ** 2  # 2·asin√p2 - 2·asin√p1 = 0.2
    plan = plan_sample_size(baseline_rate=base, effect=target - base)
    assert abs(plan.baseline_n - 392) <= 1 and plan.candidate_n == plan.baseline_n
    formula = 2 * ((Z95 + stats.norm.ppf(0.8)) / 0.2) ** 2
    assert plan.baseline_n == math.ceil(formula)


def test_sample_size_for_an_unequal_canary_split():
    plan = plan_sample_size(baseline_rate=0.6, effect=0.05, candidate_share=0.2, alpha=0.05, power=0.9)
    h = 2 * math.asin(math.sqrt(0.65)) - 2 * math.asin(math.sqrt(0.6))
    k = 0.2 / 0.8  # candidate per baseline observation
    n_base = (1 + 1 / k) * ((Z95 + stats.norm.ppf(0.9)) / h) ** 2
    assert plan.baseline_n == pytest.approx(n_base, rel=1e-3)
    assert plan.candidate_n == pytest.approx(n_base * k, rel=1e-3)


def test_time_to_decision_from_the_weekly_volume():
    plan = plan_sample_size(baseline_rate=0.8, effect=0.05, weekly_volume=420, unit="rated replies")
    assert plan.weeks == pytest.approx(plan.total_n / 420, rel=1e-2)
    assert plan.summary == (
        f"At 420 rated replies a week this needs about {math.ceil(plan.total_n / 420)} weeks "
        f"({plan.total_n:,} rated replies) to detect +5 points on a baseline of 80%."
    )
    fast = plan_sample_size(baseline_rate=0.5, effect=-0.2, weekly_volume=1_000)
    assert "−20 points" in fast.summary and "days" in fast.summary
    assert "This needs" in plan_sample_size(baseline_rate=0.5, effect=0.1).summary


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"effect": 0.05, "baseline_rate": 0.98}, "effect"),
        ({"effect": 0.0}, "effect"),
        ({"baseline_rate": 1.0}, "baseline_rate"),
        ({"candidate_share": 0}, "candidate_share"),
        ({"weekly_volume": 0}, "weekly_volume"),
        ({"power": 80}, "power"),
    ],
)
def test_bad_plans_are_refused(arguments, named):
    with pytest.raises(InvalidInput, match=f"`{named}`"):
        plan_sample_size(**{"baseline_rate": 0.5, "effect": 0.05, **arguments})


# The always-valid sequential test


@pytest.mark.parametrize(
    ("difference", "variance", "tau"), [(0.03, 0.0004, 0.05), (-0.1, 0.001, 0.02), (0.0, 0.01, 0.1)]
)
def test_mixture_likelihood_ratio_equals_the_integral_it_stands_for(difference, variance, tau):
    # Λ = ∫ N(θ̂; θ, s²) / N(θ̂; 0, s²) · N(θ; 0, τ²) dθ, integrated numerically.
    s = math.sqrt(variance)

    def integrand(theta: float) -> float:
        ratio = stats.norm.pdf(difference, theta, s) / stats.norm.pdf(difference, 0, s)
        return ratio * stats.norm.pdf(theta, 0, tau)

    numeric, _ = integrate.quad(integrand, -10 * tau, 10 * tau, points=[difference])
    assert math.exp(log_likelihood_ratio(difference, variance, tau)) == pytest.approx(numeric, rel=1e-6)


def test_confidence_sequence_ends_where_the_test_starts_rejecting():
    interval = confidence_sequence(0.04, 0.0002, 0.05, 0.05)
    for edge in (interval.low, interval.high):
        assert log_likelihood_ratio(0.04 - edge, 0.0002, 0.05) == pytest.approx(math.log(1 / 0.05))


def simulate(*, rates, per_day, days, experiments, seed, share=0.5, naive=False) -> float:
    """Share of experiments declared significant at some daily look."""
    rng = np.random.default_rng(seed)
    n_cand = round(per_day * share)
    n_base = per_day - n_cand
    declared = 0
    for _ in range(experiments):
        k_base = rng.binomial(n_base, rates[0], size=days).cumsum()
        k_cand = rng.binomial(n_cand, rates[1], size=days).cumsum()
        p_value = 1.0
        for day in range(days):
            counts = {
                "baseline_successes": int(k_base[day]),
                "baseline_trials": n_base * (day + 1),
                "candidate_successes": int(k_cand[day]),
                "candidate_trials": n_cand * (day + 1),
            }
            if naive:
                significant = compare_proportions(**counts).p_value <= 0.05
            else:
                look = sequential_proportions(**counts, previous_p_value=p_value)
                p_value, significant = look.p_value, look.significant
            if significant:
                declared += 1
                break
    return declared / experiments


def test_sequential_test_keeps_false_positives_under_alpha_when_looked_at_daily():
    # 1,000 A/A experiments, 420 rated replies a week (60 a day), a look every day for four weeks.
    assert simulate(rates=(0.6, 0.6), per_day=60, days=28, experiments=1000, seed=1) <= 0.05


def test_peeking_at_a_fixed_horizon_test_would_not():
    # The same simulation with the z-test read daily: the inflation the sequential test exists to prevent.
    assert simulate(rates=(0.6, 0.6), per_day=60, days=28, experiments=300, seed=1, naive=True) > 0.1


def test_sequential_test_keeps_false_positives_under_alpha_on_a_canary_split():
    assert simulate(rates=(0.85, 0.85), per_day=300, days=20, experiments=500, seed=2, share=0.1) <= 0.05


def test_sequential_test_finds_a_real_five_point_difference():
    assert simulate(rates=(0.6, 0.65), per_day=300, days=28, experiments=200, seed=3) >= 0.9


def test_sequential_means_keeps_false_positives_under_alpha():
    rng = np.random.default_rng(4)
    declared = 0
    for _ in range(300):
        base, cand = rng.normal(0.7, 0.2, size=(2, 20, 25))
        p_value = 1.0
        for day in range(1, 21):
            look = sequential_means(base[:day].ravel(), cand[:day].ravel(), mixing_sd=0.05, previous_p_value=p_value)
            p_value = look.p_value
            if look.significant:
                declared += 1
                break
    assert declared / 300 <= 0.05


def test_sequential_means_finds_a_real_difference():
    rng = np.random.default_rng(5)
    base, cand = rng.normal(0.60, 0.2, size=2000), rng.normal(0.65, 0.2, size=2000)
    look = sequential_means(base, cand, mixing_sd=0.05)
    assert look.significant and look.interval is not None and look.interval.contains(0.05)
    assert not look.of_rates


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e100, 1e100), min_size=2, max_size=40),
    st.lists(st.floats(-1e100, 1e100), min_size=2, max_size=40),
    st.floats(1e-100, 1e100),
)
def test_any_look_gives_a_p_value_and_never_nan(baseline, candidate, mixing_sd):
    look = sequential_means(baseline, candidate, mixing_sd=mixing_sd, min_trials=2, previous_p_value=0.5)
    assert 0 <= look.p_value <= 0.5
    if look.likelihood_ratio is not None:
        assert not math.isnan(look.likelihood_ratio) and look.likelihood_ratio >= 0
    if look.interval is not None:
        assert look.interval.low <= look.difference <= look.interval.high


def test_the_p_value_only_falls_and_early_looks_do_not_count():
    early = sequential_proportions(
        baseline_successes=2, baseline_trials=10, candidate_successes=9, candidate_trials=10, previous_p_value=0.4
    )
    assert early.p_value == 0.4 and early.likelihood_ratio is None and "10 observations" in (early.reason or "")
    later = sequential_proportions(
        baseline_successes=300, baseline_trials=1000, candidate_successes=310, candidate_trials=1000,
        previous_p_value=0.01,
    )  # fmt: skip
    assert later.p_value == 0.01 and later.likelihood_ratio is not None and later.likelihood_ratio < 100
    assert later.interval is not None and later.interval.contains(later.difference) and later.of_rates


def test_identical_outcomes_carry_the_previous_p_value():
    look = sequential_proportions(
        baseline_successes=50, baseline_trials=50, candidate_successes=50, candidate_trials=50, previous_p_value=0.3
    )
    assert look.p_value == 0.3 and look.interval is None and look.reason


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"mixing_sd": 0}, "mixing_sd"),
        ({"mixing_sd": float("inf")}, "mixing_sd"),
        ({"mixing_sd": 1e-200}, "mixing_sd"),  # τ² would underflow to 0
        ({"mixing_sd": 1e200}, "mixing_sd"),  # τ² would overflow
        ({"previous_p_value": 2}, "previous_p_value"),
        ({"min_trials": 1}, "min_trials"),
        ({"candidate_successes": 101}, "candidate_successes"),
    ],
)
def test_bad_sequential_arguments_are_refused(arguments, named):
    good = {"baseline_successes": 50, "baseline_trials": 100, "candidate_successes": 60, "candidate_trials": 100}
    with pytest.raises(InvalidInput, match=f"`{named}`"):
        sequential_proportions(**{**good, **arguments})


# The head-to-head judge


def pairs_from(counts: dict[tuple[Pick, Pick], int]) -> list[JudgedPair]:
    return [JudgedPair(first, second) for (first, second), n in counts.items() for _ in range(n)]


def test_both_orders_decide_a_pair_and_disagreement_is_a_tie():
    assert JudgedPair(Pick.SECOND, Pick.FIRST).outcome is Outcome.WIN  # candidate picked in both positions
    assert JudgedPair(Pick.FIRST, Pick.SECOND).outcome is Outcome.LOSS
    assert JudgedPair(Pick.TIE, Pick.TIE).outcome is Outcome.TIE and JudgedPair(Pick.TIE, Pick.TIE).consistent
    assert JudgedPair(Pick.FIRST, Pick.FIRST).outcome is Outcome.TIE  # always the first position: no verdict
    assert not JudgedPair(Pick.FIRST, Pick.FIRST).consistent
    assert JudgedPair(Pick.SECOND, Pick.TIE).outcome is Outcome.TIE


def test_head_to_head_counts_rates_and_the_sign_test():
    pairs = pairs_from(
        {
            (Pick.SECOND, Pick.FIRST): 30,  # wins
            (Pick.FIRST, Pick.SECOND): 14,  # losses
            (Pick.TIE, Pick.TIE): 6,
            (Pick.FIRST, Pick.FIRST): 10,  # position bias: ties
        }
    )
    result = head_to_head(pairs)
    assert (result.pairs, result.wins, result.losses, result.ties) == (60, 30, 14, 16)
    assert result.win_rate == pytest.approx((30 + 8) / 60) and result.difference == pytest.approx(38 / 60 - 0.5)
    assert result.order_consistency == pytest.approx(50 / 60)
    # Sign test by hand: two-sided binomial tail of 30 wins out of 44 decided pairs.
    tail = sum(math.comb(44, k) for k in range(30, 45)) / 2**44
    assert result.p_value == pytest.approx(2 * tail)


def test_win_rate_interval_is_seeded_and_agrees_with_other_intervals():
    pairs = pairs_from({(Pick.SECOND, Pick.FIRST): 110, (Pick.FIRST, Pick.SECOND): 70, (Pick.TIE, Pick.TIE): 20})
    result = head_to_head(pairs, seed=11)
    assert head_to_head(pairs, seed=11).interval == result.interval
    scores = np.array([1.0] * 110 + [0.0] * 70 + [0.5] * 20)
    rng = np.random.default_rng(0)
    means = rng.choice(scores, size=(4000, scores.size)).mean(axis=1)
    percentile = np.percentile(means, [2.5, 97.5])
    normal = scores.mean() + np.array([-1, 1]) * Z95 * scores.std(ddof=1) / math.sqrt(scores.size)
    for other in (percentile, normal):
        assert result.interval.low == pytest.approx(other[0], abs=0.015)
        assert result.interval.high == pytest.approx(other[1], abs=0.015)


def test_a_unanimous_judge_gives_a_point_interval_and_an_exact_p_value():
    result = head_to_head(pairs_from({(Pick.SECOND, Pick.FIRST): 8}))
    assert (result.interval.low, result.interval.high) == (1.0, 1.0)
    assert result.p_value == pytest.approx(2 * 0.5**8)
    all_ties = head_to_head(pairs_from({(Pick.FIRST, Pick.FIRST): 3}))
    assert all_ties.p_value == 1.0 and all_ties.win_rate == 0.5


def test_bad_pairs_are_refused_naming_the_pair():
    with pytest.raises(InvalidInput, match=r"`pairs\[1\].candidate_first` is 'left'"):
        head_to_head([JudgedPair(Pick.FIRST, Pick.SECOND), JudgedPair(Pick.FIRST, "left")])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"`pairs`\[0\] must be a JudgedPair"):
        head_to_head([("first", "second")])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="non-empty"):
        head_to_head([])


# Judge calibration


def fleiss_ase(table: np.ndarray) -> tuple[float, float]:
    """Cohen's kappa and its large-sample standard error (Fleiss, Cohen & Everitt 1969), written out."""
    p = table / table.sum()
    rows, cols = p.sum(1), p.sum(0)
    po, pe = np.trace(p), float((rows * cols).sum())
    kappa = (po - pe) / (1 - pe)
    a = sum(p[i, i] * (1 - (rows[i] + cols[i]) * (1 - kappa)) ** 2 for i in range(len(p)))
    b = (1 - kappa) ** 2 * sum(
        p[i, j] * (cols[i] + rows[j]) ** 2 for i in range(len(p)) for j in range(len(p)) if i != j
    )
    c = (kappa - pe * (1 - kappa)) ** 2
    return kappa, math.sqrt((a + b - c) / table.sum()) / (1 - pe)


def test_calibration_matches_the_wikipedia_kappa_example():
    # en.wikipedia.org/wiki/Cohen%27s_kappa, "Simple example": 50 proposals, yes/yes 20, yes/no 5, no/yes 10,
    # no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4. Users' picks are the rows, the judge's the columns.
    cells = {(Pick.FIRST, Pick.FIRST): 20, (Pick.FIRST, Pick.SECOND): 5, (Pick.SECOND, Pick.FIRST): 10}
    cells[(Pick.SECOND, Pick.SECOND)] = 15
    users = [user for (user, _), n in cells.items() for _ in range(n)]
    judge = [pick for (_, pick), n in cells.items() for _ in range(n)]
    result = calibrate_judge(judge, users)
    assert result.n == 50 and result.accuracy == pytest.approx(0.7) and result.kappa == pytest.approx(0.4)
    kappa, ase = fleiss_ase(np.array([[20.0, 5.0], [10.0, 15.0]]))
    assert result.kappa_interval is not None and kappa == pytest.approx(0.4)
    assert result.kappa_interval.low == pytest.approx(0.4 - Z95 * ase)
    assert result.kappa_interval.high == pytest.approx(0.4 + Z95 * ase)
    assert result.confusion["first"] == {"first": 20, "second": 5, "tie": 0}
    assert result.kappa_p_value is not None and result.kappa_p_value < 0.01


def test_calibration_without_kappa_when_one_side_gives_one_label():
    result = calibrate_judge([Pick.FIRST] * 5, [Pick.FIRST] * 5)
    assert result.accuracy == 1.0 and result.kappa is None and result.kappa_interval is None
    constant_users = calibrate_judge([Pick.FIRST, Pick.SECOND, Pick.FIRST], [Pick.FIRST] * 3)
    assert constant_users.accuracy == pytest.approx(2 / 3) and constant_users.kappa is None


def test_perfect_disagreement_has_kappa_minus_one():
    result = calibrate_judge([Pick.FIRST, Pick.SECOND] * 2, [Pick.SECOND, Pick.FIRST] * 2)
    assert result.accuracy == 0.0 and result.kappa == pytest.approx(-1.0)


def test_bad_calibration_input_is_refused():
    with pytest.raises(InvalidInput, match="3 picks and `users` 2"):
        calibrate_judge([Pick.FIRST] * 3, [Pick.FIRST] * 2)
    with pytest.raises(InvalidInput, match=r"`users\[1\]` is 'final'"):
        calibrate_judge(["first", "second"], ["first", "final"])  # type: ignore[list-item]


# The verdict


def srm_ok() -> SampleRatioCheck:
    return check_sample_ratio([5_010, 4_990], expected_shares=[0.5, 0.5])


def test_a_sample_ratio_mismatch_blocks_any_verdict():
    srm = check_sample_ratio([5_600, 4_400], expected_shares=[0.5, 0.5])
    decision = decide([Evidence(name="acceptance", difference=0.2, p_value=1e-9, in_points=True)], srm=srm)
    assert decision.verdict is Verdict.INCONCLUSIVE and decision.adjusted == []
    assert "5,600 and 4,400" in decision.reason and "SRM p = " in decision.reason
    assert decision.reason.count(".") >= 1 and decision.reason.endswith("fixed.")


def test_holm_turns_two_marginal_wins_into_no_verdict():
    items = [
        Evidence(name="acceptance", difference=0.03, p_value=0.03),
        Evidence(name="rouge_l", difference=0.02, p_value=0.04),
    ]
    decision = decide(items, srm=srm_ok())  # each below 0.05 alone, both 0.06 after Holm
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert [a.adjusted_p_value for a in decision.adjusted] == pytest.approx([0.06, 0.06])
    assert "across 2 metrics" in decision.reason and "closest: acceptance" in decision.reason


def test_a_significant_regression_loses_even_beside_a_win():
    items = [
        evidence("acceptance", compare_proportions(baseline_successes=600, baseline_trials=1000,
                                                   candidate_successes=680, candidate_trials=1000)),
        Evidence(name="edit_distance", difference=0.08, p_value=0.001, higher_is_better=False),
    ]  # fmt: skip
    decision = decide(items, srm=srm_ok())
    assert decision.verdict is Verdict.LOSER
    assert decision.reason.startswith("Loser: edit_distance is worse by 0.08")
    assert "although acceptance is better by 8 points" in decision.reason


def test_a_significant_gain_without_regression_wins():
    decision = decide(
        [
            evidence("acceptance", compare_proportions(baseline_successes=600, baseline_trials=1000,
                                                       candidate_successes=680, candidate_trials=1000)),
            evidence("length", compare_means([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]), higher_is_better=False),
        ],
        srm=None,
    )  # fmt: skip
    assert decision.verdict is Verdict.WINNER
    assert decision.reason.startswith("Winner: acceptance is better by 8 points (Holm-adjusted p = ")
    assert decision.reason.endswith("and no metric is significantly worse.")


def test_one_metric_without_a_difference():
    decision = decide([Evidence(name="acceptance", difference=0.012, p_value=0.2, in_points=True)], srm=srm_ok())
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.reason == "Inconclusive: acceptance does not differ significantly (+1.2 points, p = 0.2)."


def test_the_judge_and_the_sequential_test_are_evidence_too():
    judge = head_to_head(pairs_from({(Pick.SECOND, Pick.FIRST): 40, (Pick.FIRST, Pick.SECOND): 10}))
    look = sequential_proportions(
        baseline_successes=500, baseline_trials=1000, candidate_successes=505, candidate_trials=1000
    )
    decision = decide([evidence("judge", judge), evidence("acceptance", look)], srm=None)
    assert decision.verdict is Verdict.WINNER and "judge is better by 30 points" in decision.reason


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "no evidence"),
        ([Evidence(name="a", difference=0.1, p_value=0.2)] * 2, "more than once"),
        ([Evidence(name="a", difference=float("nan"), p_value=0.2)], "`a.difference`"),
        ([Evidence(name="a", difference=0.1, p_value=1.2)], "`a.p_value`"),
        ([{"name": "a", "difference": 0.1, "p_value": 0.2}], r"`items`\[0\] is a dict, not Evidence"),
    ],
)
def test_bad_evidence_is_refused(items, message):
    with pytest.raises(InvalidInput, match=message):
        decide(items, srm=None)


def test_only_test_results_become_evidence():
    with pytest.raises(InvalidInput, match="'acceptance' is a float, not a test result"):
        evidence("acceptance", 0.03)  # type: ignore[arg-type]

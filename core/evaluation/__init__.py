"""Evaluation: how a model's outputs compare with the users' final texts, and whether a candidate beats a baseline.

Pure functions with typed results, no storage: `metrics` scores outputs per
example and averages them with intervals; `stats` holds the fixed-horizon tests,
the sample-ratio check, Holm's correction and sample sizes; `sequential` the
always-valid test for looking at a canary after every batch; `judge` a
head-to-head judge's results and its calibration; `verdict` turns the tests
into winner, loser or inconclusive. Faces import from here.
"""

from core.evaluation.base import DEFAULT_ALPHA, DEFAULT_CONFIDENCE, Interval
from core.evaluation.judge import Calibration, HeadToHead, JudgedPair, Outcome, Pick, calibrate_judge, head_to_head
from core.evaluation.metrics import (
    METRICS,
    ExampleScores,
    Metric,
    MetricSpec,
    MetricSummary,
    RougeL,
    Scale,
    edit_distance,
    exact_match,
    json_valid,
    lcs_length,
    rouge_l,
    score_example,
    summarize,
)
from core.evaluation.sequential import (
    DEFAULT_PROPORTION_MIXING_SD,
    MIN_TRIALS,
    SequentialTest,
    sequential_means,
    sequential_proportions,
)
from core.evaluation.stats import (
    SRM_THRESHOLD,
    AdjustedP,
    MeanTest,
    ProportionTest,
    SamplePlan,
    SampleRatioCheck,
    check_sample_ratio,
    compare_means,
    compare_proportions,
    holm,
    plan_sample_size,
)
from core.evaluation.verdict import Decision, Evidence, TestResult, Verdict, decide, evidence

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_PROPORTION_MIXING_SD",
    "METRICS",
    "MIN_TRIALS",
    "SRM_THRESHOLD",
    "AdjustedP",
    "Calibration",
    "Decision",
    "Evidence",
    "ExampleScores",
    "HeadToHead",
    "Interval",
    "JudgedPair",
    "MeanTest",
    "Metric",
    "MetricSpec",
    "MetricSummary",
    "Outcome",
    "Pick",
    "ProportionTest",
    "RougeL",
    "SamplePlan",
    "SampleRatioCheck",
    "Scale",
    "SequentialTest",
    "TestResult",
    "Verdict",
    "calibrate_judge",
    "check_sample_ratio",
    "compare_means",
    "compare_proportions",
    "decide",
    "edit_distance",
    "evidence",
    "exact_match",
    "head_to_head",
    "holm",
    "json_valid",
    "lcs_length",
    "plan_sample_size",
    "rouge_l",
    "score_example",
    "sequential_means",
    "sequential_proportions",
    "summarize",
]

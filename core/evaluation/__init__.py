"""Evaluation: how a model's outputs compare with the users' final texts, and whether a candidate beats a baseline.

Pure functions with typed results, no storage: `metrics` scores outputs per
example and averages them with intervals; `stats` holds the fixed-horizon tests,
the sample-ratio check, Holm's correction and sample sizes; `sequential` the
always-valid test for looking at a canary after every batch; `judge` a
head-to-head judge's results and its calibration; `verdict` turns the tests
into winner, loser or inconclusive. `runs` runs and stores offline evaluations
(a candidate against a baseline, judged by `judging`; their SQL in `db`,
their summary in `summary`). `experiments` runs online A/B experiments on outcomes
(their SQL in `exp_db`); `guard` guards canaries with them. Faces import from here.
"""

from core.evaluation.base import DEFAULT_ALPHA, DEFAULT_CONFIDENCE, Interval
from core.evaluation.experiments import (
    EXPERIMENT_ID_PREFIX,
    Analysis,
    Experiment,
    ExperimentList,
    ExperimentReport,
    MetricResult,
    Outcomes,
    analyze,
    list_experiments,
    metric_text,
)
from core.evaluation.experiments import conclude as conclude_experiment
from core.evaluation.experiments import create as create_experiment
from core.evaluation.experiments import report as experiment_report
from core.evaluation.experiments import stop as stop_experiment
from core.evaluation.guard import (
    CanaryCheck,
    acceptance_guard,
    canary_facts,
    check_canary,
    guard_action_for,
    guard_canaries,
)
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
from core.evaluation.runs import (
    MAX_COST_USD,
    MAX_LIMIT,
    Evaluation,
    EvaluationList,
    EvaluationRunner,
    get_evaluation,
    list_evaluations,
    request_evaluation,
    run_evaluation,
    run_queued_evaluations,
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
    points,
)
from core.evaluation.summary import EvaluationSummary, LatencySummary
from core.evaluation.verdict import Decision, Evidence, TestResult, Verdict, decide, evidence

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_PROPORTION_MIXING_SD",
    "EXPERIMENT_ID_PREFIX",
    "MAX_COST_USD",
    "MAX_LIMIT",
    "METRICS",
    "MIN_TRIALS",
    "SRM_THRESHOLD",
    "AdjustedP",
    "Analysis",
    "Calibration",
    "CanaryCheck",
    "Decision",
    "Evaluation",
    "EvaluationList",
    "EvaluationRunner",
    "EvaluationSummary",
    "Evidence",
    "ExampleScores",
    "Experiment",
    "ExperimentList",
    "ExperimentReport",
    "HeadToHead",
    "Interval",
    "JudgedPair",
    "LatencySummary",
    "MeanTest",
    "Metric",
    "MetricResult",
    "MetricSpec",
    "MetricSummary",
    "Outcome",
    "Outcomes",
    "Pick",
    "ProportionTest",
    "RougeL",
    "SamplePlan",
    "SampleRatioCheck",
    "Scale",
    "SequentialTest",
    "TestResult",
    "Verdict",
    "acceptance_guard",
    "analyze",
    "calibrate_judge",
    "canary_facts",
    "check_canary",
    "check_sample_ratio",
    "compare_means",
    "compare_proportions",
    "conclude_experiment",
    "create_experiment",
    "decide",
    "edit_distance",
    "evidence",
    "exact_match",
    "experiment_report",
    "get_evaluation",
    "guard_action_for",
    "guard_canaries",
    "head_to_head",
    "holm",
    "json_valid",
    "lcs_length",
    "list_evaluations",
    "list_experiments",
    "metric_text",
    "plan_sample_size",
    "points",
    "request_evaluation",
    "rouge_l",
    "run_evaluation",
    "run_queued_evaluations",
    "score_example",
    "sequential_means",
    "sequential_proportions",
    "stop_experiment",
    "summarize",
]

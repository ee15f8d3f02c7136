"""Online A/B experiments: two versions behind an alias (its stable version and its canary), or two templates.

An experiment compares a control with a treatment on the outcomes that name
them: feedback events carrying the registry version and arm that served the
draft (`model_version`, `arm`), or the agent's `template`, from any ingest face.
A canary experiment's split is the alias's canary share, read from the
promotions ledger as it was when each outcome was served (a staged rollout
changes it), and only outcomes served while the alias ran this very pair count.
A template experiment's split is the one configured.

The analysis (`analyze`, pure) reports, per metric and arm, the rate or mean
with its interval; the fixed-horizon test of the difference (two proportions,
or Welch) with its interval; and the always-valid sequential p-value and
confidence sequence, looked at once per UTC day of outcomes (people look every
day; the sequential test stays valid however often). The verdict comes from
the sequential p-values only, Holm-adjusted across the experiment's metrics,
at the first daily look that reaches one (the test says stop there); a
sample-ratio mismatch against the configured split blocks every verdict. It
also says how many outcomes a fixed-horizon test needs to detect the chosen
change of the acceptance rate, and how long that takes at the observed weekly
volume. Every number comes from `core.evaluation.stats` and `sequential`.

A draft counts as accepted when the user kept all of it (acceptance 1.0:
unedited, or only added to) and did not turn it down (rated 2 or lower, or
thumbs down, without correcting it, as `core.data.datasets` leaves such drafts
out).

Ending an experiment (stop, or conclude with its verdict) keeps its last
analysis with it; a conclusion is announced in Slack (`ExperimentEnded`).

scipy and statsmodels are imported inside the functions that use them: together they cost about
0.4 s, which every `finetune` command would otherwise pay at start-up.
"""

from __future__ import annotations

import bisect
import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from core import registry
from core.data.datasets import REJECTED_AT
from core.data.fields import MAX_ID_CHARS
from core.errors import Conflict, InvalidInput, NotFound
from core.evaluation import exp_db
from core.evaluation.base import DEFAULT_ALPHA, Interval, check_level, shown
from core.evaluation.metrics import edit_distance
from core.evaluation.sequential import (
    DEFAULT_PROPORTION_MIXING_SD,
    MIN_TRIALS,
    SequentialTest,
    sequential_means,
    sequential_proportions,
)
from core.evaluation.stats import (
    MeanTest,
    ProportionTest,
    SamplePlan,
    SampleRatioCheck,
    check_sample_ratio,
    compare_means,
    compare_proportions,
    plan_sample_size,
    points,
)
from core.evaluation.verdict import Decision, Evidence, Verdict, decide, evidence
from core.platform import audit, events, outbox
from core.platform.actors import Actor
from core.platform.policy import authorize
from core.platform.store import Store
from core.platform.timeutil import iso, parse_iso
from core.services import Services
from core.vocabulary import ExperimentKind, ExperimentMetric, ExperimentState, Operation, one_of, values

EXPERIMENT_ID_PREFIX = "ab_"
DEFAULT_EFFECT = 0.05  # the change of the acceptance rate the sample size is planned for: +5 points
LIST_LIMIT = 20
_ID_LIMIT = 64
_WEEK = timedelta(days=7)
_ACCEPTED_AT = 1.0  # acceptance of a draft the user kept whole


# Metrics ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineMetric:
    """How one metric is read from an outcome and tested."""

    rate: bool  # yes or no per outcome: two-proportion tests; otherwise a mean: Welch's t-test
    higher_is_better: bool
    mixing_sd: float  # τ of the sequential test, in the metric's units: the size of change worth a decision
    meaning: str
    needs_texts: bool = False


METRICS: dict[ExperimentMetric, OnlineMetric] = {
    ExperimentMetric.ACCEPTANCE: OnlineMetric(
        True, True, DEFAULT_PROPORTION_MIXING_SD, "share of drafts accepted (kept whole, not turned down)"
    ),
    ExperimentMetric.MEAN_ACCEPTANCE: OnlineMetric(False, True, 0.05, "mean share of each draft's characters kept"),
    ExperimentMetric.EDIT_DISTANCE: OnlineMetric(
        False, False, 0.05, "characters changed over both texts' characters", needs_texts=True
    ),
    ExperimentMetric.RATING: OnlineMetric(False, True, 0.25, "mean rating, 1-5 (thumbs up 5, down 1)"),
    ExperimentMetric.LATENCY: OnlineMetric(False, False, 100.0, "mean latency in milliseconds"),
}


def metric_value(metric: ExperimentMetric, row: Mapping[str, Any]) -> float | None:
    """One outcome's value of `metric`; None when the outcome does not carry it."""
    if metric is ExperimentMetric.ACCEPTANCE:
        rejected = bool(row["unedited"]) and row["rating"] is not None and row["rating"] <= REJECTED_AT
        return float(row["acceptance"] >= _ACCEPTED_AT and not rejected)
    if metric is ExperimentMetric.EDIT_DISTANCE:
        draft = row["ai_output"]
        return edit_distance(draft, draft if row["final_output"] is None else row["final_output"])
    column = {
        ExperimentMetric.MEAN_ACCEPTANCE: "acceptance",
        ExperimentMetric.RATING: "rating",
        ExperimentMetric.LATENCY: "latency_ms",
    }[metric]
    value = row[column]
    return None if value is None else float(value)


# Outcomes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """An experiment's outcomes, oldest first: each one's day (an index into `days`), its arm, the treatment's
    configured share when it was served, and its value of each metric (NaN where it carries none)."""

    days: tuple[str, ...]
    day: npt.NDArray[np.int64]
    treatment: npt.NDArray[np.bool_]
    share: npt.NDArray[np.float64]
    values: Mapping[ExperimentMetric, npt.NDArray[np.float64]]

    @classmethod
    def of(cls, records: Sequence[tuple[str, bool, float, Mapping[ExperimentMetric, float | None]]]) -> Outcomes:
        """From (UTC day `YYYY-MM-DD`, served to the treatment, its share then, metric values), oldest first."""
        days = tuple(sorted({record[0] for record in records}))
        index = {day: number for number, day in enumerate(days)}
        metrics = {metric for record in records for metric in record[3]}
        return cls(
            days=days,
            day=np.array([index[record[0]] for record in records], dtype=np.int64),
            treatment=np.array([record[1] for record in records], dtype=np.bool_),
            share=np.array([record[2] for record in records], dtype=np.float64),
            values={
                metric: np.array([_nan(record[3].get(metric)) for record in records], dtype=np.float64)
                for metric in metrics
            },
        )

    def arms(self, metric: ExperimentMetric, *, through: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The control's and the treatment's values of `metric`, up to and including day `through`."""
        values = self.values.get(metric, np.full(len(self.day), np.nan))
        keep = ~np.isnan(values)
        if through is not None:
            keep &= self.day <= through
        return values[keep & ~self.treatment], values[keep & self.treatment]


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


# The analysis -------------------------------------------------------------------------------------------


class ArmValue(BaseModel):
    n: int = Field(description="Outcomes of this arm that carry the metric.")
    value: float | None = Field(description="The rate or mean; None without outcomes.")
    interval: Interval | None = Field(description="Wilson's interval of a rate, Student's t interval of a mean.")


class MetricResult(BaseModel):
    metric: ExperimentMetric
    primary: bool
    rate: bool = Field(description="A share of outcomes (two-proportion tests) rather than a mean (Welch).")
    higher_is_better: bool
    control: ArmValue
    treatment: ArmValue
    difference: float | None = Field(description="Treatment minus control.")
    test: str | None = Field(description="The fixed-horizon test of the difference.")
    p_value: float | None = Field(description="Fixed-horizon, two-sided: valid only at a sample size fixed ahead.")
    interval: Interval | None = Field(description="The fixed-horizon interval of the difference.")
    sequential_p_value: float = Field(description="Always valid, whenever and however often one looks.")
    sequential_interval: Interval | None = Field(description="The confidence sequence of the difference.")
    adjusted_p_value: float | None = Field(description="The sequential p-value after Holm's adjustment.")
    note: str | None = Field(description="Why a test is missing, when one is.")


class DailyPoint(BaseModel):
    """Both arms' primary metric over the outcomes up to the end of one UTC day."""

    day: str
    control_n: int
    treatment_n: int
    control: float | None
    treatment: float | None


class Analysis(BaseModel):
    control_n: int = Field(description="Outcomes of the control arm.")
    treatment_n: int = Field(description="Outcomes of the treatment arm.")
    expected_treatment_share: float | None = Field(description="The configured split, averaged over the outcomes.")
    srm: SampleRatioCheck | None = Field(description="The arms' sizes against the configured split.")
    metrics: list[MetricResult] = Field(description="The primary metric first.")
    verdict: Verdict
    reason: str = Field(description="The verdict's reason, in one sentence.")
    decided_on: str | None = Field(description="The UTC day whose look reached the verdict, if one did.")
    weekly_volume: float | None = Field(description="Outcomes a week over both arms.")
    plan: SamplePlan | None = Field(description="Outcomes a fixed-horizon test needs for the chosen effect.")
    plan_note: str | None = Field(description="The plan in one sentence, or why there is none.")
    daily: list[DailyPoint] = Field(description="The primary metric of both arms over time, for charts.")


def analyze(
    outcomes: Outcomes,
    *,
    metrics: Sequence[ExperimentMetric],
    alpha: float = DEFAULT_ALPHA,
    effect: float = DEFAULT_EFFECT,
    weeks: float | None = None,
) -> Analysis:
    """The analysis of `outcomes` on `metrics` (the primary first) at level `alpha`; `weeks` is the span they
    cover, for the weekly volume and the time to decision."""
    alpha = check_level("alpha", alpha)
    metrics = list(dict.fromkeys(metrics))
    if not metrics:
        raise InvalidInput(
            "`metrics` names no metric.", hint=f"Name the primary one first: {one_of(ExperimentMetric)}."
        )
    latest, reached = _walk(outcomes, metrics, alpha)
    srm = _sample_ratio(outcomes)
    latest_look = decide(_evidence(metrics, latest), srm=srm, alpha=alpha)
    decision, decided_on = _decision(outcomes, latest, latest_look, reached, srm)
    adjusted = {item.name: item.adjusted_p_value for item in latest_look.adjusted}
    volume = len(outcomes.day) / weeks if weeks and len(outcomes.day) else None
    plan, plan_note = _plan(outcomes, alpha=alpha, effect=effect, volume=volume)
    return Analysis(
        control_n=int((~outcomes.treatment).sum()),
        treatment_n=int(outcomes.treatment.sum()),
        expected_treatment_share=float(outcomes.share.mean()) if len(outcomes.share) else None,
        srm=srm,
        metrics=[
            _result(outcomes, metric, number == 0, latest[metric], adjusted.get(metric), alpha)
            for number, metric in enumerate(metrics)
        ],
        verdict=decision.verdict,
        reason=decision.reason,
        decided_on=decided_on,
        weekly_volume=volume,
        plan=plan,
        plan_note=plan_note,
        daily=_daily(outcomes, metrics[0]),
    )


def _walk(
    outcomes: Outcomes, metrics: list[ExperimentMetric], alpha: float
) -> tuple[dict[ExperimentMetric, SequentialTest | None], tuple[Decision, str] | None]:
    """One look per day of outcomes, in order: each metric's sequential test, and the first verdict reached."""
    previous = dict.fromkeys(metrics, 1.0)
    latest: dict[ExperimentMetric, SequentialTest | None] = dict.fromkeys(metrics)
    reached: tuple[Decision, str] | None = None
    for look, day in enumerate(outcomes.days):
        for metric in metrics:
            test = _sequential(METRICS[metric], *outcomes.arms(metric, through=look), previous[metric], alpha)
            if test is not None:
                latest[metric], previous[metric] = test, test.p_value
        # Holm never lowers a p-value, so no verdict is possible while every one is above alpha.
        if reached is None and min(previous.values()) <= alpha:
            decision = decide(_evidence(metrics, latest), srm=None, alpha=alpha)
            if decision.verdict is not Verdict.INCONCLUSIVE:
                reached = (decision, day)
    return latest, reached


def _sequential(
    spec: OnlineMetric, base: np.ndarray, cand: np.ndarray, previous: float, alpha: float
) -> SequentialTest | None:
    if spec.rate:
        if not len(base) or not len(cand):
            return None
        return sequential_proportions(
            baseline_successes=int(base.sum()), baseline_trials=len(base), candidate_successes=int(cand.sum()),
            candidate_trials=len(cand), previous_p_value=previous, mixing_sd=spec.mixing_sd, alpha=alpha,
        )  # fmt: skip
    if len(base) < 2 or len(cand) < 2:
        return None
    return sequential_means(base, cand, mixing_sd=spec.mixing_sd, previous_p_value=previous, alpha=alpha)


def _evidence(
    metrics: list[ExperimentMetric], latest: Mapping[ExperimentMetric, SequentialTest | None]
) -> list[Evidence]:
    """Every metric's latest sequential evidence; a metric without data yet stands at p = 1."""
    items = []
    for metric in metrics:
        spec, test = METRICS[metric], latest[metric]
        if test is None:
            items.append(Evidence(name=metric, difference=0.0, p_value=1.0, higher_is_better=spec.higher_is_better,
                                  in_points=spec.rate))  # fmt: skip
        else:
            items.append(evidence(metric, test, higher_is_better=spec.higher_is_better))
    return items


def _decision(
    outcomes: Outcomes, latest: Mapping[ExperimentMetric, SequentialTest | None], latest_look: Decision,
    reached: tuple[Decision, str] | None, srm: SampleRatioCheck | None,
) -> tuple[Decision, str | None]:  # fmt: skip
    """A split mismatch blocks; else the first verdict a look reached; else where the latest look stands."""
    if srm is not None and srm.mismatch:
        return latest_look, None
    if reached is not None:
        return reached
    if all(test is None or test.likelihood_ratio is None for test in latest.values()):
        return latest_look.model_copy(update={"reason": _too_few(outcomes)}), None
    return latest_look, None


def _too_few(outcomes: Outcomes) -> str:
    treated = int(outcomes.treatment.sum())
    return (
        f"Inconclusive: {len(outcomes.day) - treated:,} control and {treated:,} treatment outcomes so far; the"
        f" sequential test counts from {MIN_TRIALS} in each arm."
    )


def _sample_ratio(outcomes: Outcomes) -> SampleRatioCheck | None:
    """The arms' sizes against the split configured when each outcome was served; None where nothing can differ."""
    if not len(outcomes.share):
        return None
    share = float(outcomes.share.mean())
    if not 0 < share < 1:
        return None
    treated = int(outcomes.treatment.sum())
    return check_sample_ratio([len(outcomes.day) - treated, treated], expected_shares=[1 - share, share])


def _result(
    outcomes: Outcomes, metric: ExperimentMetric, primary: bool, sequential: SequentialTest | None,
    adjusted: float | None, alpha: float,
) -> MetricResult:  # fmt: skip
    spec = METRICS[metric]
    base, cand = outcomes.arms(metric)
    fixed = _fixed(spec, base, cand, alpha)
    return MetricResult(
        metric=metric, primary=primary, rate=spec.rate, higher_is_better=spec.higher_is_better,
        control=_arm_value(spec, base, alpha), treatment=_arm_value(spec, cand, alpha),
        difference=fixed.difference if fixed else None,
        test=("two-proportion z-test" if spec.rate else "Welch's t-test") if fixed else None,
        p_value=fixed.p_value if fixed else None, interval=fixed.interval if fixed else None,
        sequential_p_value=sequential.p_value if sequential else 1.0,
        sequential_interval=sequential.interval if sequential else None,
        adjusted_p_value=adjusted, note=_note(spec, base, cand, sequential),
    )  # fmt: skip


def _fixed(spec: OnlineMetric, base: np.ndarray, cand: np.ndarray, alpha: float) -> ProportionTest | MeanTest | None:
    if spec.rate:
        if not len(base) or not len(cand):
            return None
        return compare_proportions(
            baseline_successes=int(base.sum()), baseline_trials=len(base), candidate_successes=int(cand.sum()),
            candidate_trials=len(cand), alpha=alpha,
        )  # fmt: skip
    if len(base) < 2 or len(cand) < 2:
        return None
    return compare_means(base, cand, alpha=alpha)


def _arm_value(spec: OnlineMetric, values: np.ndarray, alpha: float) -> ArmValue:
    from statsmodels.stats.proportion import proportion_confint
    from statsmodels.stats.weightstats import (
        DescrStatsW,
    )

    if not len(values):
        return ArmValue(n=0, value=None, interval=None)
    if spec.rate:
        low, high = proportion_confint(int(values.sum()), len(values), alpha=alpha, method="wilson")
    elif len(values) < 2:
        return ArmValue(n=1, value=float(values[0]), interval=None)
    else:
        low, high = DescrStatsW(values).tconfint_mean(alpha=alpha)
    interval = Interval(low=float(low), high=float(high), confidence=1 - alpha)
    return ArmValue(n=len(values), value=float(values.mean()), interval=interval)


def _note(spec: OnlineMetric, base: np.ndarray, cand: np.ndarray, sequential: SequentialTest | None) -> str | None:
    fewest = min(len(base), len(cand))
    if fewest < (1 if spec.rate else 2):
        return f"an arm has {fewest} outcome(s) carrying it; the tests need {1 if spec.rate else 2} in each"
    return sequential.reason if sequential is not None else None


def _plan(outcomes: Outcomes, *, alpha: float, effect: float, volume: float | None) -> tuple[SamplePlan | None, str]:
    base, _ = outcomes.arms(ExperimentMetric.ACCEPTANCE)
    share = float(outcomes.share.mean()) if len(outcomes.share) else 0.0
    if not len(base) or not 0 < share < 1:
        return None, "The sample size needs control outcomes and a split that sends some to each arm."
    try:
        plan = plan_sample_size(
            baseline_rate=float(base.mean()), effect=effect, candidate_share=share, alpha=alpha,
            weekly_volume=volume, unit="outcomes",
        )  # fmt: skip
    except InvalidInput as exc:
        return None, f"No sample size: {exc.message}"
    return plan, plan.summary


def _daily(outcomes: Outcomes, metric: ExperimentMetric) -> list[DailyPoint]:
    points_ = []
    for look, day in enumerate(outcomes.days):
        base, cand = outcomes.arms(metric, through=look)
        points_.append(
            DailyPoint(
                day=day, control_n=len(base), treatment_n=len(cand),
                control=float(base.mean()) if len(base) else None, treatment=float(cand.mean()) if len(cand) else None,
            )
        )  # fmt: skip
    return points_


# What an experiment compares ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Arms:
    """The two arms and the window of outcomes: a canary pair behind `name@alias`, or `name`'s two templates."""

    kind: ExperimentKind
    name: str
    alias: str | None
    control: str
    treatment: str
    split: float | None  # a template experiment's configured treatment share
    since: str
    until: str | None = None


@dataclass(frozen=True)
class _Segment:
    """What an alias served from `start` until the next ledger row."""

    start: str
    stable: str
    canary: str | None
    share: int


def _segments(store: Store, name: str, alias: str) -> list[_Segment]:
    moves = [move for move in registry.history(store, name).moves if move.alias == alias]
    return [_Segment(m.at, m.to_version_id, m.canary_version_id, m.canary_share) for m in moves]


def canary_arms(store: Store, name: str, alias: str) -> Arms | None:
    """`name@alias`'s stable version against its canary, since this pair began serving; None without a canary."""
    current = {a.alias: a for a in registry.list_aliases(store, name)}.get(alias)
    if current is None or current.canary_version_id is None:
        return None
    since = current.updated_at
    for segment in reversed(_segments(store, name, alias)):
        if (segment.stable, segment.canary) != (current.version_id, current.canary_version_id):
            break
        since = segment.start
    return Arms(ExperimentKind.CANARY, name, alias, current.version_id, current.canary_version_id, None, since)


def collect(store: Store, arms: Arms, metrics: Sequence[ExperimentMetric], *, now: datetime) -> tuple[Outcomes, float]:
    """The outcomes of both arms with each metric's value, and the weeks they span (at least a day)."""
    rows = _rows(store, arms, texts=any(METRICS[metric].needs_texts for metric in metrics))
    share = _share(store, arms)
    records = []
    for row in rows:
        configured = share(row["created_at"])
        if configured is not None:
            values_ = {metric: metric_value(metric, row) for metric in metrics}
            records.append((row["created_at"][:10], bool(row["treatment"]), configured, values_))
    return Outcomes.of(records), _weeks(arms, rows, now)


def _rows(store: Store, arms: Arms, *, texts: bool) -> list[dict[str, Any]]:
    if arms.kind is ExperimentKind.CANARY:
        return exp_db.version_outcomes(
            store, control=arms.control, treatment=arms.treatment, since=arms.since, until=arms.until, texts=texts
        )
    return exp_db.template_outcomes(
        store, agent=arms.name, control=arms.control, treatment=arms.treatment, since=arms.since, until=arms.until,
        texts=texts,
    )  # fmt: skip


def _share(store: Store, arms: Arms) -> Callable[[str], float | None]:
    """The treatment's configured share when an outcome was served; None while its alias served another pair."""
    if arms.kind is ExperimentKind.CANARY:
        assert arms.alias is not None
        return _canary_share(_segments(store, arms.name, arms.alias), arms)
    return _split(arms.split or 0.0)


def _split(split: float) -> Callable[[str], float | None]:
    """A template experiment's share: the same whenever an outcome was served."""

    def share(_: str) -> float | None:
        return split

    return share


def _canary_share(segments: list[_Segment], arms: Arms) -> Callable[[str], float | None]:
    """The canary's share when an outcome was served, as a fraction; None while the alias served another pair."""
    starts = [segment.start for segment in segments]

    def share(created_at: str) -> float | None:
        index = bisect.bisect_right(starts, created_at) - 1
        if index < 0:
            return None
        segment = segments[index]
        if (segment.stable, segment.canary) != (arms.control, arms.treatment):
            return None
        return segment.share / 100

    return share


def _weeks(arms: Arms, rows: list[dict[str, Any]], now: datetime) -> float:
    end = parse_iso(arms.until) if arms.until else now
    if rows:
        end = max(end, parse_iso(rows[-1]["created_at"]))
    return max(end - parse_iso(arms.since), timedelta(days=1)) / _WEEK


# Experiments --------------------------------------------------------------------------------------------


class Experiment(BaseModel):
    id: str
    kind: ExperimentKind
    name: str = Field(description="The model (canary) or the agent (templates).")
    alias: str | None = Field(description="The alias whose canary is tested (canary experiments).")
    control: str = Field(description="The stable version, or the control template.")
    treatment: str = Field(description="The canary version, or the treatment template.")
    metric: ExperimentMetric = Field(description="The primary metric.")
    secondary: list[ExperimentMetric] = Field(description="Also reported and tested, Holm-adjusted with it.")
    split: float | None = Field(description="The treatment's configured share (templates); a canary's is its alias's.")
    alpha: float
    effect: float = Field(description="The change of the acceptance rate the sample size is planned for.")
    status: ExperimentState
    created_by: str
    created_at: str
    started_at: str = Field(description="Outcomes count from here (a canary: since its pair began serving).")
    ended_at: str | None
    ended_by: str | None
    verdict: Verdict | None = Field(description="Recorded when it ended.")
    reason: str | None

    @property
    def subject(self) -> str:
        """`support@production`, or `support templates`."""
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name} templates"

    @property
    def title(self) -> str:
        """`support@production: support:v3 against support:v2`."""
        return f"{self.subject}: {self.treatment} against {self.control}"

    @property
    def metrics(self) -> list[ExperimentMetric]:
        return [self.metric, *self.secondary]

    def arms(self) -> Arms:
        return Arms(self.kind, self.name, self.alias, self.control, self.treatment, self.split, self.started_at,
                    self.ended_at)  # fmt: skip


class ExperimentReport(BaseModel):
    experiment: Experiment
    analysis: Analysis
    as_of: str = Field(description="When the analysis was made (UTC); an ended experiment's is when it ended.")


class ExperimentList(BaseModel):
    experiments: list[Experiment] = Field(description="Running ones first, then the newest.")


def create(
    svc: Services, *, actor: Actor, name: str, alias: str | None = None, templates: Sequence[str] | None = None,
    metric: str = ExperimentMetric.ACCEPTANCE, secondary: Sequence[str] = (), alpha: float = DEFAULT_ALPHA,
    effect: float = DEFAULT_EFFECT, split: int | None = None,
) -> ExperimentReport:  # fmt: skip
    """Start an experiment: `name@alias`'s canary against its stable version (the default, on production), or
    `templates` (control, treatment) of agent `name` split as `split` percent to the treatment."""
    authorize(actor, Operation.RUN_EXPERIMENT)
    primary, others = _check_metrics(metric, secondary)
    alpha, effect = check_level("alpha", alpha), _check_effect(effect)
    store, now = svc.store, iso(svc.clock())
    with store.write():
        arms = _new_arms(store, name=name, alias=alias, templates=templates, split=split, now=now)
        experiment_id = EXPERIMENT_ID_PREFIX + uuid.uuid4().hex[:12]
        exp_db.insert_experiment(store, {
            "id": experiment_id, "name": arms.name, "kind": arms.kind, "model_name": arms.name if arms.alias else None,
            "alias": arms.alias, "metric": primary, "secondary_metrics": json.dumps(others),
            "control_version_id": arms.control if arms.alias else None,
            "treatment_version_id": arms.treatment if arms.alias else None,
            "control_template": None if arms.alias else arms.control,
            "treatment_template": None if arms.alias else arms.treatment, "split": arms.split, "alpha": alpha,
            "effect": effect, "status": ExperimentState.RUNNING, "created_by": str(actor), "created_at": now,
            "started_at": arms.since,
        })  # fmt: skip
        audit.record(store, actor, "create_experiment", {"experiment": experiment_id, "name": name, "alias": alias})
    return report(svc, experiment_id)


def get(store: Store, experiment_id: str) -> Experiment:
    if not isinstance(experiment_id, str) or not 0 < len(experiment_id) <= _ID_LIMIT:
        raise InvalidInput(
            f"`experiment_id` must be an experiment id such as ab_1a2b3c4d5e6f, got {shown(experiment_id)}.",
            hint="`finetune ab` lists the experiments with their ids.",
            argument="experiment_id",
        )
    row = exp_db.experiment(store, experiment_id)
    if row is None:
        raise NotFound(f"no experiment {experiment_id!r}.", hint=_ids_hint(store), experiment=experiment_id)
    return _experiment(row)


def list_experiments(store: Store, *, limit: int = LIST_LIMIT) -> ExperimentList:
    return ExperimentList(experiments=[_experiment(row) for row in exp_db.recent_experiments(store, limit=limit)])


def report(svc: Services, experiment_id: str) -> ExperimentReport:
    """A running experiment analysed now; an ended one as its last analysis stands."""
    experiment = get(svc.store, experiment_id)
    if experiment.status is not ExperimentState.RUNNING:
        row = exp_db.experiment(svc.store, experiment_id) or {}
        return ExperimentReport(
            experiment=experiment, analysis=Analysis.model_validate_json(row["result"]),
            as_of=experiment.ended_at or "",
        )  # fmt: skip
    now = svc.clock()
    outcomes, weeks = collect(svc.store, experiment.arms(), experiment.metrics, now=now)
    analysis = analyze(
        outcomes, metrics=experiment.metrics, alpha=experiment.alpha, effect=experiment.effect, weeks=weeks
    )
    return ExperimentReport(experiment=experiment, analysis=analysis, as_of=iso(now))


def stop(svc: Services, *, actor: Actor, experiment_id: str, note: str | None = None) -> ExperimentReport:
    """End a running experiment without recording a verdict; its last analysis is kept."""
    return _end(svc, actor, experiment_id, ExperimentState.STOPPED, note)


def conclude(svc: Services, *, actor: Actor, experiment_id: str, note: str | None = None) -> ExperimentReport:
    """End a running experiment with its verdict as the analysis stands, kept and announced in Slack."""
    return _end(svc, actor, experiment_id, ExperimentState.CONCLUDED, note)


def _end(
    svc: Services, actor: Actor, experiment_id: str, status: ExperimentState, note: str | None
) -> ExperimentReport:
    authorize(actor, Operation.RUN_EXPERIMENT)
    note = _check_note(note)
    current = report(svc, experiment_id)
    experiment, analysis = current.experiment, current.analysis
    store = svc.store
    with store.write():
        ended = exp_db.end_experiment(
            store, experiment_id, status=status, reason=analysis.reason,
            verdict=analysis.verdict if status is ExperimentState.CONCLUDED else None,
            result=analysis.model_dump_json(), ended_by=str(actor), now=current.as_of,
        )  # fmt: skip
        if not ended:
            fresh = get(store, experiment_id)
            raise Conflict(
                f"experiment {experiment_id} is already {fresh.status} (by {fresh.ended_by}).",
                hint="`finetune ab create` starts a new one.",
                experiment=experiment_id,
            )
        outbox.enqueue(
            store,
            events.ExperimentEnded(
                experiment_id=experiment_id, name=experiment.subject, control=experiment.control,
                treatment=experiment.treatment, status=status, verdict=analysis.verdict, reason=analysis.reason,
                actor=str(actor), note=note,
            ),
        )  # fmt: skip
        audit.record(store, actor, f"{status}_experiment", {"experiment": experiment_id, "note": note})
    return report(svc, experiment_id)


# Checks -------------------------------------------------------------------------------------------------


def _new_arms(
    store: Store, *, name: str, alias: str | None, templates: Sequence[str] | None, split: int | None, now: str
) -> Arms:
    if templates is not None:
        if alias is not None:
            raise InvalidInput(
                "`alias` and `templates` cannot go together: an experiment compares a canary or two templates.",
                hint="Drop one of them.",
                argument="templates",
            )
        return _template_arms(store, name=name, templates=templates, split=split, now=now)
    if split is not None:
        raise InvalidInput(
            "`split` is set by the alias's canary share in a canary experiment.",
            hint="Drop `split`, or change the share with `finetune models canary`.",
            argument="split",
        )
    return _canary_arms(store, name=name, alias=alias or registry.PRODUCTION)


def _canary_arms(store: Store, *, name: str, alias: str) -> Arms:
    known = [state.alias for state in registry.list_aliases(store, name)]  # NotFound for an unknown model
    if alias not in known:
        raise NotFound(
            f"{name} has no alias {alias!r} (its aliases: {', '.join(known) or 'none yet'}).",
            hint="Name the alias whose canary to test, e.g. --alias production.",
            model=name,
            alias=str(alias),
        )
    arms = canary_arms(store, name, alias)
    if arms is None:
        raise Conflict(
            f"{name}@{alias} runs no canary, so there is nothing to compare its stable version with.",
            hint=f"Start one with `finetune deploy {name} VERSION --alias {alias} --canary 10`.",
        )
    running = exp_db.running_canary_experiment(store, name, alias)
    if running is not None:
        raise Conflict(
            f"experiment {running['id']} already tests {name}@{alias}'s canary.",
            hint=f"`finetune ab {running['id']}` shows it; stop it first to start another.",
            experiment=running["id"],
        )
    return arms


def _template_arms(store: Store, *, name: str, templates: Sequence[str], split: int | None, now: str) -> Arms:
    agent = _check_identifier("name", name)
    if isinstance(templates, str) or len(templates) != 2:
        raise InvalidInput(
            "`templates` must name two templates: the control, then the treatment.",
            hint="For example --templates greet-v1,greet-v2.",
            argument="templates",
        )
    control, treatment = (_check_identifier(f"templates[{i}]", t) for i, t in enumerate(templates))
    if control == treatment:
        raise InvalidInput(
            f"`templates` names {control!r} twice.", hint="Name two different templates.", argument="templates"
        )
    share = _check_split(50 if split is None else split)
    running = exp_db.running_template_experiment(store, agent, control, treatment)
    if running is not None:
        raise Conflict(
            f"experiment {running['id']} already compares {control} and {treatment} of {agent}.",
            hint=f"`finetune ab {running['id']}` shows it.",
            experiment=running["id"],
        )
    return Arms(ExperimentKind.TEMPLATE, agent, None, control, treatment, share, now)


def _check_metrics(metric: str, secondary: Sequence[str]) -> tuple[ExperimentMetric, list[ExperimentMetric]]:
    primary = _metric("metric", metric)
    if isinstance(secondary, str):
        secondary = [secondary]
    others = [_metric(f"secondary[{i}]", value) for i, value in enumerate(secondary)]
    repeated = sorted({m for m in [primary, *others] if [primary, *others].count(m) > 1})
    if repeated:
        raise InvalidInput(
            f"metric {', '.join(repeated)} is named more than once.",
            hint="Name the primary metric once, and each secondary one once besides it.",
            argument="secondary",
        )
    return primary, others


def _metric(argument: str, value: object) -> ExperimentMetric:
    if not isinstance(value, str) or value not in values(ExperimentMetric):
        raise InvalidInput(
            f"`{argument}` must be a metric, got {shown(value)}.",
            hint=f"Use {one_of(ExperimentMetric)}.",
            argument=argument,
        )
    return ExperimentMetric(value)


def _check_effect(effect: object) -> float:
    value = check_level("effect", effect)
    if value >= 0.5:
        raise InvalidInput(
            f"`effect` must be a change of the acceptance rate below 0.5, got {value:g}.",
            hint="Give it as a fraction: 0.05 plans for +5 points.",
            argument="effect",
        )
    return value


def _check_split(split: object) -> float:
    if isinstance(split, bool) or not isinstance(split, int) or not 1 <= split <= 99:
        raise InvalidInput(
            f"`split` must be the treatment's share in whole percent from 1 to 99, got {shown(split)}.",
            hint="For example 50 for an even split, 10 to send one outcome in ten to the treatment.",
            argument="split",
        )
    return split / 100


def _check_identifier(argument: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise InvalidInput(
            f"`{argument}` must be a non-empty name of at most {MAX_ID_CHARS} characters, got {shown(value)}.",
            hint="Use the agent and template names the feedback carries.",
            argument=argument,
        )
    return value


NOTE_LIMIT = 1000


def _check_note(note: object) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str) or len(note) > NOTE_LIMIT:
        raise InvalidInput(
            f"`reason` must be text of at most {NOTE_LIMIT:,} characters.", hint="Say why briefly.", argument="reason"
        )
    return note or None


def _ids_hint(store: Store) -> str:
    known = [row["id"] for row in exp_db.recent_experiments(store, limit=5)]
    return f"Recent experiments: {', '.join(known)}; `finetune ab` lists them." if known else "No experiment yet."


def _experiment(row: dict[str, Any]) -> Experiment:
    canary = row["kind"] == ExperimentKind.CANARY
    return Experiment(
        id=row["id"], kind=row["kind"], name=row["name"], alias=row["alias"],
        control=row["control_version_id"] if canary else row["control_template"],
        treatment=row["treatment_version_id"] if canary else row["treatment_template"],
        metric=row["metric"], secondary=json.loads(row["secondary_metrics"]), split=row["split"],
        alpha=row["alpha"], effect=row["effect"], status=row["status"], created_by=row["created_by"],
        created_at=row["created_at"], started_at=row["started_at"], ended_at=row["ended_at"],
        ended_by=row["ended_by"], verdict=row["verdict"], reason=row["reason"],
    )  # fmt: skip


def metric_text(result: MetricResult) -> str:
    """`acceptance 62.0% against 81.0% (−19 points; always-valid p = 0.0004)`: the treatment first."""
    control, treatment = result.control.value, result.treatment.value
    if control is None or treatment is None:
        empty = "control" if control is None else "treatment"
        return f"{result.metric}: no outcome of the {empty} arm carries it yet"
    if result.rate:
        shown_, change = f"{treatment:.1%} against {control:.1%}", points(treatment - control)
    else:
        shown_, change = f"{treatment:.3g} against {control:.3g}", f"{treatment - control:+.3g}"
    return f"{result.metric} {shown_} ({change}; always-valid p = {result.sequential_p_value:.2g})"

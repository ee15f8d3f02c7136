"""Online A/B experiments and the guarded canary, on seeded simulated outcome streams.

Outcomes arrive as feedback (core.data's batch ingest, and POST /v1/feedback) naming the version and arm that
served each draft; experiments compare an alias's canary with its stable version (or two templates), and the
canary guard halts rollouts and proposes or performs rollbacks on a significant drop in acceptance.
"""

from __future__ import annotations

import gc
import json
import random
from datetime import datetime, timedelta
from typing import TypeVar

import anyio
import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcp import Client
from starlette.testclient import TestClient

from bot.commands import ErrorResult, Invocation, UsageProblem, run_text
from bot.commands.groups import SLACK
from bot.invoke import slack_actor
from bot.slack.blocks import render
from bot.slack.blocks.experiments import _GUARD_DID
from core import actions, registry
from core.data import feedback
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.evaluation import (
    Outcomes,
    analyze,
    check_sample_ratio,
    compare_means,
    compare_proportions,
    conclude_experiment,
    create_experiment,
    experiment_report,
    guard_canaries,
    holm,
    plan_sample_size,
    sequential_means,
    sequential_proportions,
    stop_experiment,
)
from core.evaluation.experiments import METRICS, metric_value
from core.evaluation.verdict import Verdict
from core.platform import approvals, events
from core.platform.actors import SCHEDULER, Actor, cli_actor
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow
from core.registry import rollouts
from core.services import build_services
from core.vocabulary import CanaryAction, ExperimentMetric, ExperimentState, Face, Role, RolloutState
from mcp_server.server import build_server
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, wait_until

ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)
BOB = Actor("U2", Face.SLACK, role=Role.APPROVER)
CAT = Actor("U3", Face.SLACK, role=Role.APPROVER)
VIEWER = Actor("U9", Face.SLACK, role=Role.VIEWER)
DAY = timedelta(days=1)
CONTROL, TREATMENT = "support:v1", "support:v2"
T = TypeVar("T")


class Clock:
    """Moves only when told; starts at `start` (default: a minute from now)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow() + timedelta(minutes=1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(store, settings, clock):
    return build_services(settings, store=store, clock=clock)


def with_settings(services, **overrides):
    """The same store and clock under other settings."""
    return build_services(services.settings.model_copy(update=overrides), store=services.store, clock=services.clock)


def canary(services, *, alias: str = "staging", share: int = 20) -> datetime:
    """support:v1 serves `alias` with support:v2 as its canary at `share`%; the moment the canary began."""
    store = services.store
    with store.write():
        for number in (1, 2):
            registry.register_version(
                store, name="support", provider="openai", provider_model_id=f"ft:support:{number}", job_id=None,
                dataset_version_id=None, base_model="gpt-4o-mini", metrics={}, cost_usd=None, actor=SCHEDULER,
                reason="trained", now=iso(services.clock()),
            )  # fmt: skip
    direct = with_settings(services, protected_aliases=[])  # set up without approvals; tests protect it after
    registry.request_deploy(direct, actor=ANN, name="support", version=1, alias=alias)
    services.clock.now += timedelta(minutes=1)
    registry.request_deploy(direct, actor=ANN, name="support", version=2, alias=alias, canary_share=share)
    return services.clock()


def simulate(
    start: datetime, *, days: int, per_day: int, share: float, rates: tuple[float, float], seed: int,
    label: str = "o", treatment: str = TREATMENT, control: str = CONTROL,
) -> list[dict]:  # fmt: skip
    """Outcomes served from `start` on, `per_day` a day: each to the canary with probability `share`, accepted
    (sent unedited, rated 4-5) with the arm's rate (control, treatment), else edited and rated 2-3."""
    rng = random.Random(seed)
    events_: list[dict] = []
    for day in range(days):
        for k in range(per_day):
            served = start + day * DAY + timedelta(seconds=(k + 1) * 86_400 / (per_day + 1))
            on_canary = rng.random() < share
            accepted = rng.random() < rates[on_canary]
            n = len(events_)
            event = {
                "id": f"{label}-{n}", "agent": "support", "prompt": f"Where is order {n}?",
                "output": f"Order {n} ships on Monday from the Leeds warehouse.",
                "rating": rng.choice([4, 5]) if accepted else rng.choice([2, 3]),
                "latency_ms": round(rng.gauss(800, 120), 1), "created_at": iso(served),
                "model_version": treatment if on_canary else control, "arm": "canary" if on_canary else "stable",
            }  # fmt: skip
            if not accepted:
                event["final"] = f"Order {n} left the Leeds warehouse today."
            events_.append(event)
    return events_


def some(value: T | None) -> T:
    assert value is not None
    return value


def ingest(store: Store, events_: list[dict]) -> None:
    report = feedback.ingest_batch(store, events_, actor=cli_actor())
    assert report.error_count == 0 and report.ingested == len(events_), report


def outbox_events(store: Store, kind: str) -> list[dict]:
    return [json.loads(e) for (e,) in store.db.execute("SELECT event FROM outbox WHERE kind = ? ORDER BY id", (kind,))]


# Experiments: verdicts ------------------------------------------------------------------------------------


def test_a_better_canary_concludes_as_the_winner_and_the_channel_hears_it(services, store, clock):
    start = canary(services, share=30)
    ingest(store, simulate(start, days=14, per_day=150, share=0.3, rates=(0.70, 0.80), seed=1))
    clock.now = start + 15 * DAY
    created = create_experiment(services, actor=ANN, name="support", alias="staging", secondary=["rating", "latency"])
    experiment, analysis = created.experiment, created.analysis
    assert (experiment.control, experiment.treatment, experiment.started_at) == (CONTROL, TREATMENT, iso(start))
    assert analysis.verdict is Verdict.WINNER and analysis.reason.startswith("Winner: acceptance is better")
    assert analysis.decided_on is not None and analysis.decided_on < analysis.daily[-1].day  # stopped early
    assert analysis.srm is not None and not analysis.srm.mismatch
    assert abs(some(analysis.expected_treatment_share) - 0.3) < 1e-9
    [acceptance, rating, latency] = analysis.metrics
    assert acceptance.primary and some(acceptance.difference) > 0.05 and some(acceptance.interval).low > 0
    assert some(rating.difference) > 0 and some(latency.adjusted_p_value) > 0.05  # latency does not differ
    assert analysis.plan is not None and "outcomes a week this needs" in analysis.plan.summary

    concluded = conclude_experiment(services, actor=ANN, experiment_id=experiment.id, note="ship it")
    assert concluded.experiment.status is ExperimentState.CONCLUDED
    assert concluded.experiment.verdict is Verdict.WINNER and concluded.analysis == analysis  # kept as it stood
    [announced] = outbox_events(store, "experiment")
    assert (announced["experiment_id"], announced["verdict"], announced["status"]) == (
        experiment.id, "winner", "concluded",
    )  # fmt: skip
    assert "Winner" in render(events.ExperimentEnded(**announced)).text
    ingest(store, simulate(start + 15 * DAY, days=1, per_day=50, share=0.3, rates=(0.9, 0.1), seed=2, label="late"))
    assert experiment_report(services, experiment.id).analysis == analysis  # an ended experiment keeps its numbers
    with pytest.raises(Conflict, match="already concluded"):
        stop_experiment(services, actor=ANN, experiment_id=experiment.id)


def test_a_worse_canary_is_the_loser(services, store, clock):
    start = canary(services, share=20)
    ingest(store, simulate(start, days=7, per_day=150, share=0.2, rates=(0.80, 0.60), seed=3))
    clock.now = start + 8 * DAY
    report = create_experiment(services, actor=ANN, name="support", alias="staging")
    assert report.analysis.verdict is Verdict.LOSER and "acceptance is worse by" in report.analysis.reason
    stopped = stop_experiment(services, actor=ANN, experiment_id=report.experiment.id, note="rolled back")
    assert stopped.experiment.status is ExperimentState.STOPPED and stopped.experiment.verdict is None
    assert stopped.analysis == report.analysis  # where it stood is kept
    [announced] = outbox_events(store, "experiment")
    assert (announced["status"], announced["note"]) == ("stopped", "rolled back")


def test_a_sample_ratio_mismatch_blocks_the_verdict_and_says_so(services, store, clock):
    start = canary(services, share=20)  # configured 20%, but the application logs half its outcomes as canary
    ingest(store, simulate(start, days=7, per_day=150, share=0.5, rates=(0.70, 0.85), seed=4))
    clock.now = start + 8 * DAY
    analysis = create_experiment(services, actor=ANN, name="support", alias="staging").analysis
    assert analysis.srm is not None and analysis.srm.mismatch and analysis.srm.p_value < 0.001
    assert analysis.verdict is Verdict.INCONCLUSIVE and analysis.decided_on is None
    assert "do not match the configured split" in analysis.reason and "no verdict stands" in analysis.reason
    assert analysis.metrics[0].sequential_p_value < 0.05  # the drop would otherwise have counted


def test_the_split_follows_the_canary_share_as_the_ledger_recorded_it(services, store, clock):
    start = canary(services, share=10)
    ingest(store, simulate(start, days=3, per_day=200, share=0.1, rates=(0.7, 0.7), seed=5, label="a"))
    clock.now = start + 3 * DAY
    registry.set_canary_share(with_settings(services, protected_aliases=[]), actor=ANN, name="support",
                              alias="staging", share=50)  # fmt: skip
    ingest(store, simulate(clock.now, days=3, per_day=200, share=0.5, rates=(0.7, 0.7), seed=6, label="b"))
    clock.now += 4 * DAY
    analysis = create_experiment(services, actor=ANN, name="support", alias="staging").analysis
    assert abs(some(analysis.expected_treatment_share) - 0.3) < 0.01  # half the outcomes at 10%, half at 50%
    assert not some(analysis.srm).mismatch and analysis.verdict is Verdict.INCONCLUSIVE


def test_only_outcomes_served_by_this_pair_count(services, store, clock):
    start = canary(services)
    before = simulate(start - 2 * DAY, days=1, per_day=50, share=0.2, rates=(0.7, 0.7), seed=7, label="old")
    elsewhere = simulate(start, days=1, per_day=50, share=0.2, rates=(0.7, 0.7), seed=8, label="v3",
                         treatment="support:v3")  # fmt: skip
    wrong_arm = [e | {"arm": "stable"} for e in simulate(start, days=1, per_day=20, share=1.0, rates=(0.7, 0.7),
                                                          seed=9, label="arm")]  # fmt: skip
    counted = simulate(start, days=1, per_day=100, share=0.2, rates=(0.7, 0.7), seed=10, label="ok")
    ingest(store, before + elsewhere + wrong_arm + counted)
    clock.now = start + 2 * DAY
    analysis = create_experiment(services, actor=ANN, name="support", alias="staging").analysis
    canaries = sum(e["model_version"] == TREATMENT for e in counted)
    assert (analysis.control_n, analysis.treatment_n) == (100 - canaries + 50 - sum(
        e["model_version"] == "support:v3" for e in elsewhere), canaries)  # fmt: skip


def test_templates_are_compared_on_their_configured_split(services, store, clock):
    rng = random.Random(11)
    start = clock()
    report = create_experiment(services, actor=ANN, name="support", templates=["greet-v1", "greet-v2"], split=50)
    events_ = []
    for n in range(1600):
        treated = rng.random() < 0.5
        event = {
            "agent": "support",
            "prompt": f"Hi {n}",
            "output": f"Hello {n}, how can I help?",
            "template": "greet-v2" if treated else "greet-v1",
            "created_at": iso(start + n * timedelta(minutes=9)),
        }
        if rng.random() > (0.85 if treated else 0.70):
            event["final"] = f"Hi {n}!"
        events_.append(event)
    ingest(store, events_)
    clock.now = start + 11 * DAY
    analysis = experiment_report(services, report.experiment.id).analysis
    assert report.experiment.kind == "template" and report.experiment.split == 0.5
    assert analysis.control_n + analysis.treatment_n == 1600 and analysis.verdict is Verdict.WINNER


# Experiments: honest statistics ---------------------------------------------------------------------------


def test_the_numbers_equal_stats_on_the_same_inputs(services, store, clock):
    start = canary(services, share=30)
    stream = simulate(start, days=6, per_day=120, share=0.3, rates=(0.72, 0.78), seed=12)
    ingest(store, stream)
    clock.now = start + 7 * DAY
    analysis = create_experiment(services, actor=ANN, name="support", alias="staging", secondary=["rating"]).analysis

    treated = [e["model_version"] == TREATMENT for e in stream]
    accepted = ["final" not in e for e in stream]
    rating = [float(e["rating"]) for e in stream]
    arm = {flag: [i for i, t in enumerate(treated) if t is flag] for flag in (False, True)}
    k = {flag: sum(accepted[i] for i in arm[flag]) for flag in arm}
    fixed = compare_proportions(baseline_successes=k[False], baseline_trials=len(arm[False]),
                                candidate_successes=k[True], candidate_trials=len(arm[True]))  # fmt: skip
    welch = compare_means([rating[i] for i in arm[False]], [rating[i] for i in arm[True]])
    days = sorted({e["created_at"][:10] for e in stream})
    p_accept = p_rating = 1.0
    for day in days:  # one look per day, cumulative, each p-value the running minimum
        upto = {flag: [i for i in arm[flag] if stream[i]["created_at"][:10] <= day] for flag in arm}
        p_accept = sequential_proportions(
            baseline_successes=sum(accepted[i] for i in upto[False]), baseline_trials=len(upto[False]),
            candidate_successes=sum(accepted[i] for i in upto[True]), candidate_trials=len(upto[True]),
            previous_p_value=p_accept,
        ).p_value  # fmt: skip
        p_rating = sequential_means([rating[i] for i in upto[False]], [rating[i] for i in upto[True]],
                                    mixing_sd=METRICS[ExperimentMetric.RATING].mixing_sd,
                                    previous_p_value=p_rating).p_value  # fmt: skip
    srm = check_sample_ratio([len(arm[False]), len(arm[True])], expected_shares=[0.7, 0.3])
    adjusted = holm({"acceptance": p_accept, "rating": p_rating})
    plan = plan_sample_size(baseline_rate=k[False] / len(arm[False]), effect=0.05, candidate_share=0.3,
                            weekly_volume=len(stream) / 1.0, unit="outcomes")  # fmt: skip

    acceptance, rating_result = analysis.metrics
    assert (acceptance.difference, acceptance.p_value, acceptance.interval) == (
        fixed.difference, fixed.p_value, fixed.interval,
    )  # fmt: skip
    assert rating_result.p_value == pytest.approx(welch.p_value, rel=1e-12)
    assert some(rating_result.interval).low == pytest.approx(welch.interval.low, rel=1e-12)
    assert acceptance.sequential_p_value == pytest.approx(p_accept, rel=1e-12)
    assert rating_result.sequential_p_value == pytest.approx(p_rating, rel=1e-12)
    assert some(analysis.srm).p_value == pytest.approx(srm.p_value, rel=1e-12)
    assert [acceptance.adjusted_p_value, rating_result.adjusted_p_value] == pytest.approx(
        [a.adjusted_p_value for a in adjusted], rel=1e-12
    )
    assert (some(analysis.plan).total_n, some(analysis.plan).summary) == (plan.total_n, plan.summary)
    assert plan.summary.startswith("At 720 outcomes a week this needs about")


def _aa(rng: np.random.Generator, *, days: int = 14, per_day: int = 100, share: float = 0.2) -> Outcomes:
    """An A/A experiment: both arms accept 70% of drafts and rate alike."""
    n = days * per_day
    treated = rng.random(n) < share
    return Outcomes(
        days=tuple(f"2026-11-{day + 1:02d}" for day in range(days)), day=np.repeat(np.arange(days), per_day),
        treatment=treated, share=np.full(n, share),
        values={ExperimentMetric.ACCEPTANCE: (rng.random(n) < 0.7).astype(float),
                ExperimentMetric.RATING: np.clip(np.round(rng.normal(4, 1, n)), 1, 5)},
    )  # fmt: skip


def test_a_a_experiments_looked_at_every_day_declare_a_winner_at_most_5_percent_of_the_time():
    rng = np.random.default_rng(20261123)
    experiments = [_aa(rng) for _ in range(150)]
    gc.freeze()  # Holm's adjustment collects garbage on every call: keep the test process's heap out of it
    try:
        verdicts = [analyze(o, metrics=[ExperimentMetric.ACCEPTANCE, ExperimentMetric.RATING], weeks=2).verdict
                    for o in experiments]  # fmt: skip
    finally:
        gc.unfreeze()
    assert sum(v is Verdict.WINNER for v in verdicts) / len(verdicts) <= 0.05
    assert sum(v is not Verdict.INCONCLUSIVE for v in verdicts) / len(verdicts) <= 0.05
    peeking = 0  # the same experiments read daily with the fixed-horizon test, stopping at the first p < 0.05
    for outcomes in experiments:
        for look in range(len(outcomes.days)):
            base, cand = outcomes.arms(ExperimentMetric.ACCEPTANCE, through=look)
            fixed = compare_proportions(
                baseline_successes=int(base.sum()), baseline_trials=len(base), candidate_successes=int(cand.sum()),
                candidate_trials=len(cand),
            )  # fmt: skip
            if fixed.p_value < 0.05:
                peeking += 1
                break
    assert peeking / len(experiments) > 0.1  # what the sequential test protects against


def test_too_few_outcomes_say_how_many_and_from_how_many_the_test_counts(services, store, clock):
    start = canary(services)
    ingest(store, simulate(start, days=1, per_day=40, share=0.2, rates=(0.7, 0.9), seed=13))
    clock.now = start + DAY
    analysis = create_experiment(services, actor=ANN, name="support", alias="staging").analysis
    assert analysis.verdict is Verdict.INCONCLUSIVE
    assert "treatment outcomes so far; the sequential test counts from 30 in each arm" in analysis.reason


def test_an_experiment_without_outcomes_is_inconclusive_and_says_why(services, store, clock):
    canary(services)
    analysis = create_experiment(services, actor=ANN, name="support", alias="staging").analysis
    assert (analysis.control_n, analysis.treatment_n, analysis.verdict) == (0, 0, Verdict.INCONCLUSIVE)
    assert analysis.srm is None and analysis.plan is None and analysis.plan_note


def test_accepted_means_kept_whole_and_not_turned_down():
    row = {"acceptance": 1.0, "rating": 5.0, "unedited": 1, "latency_ms": None}
    assert metric_value(ExperimentMetric.ACCEPTANCE, row) == 1.0
    assert metric_value(ExperimentMetric.ACCEPTANCE, row | {"rating": 1.0}) == 0.0  # thumbs down, uncorrected
    assert metric_value(ExperimentMetric.ACCEPTANCE, row | {"rating": 1.0, "unedited": 0}) == 1.0  # only added to
    assert metric_value(ExperimentMetric.ACCEPTANCE, row | {"acceptance": 0.96, "unedited": 0}) == 0.0
    assert metric_value(ExperimentMetric.LATENCY, row) is None


def test_every_metric_has_its_spec_and_every_guard_action_its_words():
    assert set(METRICS) == set(ExperimentMetric)
    assert set(_GUARD_DID) == set(CanaryAction)


# Experiments: bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"metric": "acceptence"}, "metric"),
        ({"secondary": ["rating", "rating"]}, "secondary"),
        ({"secondary": ["acceptance"]}, "secondary"),
        ({"secondary": ["speed"]}, "secondary[0]"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"effect": 0.7}, "effect"),
        ({"effect": -0.05}, "effect"),
        ({"split": 20}, "split"),
        ({"templates": ["a"]}, "templates"),
        ({"templates": ["a", "a"], "alias": None}, "templates"),
    ],
)
def test_bad_arguments_are_refused_by_name(services, options, argument):
    canary(services)
    kwargs = {"name": "support", "alias": "staging"} | options
    if "templates" in options:
        kwargs.pop("alias")
    with pytest.raises(InvalidInput) as refused:
        create_experiment(services, actor=ANN, **kwargs)
    assert refused.value.ids.get("argument") == argument and refused.value.hint
    assert not services.store.query("SELECT id FROM experiments")


def test_an_alias_without_a_canary_a_second_experiment_and_a_viewer_are_refused(services):
    canary(services)
    with pytest.raises(NotFound, match="has no alias 'qa'"):
        create_experiment(services, actor=ANN, name="support", alias="qa")
    registry.request_deploy(with_settings(services, protected_aliases=[]), actor=ANN, name="support", version=1,
                            alias="qa")  # fmt: skip
    with pytest.raises(Conflict, match="runs no canary") as refused:
        create_experiment(services, actor=ANN, name="support", alias="qa")
    assert "--canary 10" in some(refused.value.hint)
    first = create_experiment(services, actor=ANN, name="support", alias="staging").experiment
    with pytest.raises(Conflict, match=f"experiment {first.id} already tests"):
        create_experiment(services, actor=ANN, name="support", alias="staging")
    with pytest.raises(PermissionDenied):
        create_experiment(services, actor=VIEWER, name="support", alias="staging")
    with pytest.raises(NotFound, match="no experiment 'ab_nope'") as missing:
        experiment_report(services, "ab_nope")
    assert first.id in (missing.value.hint or "")
    with pytest.raises(InvalidInput, match="`experiment_id` must be an experiment id"):
        experiment_report(services, "x" * 500)


# The guarded canary ---------------------------------------------------------------------------------------


def staged_rollout(services) -> registry.Rollout:
    """A staged rollout of support:v2 on staging (unprotected): stage 1 (10%) goes live at once."""
    canary(services, share=10)
    direct = with_settings(services, protected_aliases=[])
    registry.rollback(direct, actor=ANN, name="support", alias="staging")  # the plan starts its own canary
    change = registry.request_deploy(direct, actor=ANN, name="support", version=2, alias="staging",
                                     plan=[10, 50, 100], every=DAY)  # fmt: skip
    assert change.rollout is not None
    rollout = registry.get_rollout(services.store, "support", alias="staging")
    assert (rollout.stage, rollout.status) == (1, RolloutState.RUNNING)
    return rollout


def test_the_guard_halts_a_rollout_whose_canary_is_significantly_worse(services, store, clock):
    rollout = staged_rollout(services)
    ingest(store, simulate(clock(), days=1, per_day=1500, share=0.1, rates=(0.80, 0.60), seed=14))
    assert rollouts.advance_due(services, now=clock.now + DAY) == 0
    halted = registry.get_rollout(store, "support", alias="staging")
    assert halted.id == rollout.id and halted.status is RolloutState.HALTED
    reason = some(halted.status_reason)
    assert reason.startswith("guard acceptance: the acceptance rate of support:v2 is significantly worse")
    assert "canary and" in reason and "always-valid p = " in reason
    [state] = [a for a in registry.list_aliases(store, "support") if a.alias == "staging"]
    assert (state.canary_version_id, state.canary_share) == (TREATMENT, 10)  # halting moves nothing


def test_the_guard_holds_while_the_feedback_is_too_thin_and_passes_without_any(services, store, clock):
    staged_rollout(services)
    ingest(store, simulate(clock(), days=1, per_day=60, share=0.1, rates=(0.8, 0.8), seed=15))
    assert rollouts.advance_due(services, now=clock.now + DAY) == 0
    held = registry.get_rollout(store, "support", alias="staging")
    reason = some(held.status_reason)
    assert held.status is RolloutState.RUNNING and reason.startswith("guard acceptance: too little feedback to tell:")
    assert "the sequential test counts from 30 in each arm" in reason


def test_a_rollout_without_outcomes_advances(services, store, clock):
    staged_rollout(services)
    assert rollouts.advance_due(services, now=clock.now + DAY) == 1
    assert registry.get_rollout(store, "support", alias="staging").stage == 2


def worse_canary_on_production(services, clock) -> None:
    start = canary(services, alias="production", share=20)
    ingest(services.store, simulate(start, days=4, per_day=200, share=0.2, rates=(0.80, 0.60), seed=16))
    clock.now = start + 5 * DAY


def test_the_job_proposes_a_rollback_with_the_evidence_once(services, store, clock):
    worse_canary_on_production(services, clock)
    assert guard_canaries(services) == 1
    [asked] = approvals.pending(store).approvals
    assert (asked.action, asked.subject_id, asked.requested_by) == ("rollback", "support@production", "scheduler")
    assert asked.payload["reason"].startswith("canary guard: the acceptance rate of support:v2 is significantly")
    [posted] = outbox_events(store, "canary_guard")
    assert (posted["action"], posted["approval_id"]) == ("proposed", asked.id)
    assert "always-valid p = " in posted["evidence"] and asked.id in render(events.CanaryGuarded(**posted)).text
    assert guard_canaries(services) == 0  # the next runs find it done: no second request, no second post
    assert len(approvals.pending(store).approvals) == 1 and len(outbox_events(store, "canary_guard")) == 1
    for approver in (BOB, CAT):  # production needs two approvers
        actions.decide(services, approval_id=asked.id, actor=approver, approve=True)
    [state] = [a for a in registry.list_aliases(store, "support") if a.alias == "production"]
    assert (state.version_id, state.canary_version_id) == (CONTROL, None)


def test_with_auto_rollback_the_scheduler_rolls_the_canary_back_itself(services, store, clock):
    worse_canary_on_production(services, clock)
    automatic = with_settings(services, canary_auto_rollback=True)
    assert guard_canaries(automatic) == 1
    [state] = [a for a in registry.list_aliases(store, "support") if a.alias == "production"]
    assert (state.version_id, state.canary_version_id) == (CONTROL, None)
    last = registry.history(store, "support").moves[-1]
    assert (last.move, last.actor, last.approval_id) == ("rollback", "scheduler:scheduler", None)
    assert some(last.reason).startswith("canary guard: ")
    assert not approvals.pending(store).approvals
    [posted] = outbox_events(store, "canary_guard")
    said = render(events.CanaryGuarded(**posted)).text
    assert posted["action"] == "performed" and "FINETUNE_CANARY_AUTO_ROLLBACK" in said
    assert guard_canaries(automatic) == 0


def test_an_alias_that_moves_without_approval_is_only_announced(services, store, clock):
    start = canary(services, alias="staging", share=20)
    ingest(store, simulate(start, days=4, per_day=200, share=0.2, rates=(0.80, 0.60), seed=17))
    clock.now = start + 5 * DAY
    assert guard_canaries(services) == 1 and guard_canaries(services) == 0
    [posted] = outbox_events(store, "canary_guard")
    assert posted["action"] == "announced"
    assert "/finetune rollback support --alias staging" in render(events.CanaryGuarded(**posted)).text
    [state] = [a for a in registry.list_aliases(store, "support") if a.alias == "staging"]
    assert state.canary_version_id == TREATMENT  # nothing moved


def test_a_fine_canary_is_left_alone(services, store, clock):
    start = canary(services, alias="production", share=20)
    ingest(store, simulate(start, days=4, per_day=200, share=0.2, rates=(0.75, 0.76), seed=18))
    clock.now = start + 5 * DAY
    assert guard_canaries(services) == 0 and not outbox_events(store, "canary_guard")


def test_a_promotion_request_shows_where_the_canary_ab_stands(services, store, clock):
    start = canary(services, alias="production", share=30)
    ingest(store, simulate(start, days=10, per_day=150, share=0.3, rates=(0.70, 0.80), seed=19))
    clock.now = start + 11 * DAY
    asked = registry.promote_canary(services, actor=ANN, name="support", alias="production")
    fact = some(asked.approval).facts["Online A/B on production"]
    assert fact.startswith("acceptance ") and "always-valid p = " in fact and "Winner:" in fact
    experiment = create_experiment(services, actor=ANN, name="support", alias="production").experiment
    again = registry.set_canary_share(services, actor=ANN, name="support", alias="production", share=40)
    assert f"(experiment {experiment.id})" in some(again.approval).facts["Online A/B on production"]


# Faces ----------------------------------------------------------------------------------------------------


@pytest.fixture
def past(services, store, clock):
    """A canary that began ten days ago (real time) with nine days of outcomes: the CLI's clock is real."""
    clock.now = utcnow() - 10 * DAY
    start = canary(services, share=30)
    ingest(store, simulate(start, days=9, per_day=150, share=0.3, rates=(0.70, 0.80), seed=21))
    return start


def test_the_terminal_creates_shows_lists_and_concludes(cli, past):
    code, out, err = cli("ab", "create", "support", "--alias", "staging", "--also", "rating", "--json")
    assert code == 0, err
    experiment_id = json.loads(out)["experiment"]["id"]
    code, out, _ = cli("ab", experiment_id)
    assert code == 0 and experiment_id in out and "acceptance (primary)" in out and "WINNER" in out
    assert "always-valid" in out and "SRM p = " in out and "to the treatment (the canary's share)" in out
    code, out, _ = cli("ab", "status", experiment_id, "--json")
    assert json.loads(out)["analysis"]["verdict"] == "winner"
    code, out, _ = cli("ab")
    assert code == 0 and f"{experiment_id} running" in out
    code, out, _ = cli("ab", "conclude", experiment_id, "--reason", "ship it")
    assert code == 0 and "concluded" in out
    code, _, err = cli("ab", "stop", experiment_id)
    assert code == 1 and "already concluded" in err


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["ab", "create", "support", "--metric", "acceptence"], 2, "--metric"),
        (["ab", "create", "support", "--alias", "staging", "--split", "120"], 2, "--split"),
        (["ab", "create", "support", "--alias", "staging", "--split", "20"], 1, "`split` is set by the alias's"),
        (["ab", "create", "support", "--templates", "greet-v1"], 1, "`templates` must name two templates"),
        (["ab", "create", "support", "--alias", "staging", "--templates", "a,b"], 1, "cannot go together"),
        (["ab", "create", "support", "--alias", "staging", "--alpha", "2"], 1, "`alpha` must be a number"),
        (["ab", "create", "nobody", "--alias", "staging"], 1, "no registered model 'nobody'"),
        (["ab", "status"], 2, "Missing argument 'ID'"),
        (["ab", "ab_missing"], 1, "no experiment 'ab_missing'"),
        (["ab", "crate", "support"], 2, "No such command 'crate'"),
    ],
)
def test_the_terminal_names_what_is_wrong(cli, past, args, code, says):
    exited, out, err = cli(*args)
    assert exited == code and says in err, (out, err)
    assert "Something went wrong" not in err


def test_slack_creates_and_shows_an_experiment_with_a_chart_of_both_arms(tmp_path, store, fake_slack, past):
    from bot.serve import build_app

    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        operators=["U123"],
    )  # fmt: skip
    services = build_services(settings, store=store)
    with TestClient(build_app(services), base_url="http://127.0.0.1") as client:
        body = slash_body("ab create support --alias staging", response_url=fake_slack.response_url("create"))
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [created] = wait_until(lambda: fake_slack.responses("create"), what="the create answer")
        experiment_id = store.scalar("SELECT id FROM experiments")
        assert experiment_id in json.dumps(created["blocks"])
        fake_slack.calls.clear()
        body = slash_body(f"ab {experiment_id}", response_url=fake_slack.response_url("show"))
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [shown] = wait_until(lambda: fake_slack.responses("show"), what="the status answer")
        uploads = wait_until(lambda: [c.data for c in fake_slack.calls if c.path.startswith("/upload/")],
                             what="the chart")  # fmt: skip
        ran = wait_until(lambda: store.scalar("SELECT detail FROM scheduler_runs WHERE job_id = 'canaries'"),
                         what="serve's canary guard")  # fmt: skip
    assert ran == "acted on 0"  # the canary is better: nothing to do
    blocks = json.dumps(shown["blocks"])
    assert "winner" in blocks and "acceptance (primary)" in blocks and "always-valid" in blocks
    assert uploads[0]["png"] and uploads[0]["size"] > 1000


def test_slack_viewers_read_but_may_not_create(tmp_path, store, fake_slack, past):
    from bot.serve import build_app

    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url
    )
    with TestClient(build_app(build_services(settings, store=store)), base_url="http://127.0.0.1") as client:
        body = slash_body("ab create support --alias staging", response_url=fake_slack.response_url())
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [answer] = wait_until(lambda: fake_slack.responses(), what="the refusal")
    assert "may not create, stop or conclude A/B experiments" in json.dumps(answer["blocks"])
    assert not store.query("SELECT id FROM experiments")


def mcp_session(services, *calls: tuple[str, dict]):
    async def go():
        async with Client(build_server(services)) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(go)


def test_agents_create_and_read_experiments_over_mcp(settings, store, past):
    services = build_services(settings, store=store)
    [created] = mcp_session(services, ("create_experiment", {"name": "support", "alias": "staging",
                                                             "secondary": ["rating"]}))  # fmt: skip
    assert not created.is_error, created.content[0].text
    experiment_id = created.structured_content["experiment"]["id"]
    [got, bad_metric, unknown, missing] = mcp_session(
        services,
        ("get_experiment", {"experiment_id": experiment_id}),
        ("create_experiment", {"name": "support", "alias": "staging", "metric": "speed"}),
        ("create_experiment", {"name": "support", "aliases": "staging"}),
        ("get_experiment", {"experiment_id": "ab_missing"}),
    )
    analysis = got.structured_content["analysis"]
    assert analysis["verdict"] == "winner" and [m["metric"] for m in analysis["metrics"]] == ["acceptance", "rating"]
    assert bad_metric.is_error and "metric" in bad_metric.content[0].text
    assert unknown.is_error and "aliases" in unknown.content[0].text
    assert missing.is_error and "no experiment 'ab_missing'" in missing.content[0].text


def test_outcomes_posted_by_applications_count(tmp_path, store, services, clock):
    from bot.serve import build_app

    start = canary(services, share=20)
    clock.now = start + 3 * DAY
    experiment = create_experiment(services, actor=ANN, name="support", alias="staging").experiment
    token = "test-app-token-abcdefghijklmnop"
    app = build_app(build_services(make_settings(tmp_path, app_tokens=f"shop:{token}"), store=store, clock=clock))
    stream = simulate(start, days=2, per_day=100, share=0.2, rates=(0.7, 0.7), seed=22)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answer = client.post("/v1/feedback", json={"events": stream}, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    analysis = experiment_report(services, experiment.id).analysis
    assert analysis.control_n + analysis.treatment_n == len(stream)


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
def test_whatever_follows_ab_in_slack_is_answered(services, text):
    inv = Invocation(services=services, actor=slack_actor(services.settings, "U1"))
    outcome = run_text(SLACK, f"ab {text}", inv, prog="/finetune")
    result = outcome.result
    if isinstance(result, ErrorResult):
        assert result.error != "InternalError", result
    else:
        assert outcome.ok or isinstance(result, UsageProblem), result

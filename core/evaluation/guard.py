"""The guarded canary: a canary whose acceptance is significantly worse than its stable version's is stopped.

Three places ask the same question, "is this canary's acceptance rate
significantly worse than its alias's stable version's?", answered by the
always-valid sequential test on the outcomes served since the pair began
(`core.evaluation.experiments`: `canary_arms`, `collect`, `analyze` on the
acceptance metric), so asking it every few minutes is as valid as asking once:

- `acceptance_guard`, registered in `core.registry.rollouts.ROLLOUT_GUARDS`
  under `acceptance`, before each stage of a staged rollout: halt when the
  canary is worse; hold while its outcomes are too few to tell, or while the
  arms' sizes do not match the split (the evidence cannot be trusted); pass
  otherwise, and when no outcome names the canary at all (nothing to guard on).
- `guard_canaries`, the scheduler job serve runs every `GUARD_SECONDS`, over
  every running canary, with or without a rollout. On a canary found worse it
  requests the rollback (`core.registry.rollback`, an approval on a protected
  alias, the evidence as its reason), or performs it as the scheduler when
  FINETUNE_CANARY_AUTO_ROLLBACK is on; on an alias that moves without approval
  and without that setting, it only says so. Either way it posts the evidence
  to Slack (`CanaryGuarded`) once per run of the canary: what it did is kept
  in `canary_guard_actions`, written in the transaction that does it.
- `canary_facts`, which a canary's promotion and share changes show their
  approvers (`core.registry.facts`): where the canary's A/B stands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import registry
from core.errors import FinetuneError
from core.evaluation import exp_db
from core.evaluation.experiments import Analysis, Arms, MetricResult, analyze, canary_arms, collect, metric_text
from core.evaluation.experiments import get as get_experiment
from core.evaluation.sequential import MIN_TRIALS
from core.evaluation.verdict import Verdict
from core.platform import events, outbox
from core.platform.actors import SCHEDULER
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow
from core.registry.rollouts import GuardVerdict, Rollout
from core.services import Services
from core.vocabulary import CanaryAction, ExperimentMetric, GuardDecision

log = logging.getLogger(__name__)

_MEASURES = {
    ExperimentMetric.ACCEPTANCE: "acceptance rate",
    ExperimentMetric.MEAN_ACCEPTANCE: "mean acceptance (the share of each draft kept)",
}

GUARD_SECONDS = 300  # how often serve re-tests every running canary
_ACCEPTANCE = [ExperimentMetric.ACCEPTANCE, ExperimentMetric.MEAN_ACCEPTANCE]  # drafts kept whole; share kept


@dataclass(frozen=True)
class CanaryCheck:
    """A canary's acceptance against its stable version's, since the pair began serving."""

    arms: Arms
    analysis: Analysis

    @property
    def acceptance(self) -> MetricResult:
        """The measure of acceptance that speaks loudest: of those worse, the one with the smallest adjusted p-value;
        else the share of drafts accepted."""
        worse = [
            metric for metric in self.analysis.metrics
            if metric.difference is not None and metric.adjusted_p_value is not None
            and (metric.difference < 0) == metric.higher_is_better
        ]  # fmt: skip
        return min(worse, key=lambda metric: metric.adjusted_p_value or 1.0) if worse else self.analysis.metrics[0]

    @property
    def outcomes(self) -> int:
        return self.analysis.control_n + self.analysis.treatment_n

    @property
    def thin(self) -> bool:
        return min(self.analysis.control_n, self.analysis.treatment_n) < MIN_TRIALS

    @property
    def split_broken(self) -> bool:
        return self.analysis.srm is not None and self.analysis.srm.mismatch

    @property
    def worse(self) -> bool:
        return self.analysis.verdict is Verdict.LOSER

    def counts(self) -> str:
        """`412 canary and 3,688 stable outcomes since 2026-11-20 10:00 UTC`."""
        since = self.arms.since[:16].replace("T", " ")
        return f"{self.analysis.treatment_n:,} canary and {self.analysis.control_n:,} stable outcomes since {since} UTC"

    def evidence(self) -> str:
        """One sentence: which way the canary's acceptance differs, by how much, how sure, on how much feedback."""
        worse = "significantly worse than" if self.worse else "compared with"
        measure = _MEASURES.get(self.acceptance.metric, str(self.acceptance.metric))
        return (
            f"the {measure} of {self.arms.treatment} is {worse} {self.arms.control}'s:"
            f" {metric_text(self.acceptance)} ({self.counts()})."
        )


def check_canary(store: Store, name: str, alias: str, *, now: datetime) -> CanaryCheck | None:
    """How `name@alias`'s canary compares with its stable version now; None when the alias runs no canary."""
    arms = canary_arms(store, name, alias)
    if arms is None:
        return None
    outcomes, weeks = collect(store, arms, _ACCEPTANCE, now=now)
    return CanaryCheck(arms, analyze(outcomes, metrics=_ACCEPTANCE, weeks=weeks))


# Before a rollout's next stage ---------------------------------------------------------------------------


def acceptance_guard(svc: Services, rollout: Rollout) -> GuardVerdict:
    """Halt a rollout whose canary is significantly worse; hold while that cannot be told; else pass."""
    check = check_canary(svc.store, rollout.model_name, rollout.alias, now=svc.clock())
    if check is None or check.arms.treatment != rollout.version_id or not check.outcomes:
        return GuardVerdict(GuardDecision.PASS)
    if check.worse:
        return GuardVerdict(GuardDecision.HALT, check.evidence())
    if check.split_broken:
        return GuardVerdict(GuardDecision.HOLD, check.analysis.reason)
    if check.thin:
        return GuardVerdict(
            GuardDecision.HOLD,
            f"too little feedback to tell: {check.counts()}; the sequential test counts from {MIN_TRIALS} in each arm",
        )
    return GuardVerdict(GuardDecision.PASS)


# Every few minutes, every canary --------------------------------------------------------------------------


def guard_canaries(svc: Services) -> int:
    """Re-test every running canary; act once on each one found significantly worse. How many were acted on."""
    acted = 0
    for name, alias in _canaries(svc.store):
        try:
            acted += _guard(svc, name, alias)
        except FinetuneError as exc:
            log.warning("canary guard on %s@%s: %s", name, alias, exc)
        except Exception:
            log.exception("canary guard on %s@%s failed; trying again on the next run", name, alias)
    return acted


def _canaries(store: Store) -> list[tuple[str, str]]:
    return [
        (model.name, alias.alias)
        for model in registry.models_overview(store).models
        for alias in model.aliases
        if alias.canary_version_id is not None
    ]


def _guard(svc: Services, name: str, alias: str) -> int:
    store = svc.store
    check = check_canary(store, name, alias, now=svc.clock())
    if check is None or not check.worse or _acted(store, check):
        return 0
    with store.write():
        if _acted(store, check) or canary_arms(store, name, alias) != check.arms:
            return 0  # another run got there first, or the alias moved meanwhile
        action, approval_id = _act(svc, check)
        evidence = check.evidence()
        exp_db.record_guard_action(
            store, model_name=name, alias=alias, canary=check.arms.treatment, since=check.arms.since,
            action=action, approval_id=approval_id, evidence=evidence, now=iso(svc.clock()),
        )  # fmt: skip
        outbox.enqueue(
            store,
            events.CanaryGuarded(
                model_name=name, alias=alias, canary_version_id=check.arms.treatment,
                stable_version_id=check.arms.control, evidence=evidence, action=action, approval_id=approval_id,
            ),
        )  # fmt: skip
    log.warning("canary %s on %s@%s is worse: %s (%s)", check.arms.treatment, name, alias, evidence, action)
    return 1


def _acted(store: Store, check: CanaryCheck) -> bool:
    arms = check.arms
    assert arms.alias is not None
    found = exp_db.guard_action(store, model_name=arms.name, alias=arms.alias, canary=arms.treatment, since=arms.since)
    return found is not None


def _act(svc: Services, check: CanaryCheck) -> tuple[CanaryAction, str | None]:
    """Request the rollback (or perform it, as the setting allows); on an alias that moves without approval and
    without the setting, leave it to a person."""
    arms, settings = check.arms, svc.settings
    assert arms.alias is not None
    if not settings.canary_auto_rollback and arms.alias not in settings.protected_aliases:
        return CanaryAction.ANNOUNCED, None
    change = registry.rollback(
        svc, actor=SCHEDULER, name=arms.name, alias=arms.alias, reason=f"canary guard: {check.evidence()}",
        automatic=True,
    )  # fmt: skip
    if change.applied:
        return CanaryAction.PERFORMED, None
    return CanaryAction.PROPOSED, change.approval.id if change.approval else None


def guard_action_for(store: Store, name: str, alias: str, version_id: str) -> dict[str, Any] | None:
    """What the guard last did about `version_id` as the canary of `name@alias` (action, approval_id, evidence)."""
    return exp_db.latest_guard_action(store, model_name=name, alias=alias, canary=version_id)


# What approvers read --------------------------------------------------------------------------------------


def canary_facts(store: Store, version_id: str, *, now: datetime | None = None) -> dict[str, str]:
    """Where `version_id`'s A/B stands on each alias it is the canary of: its experiment's verdict when one runs,
    else its acceptance against the stable version's. Empty when it is nobody's canary."""
    moment = now or utcnow()
    name = registry.get_version(store, version_id).name
    facts = {}
    for state in registry.list_aliases(store, name):
        if state.canary_version_id != version_id:
            continue
        try:
            facts[f"Online A/B on {state.alias}"] = _standing(store, name, state.alias, moment)
        except FinetuneError as exc:  # a request is never refused for want of a fact
            facts[f"Online A/B on {state.alias}"] = f"could not be analysed: {exc.message}"
    return facts


def _standing(store: Store, name: str, alias: str, now: datetime) -> str:
    row = exp_db.running_canary_experiment(store, name, alias)
    if row is not None:
        experiment = get_experiment(store, row["id"])
        outcomes, weeks = collect(store, experiment.arms(), experiment.metrics, now=now)
        analysis = analyze(
            outcomes, metrics=experiment.metrics, alpha=experiment.alpha, effect=experiment.effect, weeks=weeks
        )
        return f"{metric_text(analysis.metrics[0])}. {analysis.reason} (experiment {experiment.id})"
    check = check_canary(store, name, alias, now=now)
    if check is None or not check.outcomes:
        return "no outcome names the canary yet: report them with model_version and arm"
    return f"{metric_text(check.acceptance)} ({check.counts()}). {check.analysis.reason}"

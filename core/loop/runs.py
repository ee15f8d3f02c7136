"""Loop runs: from a retraining request to a promoted or rolled-back version, one step at a time.

A run follows one model (the agent's registered model) through the steps the
product already has, and links them: the retraining approval → the job it
launched → the candidate version the job registered → an offline evaluation
against the alias the run aims at → a canary rollout requested with that
evaluation on its approval → the rollout's end (promoted), or the canary
guard's rollback (proposed, then decided by people, or performed by policy).

The scheduler calls `advance_runs` every few seconds. Each call reads where
the run's current subject stands and, when it moved on, records the run's
next step in one transaction with whatever that step asks for (an
evaluation, a deploy request: both are database writes), the step's audit
row and its notifications. The move is a compare-and-set on the run's
revision, so two processes advancing the same run (or a restart after a
kill) move it once and request nothing twice. The one request that talks to
a provider, a relaunch, carries an idempotency key derived from the run.

Who decides what is the policy's business, not the loop's: every request it
makes goes through the same approvals as a person's request, with the
scheduler as requester, so any human can approve it and nobody approves
their own. Agents over MCP may start and read runs, never decide a step.

Slack sees one thread per run: `LoopChanged` (keyed `loop:ID`) is its first
message, edited in place as a summary; each step is a `LoopStepPosted` reply,
and the approvals the run requests are posted in the same thread
(`core.platform.outbox.thread`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from core import registry
from core.errors import Conflict, FinetuneError, InvalidInput, NotFound
from core.evaluation import runs as evaluations
from core.evaluation.guard import guard_action_for
from core.loop import db
from core.platform import approvals, audit, events, outbox
from core.platform.actors import SCHEDULER, Actor
from core.platform.policy import authorize
from core.platform.timeutil import iso
from core.registry import rollouts
from core.services import Services
from core.training import jobs
from core.vocabulary import (
    ApprovalState,
    EvaluationState,
    JobState,
    LoopOutcome,
    LoopStep,
    Operation,
    RolloutState,
)

log = logging.getLogger(__name__)

RUN_ID_PREFIX = "loop-"
LIST_LIMIT = 50
_FINAL_JOB = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class LoopRun(BaseModel):
    """One run of the loop and the subjects it linked so far."""

    id: str
    model_name: str
    step: LoopStep
    outcome: LoopOutcome | None = Field(description="How it ended; None while it runs.")
    reason: str | None = Field(description="Why it ended as it did, or what it waits for.")
    alias: str = Field(description="The alias the run aims to change (production by default).")
    retrain_approval_id: str | None
    dataset_version_id: str | None
    job_id: str | None
    version_id: str | None
    evaluation_id: str | None
    canary_approval_id: str | None
    rollout_id: str | None
    rollback_approval_id: str | None
    attempt: int = Field(description="1, then one more for each retry of a failed step.")
    requested_by: str
    created_at: str
    updated_at: str
    steps: list[LoopStepEntry] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.outcome is None

    def waiting_for(self) -> str:
        """What the run waits for now, in a few words."""
        if self.outcome is not None:
            return f"ended: {self.outcome}"
        return WAITING[self.step]


class LoopStepEntry(BaseModel):
    seq: int
    step: LoopStep
    text: str
    at: str


class LoopRunList(BaseModel):
    runs: list[LoopRun]


WAITING: dict[LoopStep, str] = {
    LoopStep.RETRAIN_APPROVAL: "an approver to approve retraining",
    LoopStep.TRAINING: "the fine-tuning job to finish",
    LoopStep.EVALUATING: "the offline evaluation to finish",
    LoopStep.CANARY_APPROVAL: "an approver to approve the canary",
    LoopStep.CANARY: "the canary's rollout plan (the acceptance guard watches it)",
    LoopStep.ROLLBACK_APPROVAL: "an approver to approve the rollback the guard proposed",
    LoopStep.DONE: "nothing: it ended",
}


# Reading ------------------------------------------------------------------------------------------------


def get_run(svc: Services, run_id: str) -> LoopRun:
    row = db.run(svc.store, run_id)
    if row is None:
        raise NotFound(f"no loop run {run_id!r}.", hint="`finetune loop list` shows the runs.")
    return _run(svc, row)


def list_runs(svc: Services, *, active_only: bool = False, limit: int = LIST_LIMIT) -> LoopRunList:
    return LoopRunList(
        runs=[_run(svc, row, with_steps=False) for row in db.runs(svc.store, active_only=active_only, limit=limit)]
    )


def _run(svc: Services, row: dict[str, Any], *, with_steps: bool = True) -> LoopRun:
    steps = (
        [
            LoopStepEntry(**{k: entry[k] for k in ("seq", "step", "text", "at")})
            for entry in db.steps(svc.store, row["id"])
        ]
        if with_steps
        else []
    )
    return LoopRun(**{k: row[k] for k in LoopRun.model_fields if k != "steps"}, steps=steps)


# Starting -----------------------------------------------------------------------------------------------


def start_run(svc: Services, *, agent: str, actor: Actor, alias: str | None = None) -> LoopRun:
    """Start a run for `agent`'s model: request its retraining now (an approval with the cost estimate).

    Refused while the model has a run in progress: one run per model at a time.
    """
    authorize(actor, Operation.LOOP)
    from core.analytics import retrain

    active = db.active_run_of(svc.store, agent)
    if active is not None:
        raise Conflict(
            f"{agent} already has loop run {active['id']} in progress ({WAITING[LoopStep(active['step'])]}).",
            hint=f"Follow it with `finetune loop show {active['id']}`, or cancel it with `finetune loop cancel {active['id']}`.",
        )
    approval = retrain.propose_retrain(svc, agent=agent, actor=actor)
    with svc.store.write():  # serve may have taken the request up meanwhile: then that run is this one
        taken = db.run_with_retrain_approval(svc.store, approval.id)
        if taken is not None:
            return _run(svc, taken)
        return _adopt(svc, approval, actor=actor, alias=alias)


def adopt_retrain_requests(svc: Services) -> int:
    """Make every retraining request that no run follows yet (the trigger's, a person's, an agent's) a run."""
    adopted = 0
    for row in db.pending_retrain_approvals(svc.store):
        approval = approvals.get(svc.store, row["id"])
        name = _model_of_retrain(approval)
        if name is None or db.active_run_of(svc.store, name) is not None:
            continue
        with svc.store.write():
            if (
                db.run_with_retrain_approval(svc.store, approval.id) is None
                and db.active_run_of(svc.store, name) is None
            ):
                _adopt(svc, approval, actor=SCHEDULER, alias=None)
                adopted += 1
    return adopted


def _model_of_retrain(approval: approvals.Approval) -> str | None:
    """The registered model a retraining request trains: its dataset's name (versions are registered under it)."""
    name = approval.payload.get("dataset") or approval.payload.get("agent") or approval.subject_id
    return str(name) if name else None


def _adopt(svc: Services, approval: approvals.Approval, *, actor: Actor, alias: str | None) -> LoopRun:
    name = _model_of_retrain(approval)
    if name is None:
        raise InvalidInput(
            f"approval {approval.id} names no agent to retrain.", hint="Request it with `finetune retrain AGENT`."
        )
    now = iso()
    run_id = RUN_ID_PREFIX + uuid.uuid4().hex[:10]
    target_alias = alias or svc.settings.loop_alias
    db.insert_run(
        svc.store,
        {
            "id": run_id, "model_name": name, "alias": target_alias, "step": LoopStep.RETRAIN_APPROVAL,
            "outcome": None, "reason": None, "retrain_approval_id": approval.id, "attempt": 1,
            "requested_by": str(actor), "created_at": now, "updated_at": now, "revision": 0,
        },
    )  # fmt: skip
    outbox.thread(svc.store, message_key=f"approval:{approval.id}", thread_key=_thread_key(run_id))
    row = db.run(svc.store, run_id)
    assert row is not None
    run = _run(svc, row)
    _announce(svc, run, f"Retraining of {name} requested: {approval.description or approval.id}.", actor=actor)
    audit.record(svc.store, actor, "loop_start", {"run": run_id, "model": name, "approval": approval.id})
    return get_run(svc, run_id)


# Advancing ----------------------------------------------------------------------------------------------


@dataclass
class Move:
    """What the run becomes: its new step and fields, what to say, and requests to make in the same transaction."""

    step: LoopStep
    text: str
    changes: dict[str, Any] = field(default_factory=dict)
    outcome: LoopOutcome | None = None
    request: Callable[[], dict[str, Any]] | None = None  # runs inside the move's transaction; returns more changes


def advance_runs(svc: Services) -> int:
    """Advance every run in progress as far as its subjects allow; returns how many steps were taken."""
    moved = adopt_retrain_requests(svc)
    for row in db.runs(svc.store, active_only=True, limit=1000):
        try:
            moved += advance(svc, row["id"])
        except FinetuneError as exc:  # a step that cannot be taken now: say so once, retry next time
            log.warning("loop run %s: %s", row["id"], exc)
    return moved


def advance(svc: Services, run_id: str, *, max_steps: int = 10) -> int:
    """Take every step run `run_id` can take now; idempotent."""
    taken = 0
    for _ in range(max_steps):
        row = db.run(svc.store, run_id)
        if row is None or row["outcome"] is not None:
            break
        run = _run(svc, row, with_steps=False)
        move = _next(svc, run)
        if move is None:
            break
        try:
            applied = _apply(svc, run, row["revision"], move)
        except FinetuneError as exc:  # what the step asks for was refused (a price unknown, the policy): say why
            refused = _end(
                LoopOutcome.FAILED,
                f"{move.text} It could not be requested: {exc.message}"
                + (f" {exc.hint}" if exc.hint else "") + f" Then retry with `finetune loop retry {run.id}`.",
            )  # fmt: skip
            applied = _apply(svc, run, row["revision"], refused)
        if applied:
            taken += 1
    return taken


def _next(svc: Services, run: LoopRun) -> Move | None:
    return _STEPS[run.step](svc, run)


def _after_retrain_approval(svc: Services, run: LoopRun) -> Move | None:
    assert run.retrain_approval_id is not None
    approval = approvals.get(svc.store, run.retrain_approval_id)
    if approval.status is ApprovalState.PENDING:
        return None
    if approval.status is not ApprovalState.APPROVED:
        return _end(LoopOutcome.REJECTED, f"Retraining was {approval.status}" + _by(approval) + _why(approval) + ".")
    job_id = approval.payload.get("job_id")
    if not job_id:
        error = approval.payload.get("error")
        if error:
            return _end(LoopOutcome.FAILED, f"Retraining was approved{_by(approval)} but could not start: {error}.")
        return None  # the approval's action has not launched the job yet
    job = jobs.get_job(svc.store, str(job_id))
    return Move(
        LoopStep.TRAINING,
        f"Retraining approved{_by(approval)}: job {job.id} trains {job.base_model} on {job.dataset_version} via {job.provider}.",
        changes={"job_id": job.id, "dataset_version_id": job.dataset_version},
    )


def _after_training(svc: Services, run: LoopRun) -> Move | None:
    assert run.job_id is not None
    job = jobs.get_job(svc.store, run.job_id)
    if job.status not in _FINAL_JOB:
        return None
    if job.status is not JobState.SUCCEEDED:
        return _end(
            LoopOutcome.FAILED,
            f"Job {job.id} {job.status}: {job.error or 'no reason given'}. Retry with `finetune loop retry {run.id}`.",
        )
    version = registry.version_of_job(svc.store, job.id)
    if version is None:
        return None  # the job's version is registered in the same transaction as its success; not there yet
    baseline = run.alias
    if registry.alias_state(svc.store, run.model_name, run.alias) is None:
        return Move(
            LoopStep.CANARY_APPROVAL,
            f"Job {job.id} succeeded: {version.id}. {run.model_name}@{run.alias} serves nothing yet, so there is no "
            f"baseline to evaluate against; deploying {version.id} to {run.alias} is requested.",
            changes={"version_id": version.id},
            request=lambda: _request_deploy(svc, run, version.id, first=True),
        )
    return Move(
        LoopStep.EVALUATING,
        f"Job {job.id} succeeded: {version.id}. Evaluating it against {run.model_name}@{baseline}.",
        changes={"version_id": version.id},
        request=lambda: {"evaluation_id": _request_evaluation(svc, run, version.id)},
    )


def _after_evaluation(svc: Services, run: LoopRun) -> Move | None:
    assert run.evaluation_id is not None and run.version_id is not None
    evaluation = evaluations.get_evaluation(svc.store, run.evaluation_id)
    if evaluation.status in (EvaluationState.QUEUED, EvaluationState.RUNNING):
        return None
    if evaluation.status is EvaluationState.FAILED:
        return _end(
            LoopOutcome.FAILED,
            f"Evaluation {evaluation.id} failed: {evaluation.status_reason or 'no reason given'}. "
            f"Retry with `finetune loop retry {run.id}`.",
        )
    verdict = evaluation.summary.decision.verdict if evaluation.summary and evaluation.summary.decision else None
    headline = evaluation.headline or "no pair judged"
    if verdict == "loser":
        return _end(
            LoopOutcome.NOT_DEPLOYED,
            f"Evaluation {evaluation.id}: {headline}. The candidate is worse than {run.alias}; it is not deployed.",
        )
    version_id = run.version_id
    return Move(
        LoopStep.CANARY_APPROVAL,
        f"Evaluation {evaluation.id}: {headline}. A canary of {version_id} on {run.model_name}@{run.alias} "
        f"(plan {svc.settings.loop_canary_plan}, every {svc.settings.loop_canary_every}) is requested.",
        request=lambda: _request_deploy(svc, run, version_id, first=False),
    )


def _after_canary_approval(svc: Services, run: LoopRun) -> Move | None:
    if run.rollout_id is not None:
        rollout = rollouts.get(svc.store, run.rollout_id)
        if rollout.status is RolloutState.WAITING_APPROVAL and rollout.stage == 0:
            return None
        if rollout.status is RolloutState.CANCELLED and rollout.stage == 0:
            return _end(
                LoopOutcome.REJECTED,
                f"The canary of {run.version_id} was not approved: {rollout.status_reason or 'cancelled'}.",
            )
        return Move(
            LoopStep.CANARY,
            f"Canary approved: {run.version_id} serves {rollout.share} % of {run.model_name}@{run.alias}; "
            f"{rollout.progress()}, next stage {rollout.next_at or 'when approved'}.",
        )
    if run.canary_approval_id is None:  # a first version on an alias that moves without approval: deployed at once
        state = registry.alias_state(svc.store, run.model_name, run.alias)
        if state is not None and state.version_id == run.version_id:
            return _end(LoopOutcome.PROMOTED, f"{run.version_id} now serves {run.model_name}@{run.alias}.")
        return None
    approval = approvals.get(svc.store, run.canary_approval_id)
    if approval.status is ApprovalState.PENDING:
        return None
    if approval.status is not ApprovalState.APPROVED:
        return _end(
            LoopOutcome.REJECTED, f"Deploying {run.version_id} was {approval.status}{_by(approval)}{_why(approval)}."
        )
    return _end(LoopOutcome.PROMOTED, f"{run.version_id} now serves {run.model_name}@{run.alias}{_by(approval)}.")


def _during_canary(svc: Services, run: LoopRun) -> Move | None:
    assert run.rollout_id is not None and run.version_id is not None
    rollout = rollouts.get(svc.store, run.rollout_id)
    if rollout.status is RolloutState.COMPLETED:
        return _end(LoopOutcome.PROMOTED, f"{run.version_id} promoted: it serves all of {run.model_name}@{run.alias}.")
    guarded = guard_action_for(svc.store, run.model_name, run.alias, run.version_id)
    if guarded is not None:
        if guarded["action"] == "performed":
            return _end(
                LoopOutcome.ROLLED_BACK,
                f"The acceptance guard rolled {run.version_id} back: {str(guarded['evidence']).rstrip('.')}.",
            )
        if guarded["action"] == "proposed" and guarded["approval_id"]:
            return Move(
                LoopStep.ROLLBACK_APPROVAL,
                f"The acceptance guard found {run.version_id} worse and proposed its rollback: "
                f"{str(guarded['evidence']).rstrip('.')}.",
                changes={"rollback_approval_id": guarded["approval_id"]},
            )
    if rollout.status in (RolloutState.CANCELLED, RolloutState.SUPERSEDED, RolloutState.HALTED):
        state = registry.alias_state(svc.store, run.model_name, run.alias)
        serving = state is not None and run.version_id in (state.version_id, state.canary_version_id)
        if rollout.status is RolloutState.HALTED and serving:
            return None  # halted by a guard: its rollback proposal is on its way
        outcome = LoopOutcome.ROLLED_BACK if not serving else LoopOutcome.CANCELLED
        return _end(
            outcome,
            f"The rollout of {run.version_id} ended {rollout.status}: {rollout.status_reason or 'no reason given'}.",
        )
    return None


def _after_rollback_approval(svc: Services, run: LoopRun) -> Move | None:
    assert run.rollback_approval_id is not None
    approval = approvals.get(svc.store, run.rollback_approval_id)
    if approval.status is ApprovalState.PENDING:
        return None
    if approval.status is ApprovalState.APPROVED:
        return _end(LoopOutcome.ROLLED_BACK, f"{run.version_id} rolled back{_by(approval)}.")
    return _end(
        LoopOutcome.CANCELLED,
        f"The rollback of {run.version_id} was {approval.status}{_by(approval)}{_why(approval)}; the canary stays halted.",
    )


_STEPS: dict[LoopStep, Callable[[Services, LoopRun], Move | None]] = {
    LoopStep.RETRAIN_APPROVAL: _after_retrain_approval,
    LoopStep.TRAINING: _after_training,
    LoopStep.EVALUATING: _after_evaluation,
    LoopStep.CANARY_APPROVAL: _after_canary_approval,
    LoopStep.CANARY: _during_canary,
    LoopStep.ROLLBACK_APPROVAL: _after_rollback_approval,
    LoopStep.DONE: lambda svc, run: None,
}


def _end(outcome: LoopOutcome, text: str) -> Move:
    return Move(LoopStep.DONE, text, outcome=outcome)


def _by(approval: approvals.Approval) -> str:
    people = approval.approved_by or ([approval.decided_by] if approval.decided_by else [])
    return f" by {' and '.join(people)}" if people else ""


def _why(approval: approvals.Approval) -> str:
    return f": {approval.reason}" if approval.reason else ""


def _request_evaluation(svc: Services, run: LoopRun, version_id: str) -> str:
    evaluation = evaluations.request_evaluation(
        svc, candidate=version_id, baseline=run.alias, actor=SCHEDULER, key=f"{run.id}:evaluation:{run.attempt}",
        limit=svc.settings.loop_eval_limit, max_cost_usd=svc.settings.loop_eval_max_cost_usd,
    )  # fmt: skip
    return evaluation.id


def _request_deploy(svc: Services, run: LoopRun, version_id: str, *, first: bool) -> dict[str, Any]:
    """Request the canary (a first version: the plain deploy), threading its approval into the run's thread."""
    reason = f"loop run {run.id}"
    if first:
        change = registry.request_deploy(
            svc, actor=SCHEDULER, name=run.model_name, version=version_id, alias=run.alias, reason=reason
        )
    else:
        change = registry.request_deploy(
            svc, actor=SCHEDULER, name=run.model_name, version=version_id, alias=run.alias, reason=reason,
            plan=rollouts.parse_plan(svc.settings.loop_canary_plan, argument="FINETUNE_LOOP_CANARY_PLAN"),
            every=svc.settings.loop_canary_every,
        )  # fmt: skip
    changes: dict[str, Any] = {}
    approval = change.approval or (
        approvals.get(svc.store, change.rollout.approval_id) if change.rollout and change.rollout.approval_id else None
    )
    if approval is not None:
        changes["canary_approval_id"] = approval.id
        outbox.thread(svc.store, message_key=f"approval:{approval.id}", thread_key=_thread_key(run.id))
    if change.rollout is not None:
        changes["rollout_id"] = change.rollout.id
    return changes


def _apply(
    svc: Services, run: LoopRun, revision: int, move: Move, *, actor: Actor = SCHEDULER, action: str = "loop_step"
) -> bool:
    store, now = svc.store, iso()
    with store.write():
        changes = {**move.changes, "step": move.step, "updated_at": now}
        if move.outcome is not None:
            changes |= {"outcome": move.outcome, "reason": move.text}
        if not db.move_run(store, run.id, expected_revision=revision, changes=changes):
            return False
        if move.request is not None:
            extra = move.request()
            if extra:
                db.move_run(store, run.id, expected_revision=revision + 1, changes=extra)
        moved = get_run(svc, run.id)
        _announce(svc, moved, move.text, actor=actor)
        audit.record(store, actor, action, {"run": run.id, "step": move.step, "outcome": move.outcome})
    return True


# Retrying and cancelling ---------------------------------------------------------------------------------


def retry_run(svc: Services, *, run_id: str, actor: Actor) -> LoopRun:
    """Take a failed run up again where it failed: relaunch its job, or re-run its evaluation."""
    authorize(actor, Operation.LOOP)
    run = get_run(svc, run_id)
    if run.outcome is not LoopOutcome.FAILED:
        raise Conflict(
            f"loop run {run.id} {run.waiting_for()}; only a failed run can be retried.",
            hint="`finetune loop show ID` says where it stands.",
        )
    if (other := db.active_run_of(svc.store, run.model_name)) is not None:
        raise Conflict(
            f"{run.model_name} has another run in progress: {other['id']}.", hint="Finish or cancel it first."
        )
    attempt = run.attempt + 1
    again = {"outcome": None, "reason": None, "attempt": attempt}
    if run.evaluation_id is not None and run.version_id is not None:
        version_id, retried = run.version_id, run.model_copy(update={"attempt": attempt})
        move = Move(
            LoopStep.EVALUATING, f"Retry {attempt - 1} by {actor}: evaluating {version_id} again.", changes=again,
            request=lambda: {"evaluation_id": _request_evaluation(svc, retried, version_id)},
        )  # fmt: skip
    else:
        launched = jobs.launch_job(svc, actor=actor, key=f"{run.id}:job:{attempt}", **_job_spec(svc, run))
        move = Move(
            LoopStep.TRAINING, f"Retry {attempt - 1} by {actor}: job {launched.job.id} relaunched.",
            changes={**again, "job_id": launched.job.id},
        )  # fmt: skip
    row = db.run(svc.store, run.id)
    assert row is not None
    if not _apply(svc, run, row["revision"], move, actor=actor, action="loop_retry"):
        raise Conflict(f"loop run {run.id} moved while retrying; look again.", hint=f"`finetune loop show {run.id}`.")
    return get_run(svc, run.id)


def _job_spec(svc: Services, run: LoopRun) -> dict[str, Any]:
    """What to launch again: the failed job's dataset version and settings, or what the approved request named."""
    if run.job_id is not None:
        job = jobs.get_job(svc.store, run.job_id)
        return {
            "dataset_version": job.dataset_version, "provider": job.provider, "base_model": job.base_model,
            "method": job.method, "hyperparameters": job.hyperparameters,
        }  # fmt: skip
    assert run.retrain_approval_id is not None
    payload = approvals.get(svc.store, run.retrain_approval_id).payload
    version = payload.get("dataset_version")
    if not version:
        raise Conflict(
            f"loop run {run.id} failed before its dataset version was built ({payload.get('error') or 'no reason'}).",
            hint=f"Mend the cause, then start a new run: `finetune loop start {run.model_name}`.",
        )
    return {
        "dataset_version": str(version), "provider": str(payload["provider"]),
        "base_model": str(payload["base_model"]), "method": str(payload.get("method") or "supervised"),
        "hyperparameters": dict(payload.get("hyperparameters") or {}) or None,
    }  # fmt: skip


def cancel_run(svc: Services, *, run_id: str, actor: Actor, reason: str | None = None) -> LoopRun:
    """Stop following a run. What it already requested stays as it is (cancel a job or reject approvals apart)."""
    authorize(actor, Operation.LOOP)
    run = get_run(svc, run_id)
    if not run.active:
        raise Conflict(f"loop run {run.id} already {run.waiting_for()}.", hint="Start a new run instead.")
    row = db.run(svc.store, run.id)
    assert row is not None
    text = f"Cancelled by {actor}" + (f": {reason}" if reason else "") + f" (at step {run.step})."
    with svc.store.write():
        if not db.move_run(svc.store, run.id, expected_revision=row["revision"], changes={
            "step": LoopStep.DONE, "outcome": LoopOutcome.CANCELLED, "reason": text, "updated_at": iso(),
        }):  # fmt: skip
            raise Conflict(
                f"loop run {run.id} moved while cancelling; look again.", hint=f"`finetune loop show {run.id}`."
            )
        _announce(svc, get_run(svc, run.id), text, actor=actor)
        audit.record(svc.store, actor, "loop_cancel", {"run": run.id, "reason": reason})
    return get_run(svc, run.id)


# Telling -------------------------------------------------------------------------------------------------


def _thread_key(run_id: str) -> str:
    return f"loop:{run_id}"


def _announce(svc: Services, run: LoopRun, text: str, *, actor: Actor) -> None:
    """The thread's first message, edited to the run's summary, and one reply for the step."""
    store = svc.store
    seq = db.add_step(store, run_id=run.id, step=run.step, text=text, at=iso())
    outbox.enqueue(store, _summary_event(run, latest=text))
    outbox.enqueue(store, events.LoopStepPosted(run_id=run.id, seq=seq, step=run.step, text=text, by=str(actor)))


def _summary_event(run: LoopRun, *, latest: str) -> events.LoopChanged:
    return events.LoopChanged(
        run_id=run.id, model_name=run.model_name, alias=run.alias, step=run.step, outcome=run.outcome,
        waiting_for=run.waiting_for(), latest=latest, job_id=run.job_id, version_id=run.version_id,
        evaluation_id=run.evaluation_id, retry=run.outcome is LoopOutcome.FAILED,
    )  # fmt: skip

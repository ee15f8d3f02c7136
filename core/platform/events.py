"""Typed notification events: what the core has to say, never how a face says it.

A state change that someone must hear about writes one of these to the outbox
in its own transaction. Faces render them (Block Kit in `bot`, plain text in a
terminal); `summary()` is a face-neutral sentence kept beside each row for
logs and listings. Events that share a `message_key` are one conversation:
the first is posted and later ones update that same message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from core.vocabulary import (
    Action,
    AlertKind,
    AliasMove,
    ApprovalState,
    CanaryAction,
    EvaluationState,
    ExperimentState,
    JobState,
    LoopOutcome,
    LoopStep,
    Provider,
    RolloutState,
)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def message_key(self) -> str | None:
        return None

    def summary(self) -> str:
        raise NotImplementedError


class Notice(_Event):
    """A message an admin sends to the team."""

    kind: Literal["notice"] = "notice"
    text: str
    sent_by: str

    def summary(self) -> str:
        return self.text


class JobChanged(_Event):
    """A fine-tuning job was requested or moved to another state."""

    kind: Literal["job"] = "job"
    job_id: str
    status: JobState
    base_model: str
    dataset_version: str
    provider: Provider
    detail: str | None = None
    model_id: str | None = None
    error: str | None = None

    @property
    def message_key(self) -> str:
        return f"job:{self.job_id}"

    def summary(self) -> str:
        text = f"Job {self.job_id}: {self.base_model} on {self.dataset_version} via {self.provider}: {self.status}"
        return text + (f" ({self.detail})" if self.detail else "")


class ApprovalRequested(_Event):
    """An action waits for an approver."""

    kind: Literal["approval_requested"] = "approval_requested"
    approval_id: str
    action: Action
    subject_id: str | None
    description: str
    requested_by: str
    cost_usd: float | None = None
    expires_at: str | None = None
    facts: dict[str, str] = Field(default_factory=dict, description="What a decider needs: base model, provider, ...")
    approvals_needed: int = 1
    approved_by: list[str] = Field(default_factory=list, description="Who approved so far, toward the quorum.")

    @property
    def message_key(self) -> str:
        return f"approval:{self.approval_id}"

    def progress(self) -> str | None:
        """`1 of 2 approvals` for a request that needs several approvers; None otherwise."""
        return f"{len(self.approved_by)} of {self.approvals_needed} approvals" if self.approvals_needed > 1 else None

    def summary(self) -> str:
        text = f"Approval needed ({self.approval_id}): {self.description}. Requested by {self.requested_by}."
        return text + (f" {self.progress()}." if self.progress() else "")


class ApprovalDecided(_Event):
    """An approval request was approved, rejected or expired."""

    kind: Literal["approval_decided"] = "approval_decided"
    approval_id: str
    action: Action
    subject_id: str | None
    status: ApprovalState
    decided_by: str | None
    reason: str | None = None
    approved_by: list[str] = Field(default_factory=list, description="Everyone who approved it.")

    @property
    def message_key(self) -> str:
        return f"approval:{self.approval_id}"

    def summary(self) -> str:
        who = f" by {self.decided_by}" if self.decided_by else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.action} {self.subject_id} {self.status}{who}{why}"


class ApprovalAnswered(_Event):
    """The requester of an approval hears how it ended (a direct message: the outbox row's channel is theirs)."""

    kind: Literal["approval_answered"] = "approval_answered"
    approval_id: str
    action: Action
    subject_id: str | None
    status: ApprovalState
    decided_by: str | None
    reason: str | None = None
    approved_by: list[str] = Field(default_factory=list, description="Everyone who approved it.")

    def summary(self) -> str:
        who = f" by {self.decided_by}" if self.decided_by else ""
        return f"Your request {self.approval_id} ({self.action} {self.subject_id}) was {self.status}{who}"


class AliasMoved(_Event):
    """A model alias now points elsewhere, or its canary or canary share changed (one promotions ledger row)."""

    kind: Literal["alias_moved"] = "alias_moved"
    model_name: str
    alias: str
    move: AliasMove
    from_version_id: str | None
    to_version_id: str
    canary_version_id: str | None = None
    canary_share: int = 0
    actor: str
    approval_id: str | None = None
    rollout_id: str | None = Field(default=None, description="The staged rollout that made the move, if one did.")
    stage: int | None = Field(default=None, description="Which stage of that rollout the move is.")
    stages: int | None = Field(default=None, description="How many stages that rollout has.")

    def rollout_step(self) -> str | None:
        """`rollout ro_1, stage 2 of 3` when a staged rollout made the move."""
        return f"rollout {self.rollout_id}, stage {self.stage} of {self.stages}" if self.rollout_id else None

    def summary(self) -> str:
        text = (
            f"{self.model_name}@{self.alias} ({self.move}): {self.from_version_id or 'nothing'} -> {self.to_version_id}"
        )
        if self.canary_version_id:
            text += f", canary {self.canary_version_id} at {self.canary_share}%"
        text += f" by {self.actor}" + (f" (approval {self.approval_id})" if self.approval_id else "")
        return text + (f"; {self.rollout_step()}" if self.rollout_id else "")


class RolloutChanged(_Event):
    """A staged rollout started, went to another stage, waits for an approval, or stopped (and why)."""

    kind: Literal["rollout"] = "rollout"
    rollout_id: str
    model_name: str
    alias: str
    version_id: str
    status: RolloutState
    stage: int = Field(description="The live stage; 0 before the first.")
    stages: int
    share: int = Field(description="The canary share live now.")
    next_at: str | None = Field(default=None, description="When the next stage is due (UTC), while running.")
    approval_id: str | None = Field(default=None, description="The approval the next stage waits on.")
    actor: str
    reason: str | None = None

    @property
    def message_key(self) -> str:
        return f"rollout:{self.rollout_id}"

    def summary(self) -> str:
        text = (
            f"Rollout {self.rollout_id} of {self.version_id} on {self.model_name}@{self.alias}: {self.status},"
            f" stage {self.stage} of {self.stages} ({self.share}%)"
        )
        if self.next_at:
            text += f", next stage at {self.next_at}"
        if self.approval_id:
            text += f", waiting for approval {self.approval_id}"
        return text + (f" ({self.reason})" if self.reason else "")


class EvaluationChanged(_Event):
    """An offline evaluation was queued, made progress, or ended (its headline, or why it stopped or failed)."""

    kind: Literal["evaluation"] = "evaluation"
    evaluation_id: str
    status: EvaluationState
    candidate: str = Field(description="The candidate as resolved: a version id or PROVIDER:MODEL.")
    baseline: str = Field(description="The baseline as asked and resolved, e.g. `production (support:v3)`.")
    dataset_version: str
    judge: str
    done: int = Field(description="Examples measured and judged so far.")
    total: int | None = Field(default=None, description="Examples it measures in all, when known.")
    cost_usd: float = 0.0
    headline: str | None = None
    reason: str | None = Field(default=None, description="Why it stopped or failed, or where it stands.")
    requested_by: str

    @property
    def message_key(self) -> str:
        return f"evaluation:{self.evaluation_id}"

    def progress(self) -> str:
        """`4 of 12 examples`, or `4 examples` before the total is known."""
        return f"{self.done} of {self.total} examples" if self.total is not None else f"{self.done} examples"

    def summary(self) -> str:
        text = (
            f"Evaluation {self.evaluation_id} of {self.candidate} against {self.baseline} on {self.dataset_version}:"
            f" {self.status}, {self.progress()} (${self.cost_usd:,.4f})"
        )
        if self.reason:
            text += f": {self.reason}"
        return text + (f". {self.headline}" if self.headline else "")


class ExperimentEnded(_Event):
    """An online A/B experiment was concluded (its verdict, in one sentence) or stopped."""

    kind: Literal["experiment"] = "experiment"
    experiment_id: str
    name: str = Field(description="`support@production`, or an agent's two templates.")
    control: str
    treatment: str
    status: ExperimentState
    verdict: str = Field(description="winner, loser or inconclusive: the treatment against the control.")
    reason: str = Field(description="Why, in one sentence.")
    actor: str
    note: str | None = Field(default=None, description="What the person who ended it said.")

    @property
    def message_key(self) -> str:
        return f"experiment:{self.experiment_id}"

    def summary(self) -> str:
        text = f"Experiment {self.experiment_id} ({self.name}: {self.treatment} against {self.control}) {self.status}"
        return text + f" by {self.actor}: {self.verdict}. {self.reason}" + (f" ({self.note})" if self.note else "")


class CanaryGuarded(_Event):
    """The canary guard found a canary significantly worse than its alias's stable version, and what it did."""

    kind: Literal["canary_guard"] = "canary_guard"
    model_name: str
    alias: str
    canary_version_id: str
    stable_version_id: str
    evidence: str = Field(description="The test that found it worse, in one sentence.")
    action: CanaryAction
    approval_id: str | None = Field(default=None, description="The rollback request, when one waits.")

    @property
    def message_key(self) -> str:
        return f"canary:{self.model_name}@{self.alias}:{self.canary_version_id}"

    def summary(self) -> str:
        done = {
            CanaryAction.PROPOSED: f"rollback requested ({self.approval_id})",
            CanaryAction.PERFORMED: "rolled back by the scheduler",
            CanaryAction.ANNOUNCED: "roll it back by hand",
        }[self.action]
        return f"Canary {self.canary_version_id} on {self.model_name}@{self.alias} is worse: {self.evidence} {done}."


class RegressionAlert(_Event):
    """The daily check found an agent's acceptance, latency or cost regressed, or the alert's metric recovered."""

    kind: Literal["regression"] = "regression"
    alert_id: int
    alert: AlertKind
    agent: str
    resolved: bool = False
    headline: str = Field(description="What moved, by how much, and what changed with it, in one or two sentences.")
    metric: str | None = Field(default=None, description="acceptance, latency or cost per event.")
    facts: dict[str, str] = Field(
        default_factory=dict, description="The evidence: each window's value and volume, the test, what changed."
    )
    daily: list[tuple[str, float]] = Field(
        default_factory=list, description="The metric on each day of both windows (ISO day, value), for a chart."
    )
    recent_start: str | None = Field(default=None, description="The first day of the recent window (ISO).")

    @property
    def message_key(self) -> str:
        return f"alert:{self.alert_id}"

    def summary(self) -> str:
        return f"{'Resolved' if self.resolved else 'Regression'} ({self.alert} of {self.agent}): {self.headline}"


class LoopChanged(_Event):
    """A run of the closed loop took a step: its summary, the first message of its thread, edited in place."""

    kind: Literal["loop"] = "loop"
    run_id: str
    model_name: str
    alias: str
    step: LoopStep
    outcome: LoopOutcome | None = None
    waiting_for: str = Field(description="What the run waits for now, or how it ended.")
    latest: str = Field(description="The step just taken, in a sentence.")
    job_id: str | None = None
    version_id: str | None = None
    evaluation_id: str | None = None
    retry: bool = Field(default=False, description="The run failed and can be retried (a Retry button).")

    @property
    def message_key(self) -> str:
        return f"loop:{self.run_id}"

    def summary(self) -> str:
        state = f"ended {self.outcome}" if self.outcome else f"waits for {self.waiting_for}"
        return f"Loop run {self.run_id} of {self.model_name}@{self.alias}: {state}. {self.latest}"


class LoopStepPosted(_Event):
    """One step of a loop run, told as a reply in the run's thread."""

    kind: Literal["loop_step"] = "loop_step"
    run_id: str
    seq: int
    step: LoopStep
    text: str
    by: str

    @property
    def thread_key(self) -> str:
        return f"loop:{self.run_id}"

    def summary(self) -> str:
        return f"Loop run {self.run_id}, step {self.seq} ({self.step}): {self.text}"


class DigestReady(_Event):
    """The weekly digest of an ISO week, posted to the team channel once, its charts uploaded beside it."""

    kind: Literal["digest"] = "digest"
    week: str = Field(description="YYYY-Www.")
    headline: str = Field(description="The week's numbers in one sentence.")
    digest: dict[str, Any] = Field(description="The digest as built (reports.digest.Digest, as JSON): what is posted.")
    page_url: str | None = Field(default=None, description="Where its HTML page is served, when that is known.")

    @property
    def message_key(self) -> str:
        return f"digest:{self.week}"

    def summary(self) -> str:
        return f"Weekly digest {self.headline}"


Event = Annotated[
    Notice
    | JobChanged
    | ApprovalRequested
    | ApprovalDecided
    | ApprovalAnswered
    | AliasMoved
    | RolloutChanged
    | EvaluationChanged
    | ExperimentEnded
    | CanaryGuarded
    | RegressionAlert
    | LoopChanged
    | LoopStepPosted
    | DigestReady,
    Field(discriminator="kind"),
]
EVENT_KINDS: tuple[type[_Event], ...] = (
    Notice, JobChanged, ApprovalRequested, ApprovalDecided, ApprovalAnswered, AliasMoved, RolloutChanged,
    EvaluationChanged, ExperimentEnded, CanaryGuarded, RegressionAlert, LoopChanged, LoopStepPosted, DigestReady,
)  # fmt: skip
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(payload: str) -> Event:
    """The event stored as JSON in an outbox row."""
    return _ADAPTER.validate_json(payload)

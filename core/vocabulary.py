"""The words finetune-ops speaks, said once.

Every list of providers, export targets, methods, states, actions, roles and
faces in the project comes from the enums here: click choices, pydantic fields,
MCP tool schemas and SQL `IN (...)` lists alike. They are `StrEnum`s, so a
member equals its string and is stored, printed and compared as plain text.
A registry keyed by one of them (providers, targets, approval handlers, the
policy) has a contract test that fails when a member has no entry.
"""

from __future__ import annotations

from enum import StrEnum


class Provider(StrEnum):
    """Where a fine-tuning job runs."""

    OPENAI = "openai"
    AZURE = "azure"
    BEDROCK = "bedrock"
    LOCAL = "local"


class CatalogProvider(StrEnum):
    """Whose base models a catalog entry describes (Azure OpenAI trains OpenAI's models)."""

    OPENAI = "openai"
    BEDROCK = "bedrock"
    LOCAL = "local"


CATALOG_PROVIDER: dict[Provider, CatalogProvider] = {
    Provider.OPENAI: CatalogProvider.OPENAI,
    Provider.AZURE: CatalogProvider.OPENAI,
    Provider.BEDROCK: CatalogProvider.BEDROCK,
    Provider.LOCAL: CatalogProvider.LOCAL,
}


class ChatOnlyProvider(StrEnum):
    """Who answers chats here without training models: base models called through their own API."""

    ANTHROPIC = "anthropic"
    COMPATIBLE = "compatible"  # the OpenAI-compatible server at FINETUNE_COMPATIBLE_BASE_URL (Ollama, vLLM, ...)


ChatProvider = Provider | ChatOnlyProvider  # whoever answers chats: every training provider, and the chat-only ones
CHAT_PROVIDERS: tuple[ChatProvider, ...] = (*Provider, *ChatOnlyProvider)


class ExportTarget(StrEnum):
    """A file format a provider trains on."""

    OPENAI = "openai"
    OPENAI_DPO = "openai-dpo"
    BEDROCK_NOVA = "bedrock-nova"
    BEDROCK_CLAUDE = "bedrock-claude"
    BEDROCK_LLAMA = "bedrock-llama"
    HF_CHAT = "hf-chat"


class Method(StrEnum):
    """How a model is trained."""

    SUPERVISED = "supervised"
    DPO = "dpo"


class JobState(StrEnum):
    """The unified job states; every provider status maps to exactly one."""

    PENDING_APPROVAL = "pending_approval"
    SUBMITTING = "submitting"
    VALIDATING = "validating"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_JOB_STATES: frozenset[JobState] = frozenset(
    {JobState.SUBMITTING, JobState.VALIDATING, JobState.QUEUED, JobState.RUNNING}
)
FINAL_JOB_STATES: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Action(StrEnum):
    """Actions that may wait for a human approval; each has an approval handler."""

    LAUNCH = "launch"
    DEPLOY = "deploy"  # point a protected alias at a version
    CANARY = "canary"  # start a canary behind a protected alias, or change its share
    PROMOTE = "promote"  # make a protected alias's canary its stable version
    ROLLBACK = "rollback"  # put a protected alias back on its previous version (or end its canary)
    RETIRE = "retire"  # retire a model version for good
    RETRAIN = "retrain"  # build an agent's next dataset version and launch its job (the launch keeps its own rules)


class AliasMove(StrEnum):
    """How an alias came to point where it does: the kind of a promotions ledger row."""

    REGISTER = "register"  # a trained version took the `candidate` alias
    DEPLOY = "deploy"
    CANARY = "canary"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class RolloutState(StrEnum):
    """Where a staged rollout of a version behind a model alias stands."""

    WAITING_APPROVAL = "waiting_approval"  # its next stage waits for an approval
    RUNNING = "running"  # a stage is live; the next one is due after the hold
    PAUSED = "paused"
    COMPLETED = "completed"  # its last stage promoted the version
    CANCELLED = "cancelled"  # by an operator, or its stage's approval was rejected or expired
    SUPERSEDED = "superseded"  # the alias moved outside the rollout
    HALTED = "halted"  # a guard stopped it


ACTIVE_ROLLOUT_STATES: frozenset[RolloutState] = frozenset(
    {RolloutState.WAITING_APPROVAL, RolloutState.RUNNING, RolloutState.PAUSED}
)


class RolloutApproval(StrEnum):
    """What approving a staged rollout on a protected alias approves."""

    PLAN = "plan"  # approving its first stage approves every stage
    STAGE = "stage"  # every stage waits for its own approval


class GuardDecision(StrEnum):
    """What a rollout guard says before the next stage: go on, wait and ask again later, or stop the rollout."""

    PASS = "pass"
    HOLD = "hold"
    HALT = "halt"


class EvaluationState(StrEnum):
    """Where an offline evaluation stands."""

    QUEUED = "queued"  # waits for `finetune serve` to run it
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # an error ended it; what was measured before is kept
    STOPPED = "stopped"  # its cost cap (or an interruption) ended it early; what was measured is kept


FINAL_EVALUATION_STATES: frozenset[EvaluationState] = frozenset(
    {EvaluationState.SUCCEEDED, EvaluationState.FAILED, EvaluationState.STOPPED}
)


class Arm(StrEnum):
    """Which version of an alias served a resolution."""

    STABLE = "stable"
    CANARY = "canary"


class ExperimentKind(StrEnum):
    """What an online A/B experiment compares."""

    CANARY = "canary"  # a model alias's stable version (control) against its canary (treatment)
    TEMPLATE = "template"  # two prompt templates of one agent, by the feedback's `template`


class ExperimentState(StrEnum):
    """Where an online A/B experiment stands."""

    RUNNING = "running"
    STOPPED = "stopped"  # ended by a person; its last analysis is kept
    CONCLUDED = "concluded"  # ended with its verdict recorded and announced


class ExperimentMetric(StrEnum):
    """What an online experiment compares per outcome (a feedback event that names its version or template)."""

    ACCEPTANCE = "acceptance"  # share of drafts accepted: kept whole and not turned down
    MEAN_ACCEPTANCE = "mean_acceptance"  # mean share of each draft's characters kept
    EDIT_DISTANCE = "edit_distance"  # characters changed over both texts' characters (lower is better)
    RATING = "rating"  # mean rating, 1-5 (thumbs up 5, down 1)
    LATENCY = "latency"  # mean latency in milliseconds (lower is better)


class CanaryAction(StrEnum):
    """What the canary guard did about a canary significantly worse than its alias's stable version."""

    PROPOSED = "proposed"  # requested the rollback; an approver decides
    PERFORMED = "performed"  # rolled it back (FINETUNE_CANARY_AUTO_ROLLBACK)
    ANNOUNCED = "announced"  # said so; the alias moves without an approval, so a person rolls it back


class AlertKind(StrEnum):
    """What the daily regression check alerts on, per agent."""

    ACCEPTANCE_DROP = "acceptance_drop"
    LATENCY_SPIKE = "latency_spike"
    COST_SPIKE = "cost_spike"


class DeploymentKind(StrEnum):
    """How a provider serves a model version that needs a deployment of its own (Bedrock custom models)."""

    ON_DEMAND = "on_demand"  # paid per token
    PROVISIONED = "provisioned"  # model units paid per hour


class DeploymentState(StrEnum):
    """Where a version's provider deployment stands; every provider status maps to one of these."""

    CREATING = "creating"
    ACTIVE = "active"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


class Commitment(StrEnum):
    """How long provisioned throughput is bought for: none is billed hourly and can be deleted at any time."""

    NONE = "none"
    ONE_MONTH = "1-month"
    SIX_MONTHS = "6-months"


class Role(StrEnum):
    """What a person may do, from least to most: each role may do everything the ones before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


def role_rank(role: Role) -> int:
    """A role's place in the order viewer < operator < approver < admin."""
    return list(Role).index(role)


class IdentityKind(StrEnum):
    """Whose word names a caller: a verified Slack user (or a group of them), an OS user, an MCP or app token."""

    SLACK = "slack"
    SLACK_GROUP = "slack-group"
    OS = "os"
    MCP = "mcp"
    APP = "app"


class Operation(StrEnum):
    """Everything a face can ask the core to do, as the policy table sees it."""

    READ = "read"
    INGEST = "ingest"
    BUILD = "build"
    EXPORT = "export"
    VALIDATE = "validate"
    LAUNCH = "launch"
    CANCEL = "cancel"
    CANCEL_ANY = "cancel_any"
    DECIDE = "decide"
    NOTIFY = "notify"
    AUDIT = "audit"
    OUTBOX = "outbox"
    WEBHOOKS = "webhooks"
    CONFIG = "config"
    SERVE = "serve"
    MOVE_ALIAS = "move_alias"
    MOVE_PROTECTED_ALIAS = "move_protected_alias"
    CONTROL_ROLLOUT = "control_rollout"
    RETIRE_VERSION = "retire_version"
    RUN_EXPERIMENT = "run_experiment"  # create, stop or conclude online A/B experiments
    EVALUATE = "evaluate"  # run a candidate against a baseline, with a judge: calls paid models
    LOOP = "loop"  # start, retry or cancel runs of the closed loop (each costly step still asks its approval)


class LoopStep(StrEnum):
    """Where a run of the closed loop stands: what it waits for next."""

    RETRAIN_APPROVAL = "retrain_approval"  # the retraining request waits for an approver
    TRAINING = "training"  # its job runs
    EVALUATING = "evaluating"  # the candidate is evaluated against the alias it aims at
    CANARY_APPROVAL = "canary_approval"  # the canary (or a first deploy) waits for an approver
    CANARY = "canary"  # the canary's rollout runs under the acceptance guard
    ROLLBACK_APPROVAL = "rollback_approval"  # the guard proposed a rollback; an approver decides
    DONE = "done"


class LoopOutcome(StrEnum):
    """How a run of the closed loop ended."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    NOT_DEPLOYED = "not_deployed"  # the evaluation found the candidate worse
    REJECTED = "rejected"  # a person said no (or an approval expired)
    FAILED = "failed"  # a job or an evaluation failed: retry it
    CANCELLED = "cancelled"


class ApprovalNeed(StrEnum):
    """When an operation waits for an approver instead of acting."""

    NEVER = "never"
    OVER_LIMITS = "over_limits"  # above FINETUNE_AUTO_APPROVE_USD, or past a spend limit
    ALWAYS = "always"


class Face(StrEnum):
    """Through which interface an actor reached finetune-ops."""

    CLI = "cli"
    SLACK = "slack"
    MCP = "mcp"
    SCHEDULER = "scheduler"
    APP = "app"  # an application over the HTTP API (/v1), by its application token's name


def values(enum: type[StrEnum]) -> list[str]:
    """The members' strings, in definition order (for click choices and messages)."""
    return [member.value for member in enum]


def one_of(enum: type[StrEnum]) -> str:
    """`a, b or c`: the valid values of `enum`, for error hints."""
    words = values(enum)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]

"""Every action that may wait for a human approval, and what deciding it does.

`HANDLERS` is the one explicit registry: for each `Action`, what runs inside
the transaction that records the decision (so the decision and its effect
commit together) and what runs after it commits (talking to a provider, which
must never happen inside a database transaction). A contract test checks that
every `Action` has an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core import registry
from core.analytics import retrain
from core.platform import approvals
from core.platform.actors import Actor
from core.platform.policy import authorize
from core.registry import deployments
from core.services import Services
from core.training import jobs
from core.vocabulary import Action, ApprovalState, Operation


@dataclass(frozen=True)
class ActionHandler:
    """What deciding one kind of approval does."""

    on_decided: approvals.DecisionHandler  # inside the deciding transaction: the subject's own state change
    after_approved: Callable[[Services, approvals.Approval], None] | None = None  # after commit, approved only
    before_approving: Callable[[Services, approvals.Approval], None] | None = None  # raises to refuse an approval


# An approved move to a version without its provider deployment waits for it; the deployment is asked for after commit.
# An approving vote is refused while the change fails the evaluation policy (FINETUNE_REQUIRE_EVALUATION).
_ALIAS_CHANGE = ActionHandler(
    on_decided=registry.on_alias_decided, after_approved=deployments.after_alias_approved,
    before_approving=registry.check_approvable,
)  # fmt: skip

HANDLERS: dict[Action, ActionHandler] = {
    Action.LAUNCH: ActionHandler(on_decided=jobs.on_launch_decided, after_approved=jobs.after_launch_approved),
    Action.DEPLOY: _ALIAS_CHANGE,
    Action.CANARY: _ALIAS_CHANGE,
    Action.PROMOTE: _ALIAS_CHANGE,
    Action.ROLLBACK: _ALIAS_CHANGE,
    Action.RETIRE: ActionHandler(
        on_decided=registry.on_retire_decided, after_approved=deployments.after_retire_approved
    ),  # the version's provider deployment is deleted after commit
    Action.RETRAIN: ActionHandler(
        on_decided=retrain.on_retrain_decided, after_approved=retrain.after_retrain_approved
    ),  # the dataset version is built and its job launched after commit
}


def decide(
    svc: Services, *, approval_id: str, actor: Actor, approve: bool, reason: str | None = None
) -> approvals.Approval:
    """Approve or reject an approval request; an approved action then runs.

    The policy decides who may decide (approvers, never over MCP); four eyes compares people, so a
    requester's other identities (FINETUNE_PEOPLE) cannot approve either. A request that needs more
    approvers than it has stays pending (the answer says how many approved); its action runs with the last one.
    """
    authorize(actor, Operation.DECIDE)
    asked = approvals.get(svc.store, approval_id)
    handler = HANDLERS[asked.action]
    if approve and handler.before_approving is not None and asked.status == ApprovalState.PENDING:
        handler.before_approving(svc, asked)
    decided = approvals.decide(
        svc.store,
        approval_id=approval_id,
        actor=actor,
        approve=approve,
        four_eyes=svc.settings.four_eyes,
        reason=reason,
        on_decided=handler.on_decided,
        now=svc.clock(),  # the services' clock: what an approved alias move records as its time
    )
    if decided.status == ApprovalState.APPROVED and handler.after_approved is not None:
        handler.after_approved(svc, decided)
    return decided

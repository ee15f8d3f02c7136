"""What a digest button does: the next action it names, asked of the core as the person who clicked.

Each kind is an existing request with its own policy: a rollback goes through
the registry (an approval where the alias is protected), a retraining is a
proposal approvers decide (`core.analytics.retrain`), an A/B test starts an
experiment. The clicker is the requester and never the approver. Clicking a
rollback again while one already waits for approval answers with that request
instead of opening a second.
"""

from __future__ import annotations

from core import registry
from core.analytics import request_retrain
from core.errors import InvalidInput
from core.evaluation import create_experiment
from core.platform import approvals
from core.platform.actors import Actor
from core.services import Services
from core.vocabulary import Action, ApprovalState
from reports.digest import ActionKind

# The command of the shared grammar each kind stands for: the policy and the audit log name it so.
COMMANDS: dict[ActionKind, str] = {"rollback": "rollback", "retrain": "retrain", "ab": "ab create"}
MAX_VALUE = 600


def run_action(svc: Services, *, actor: Actor, kind: ActionKind, value: str) -> str:
    """Do what a digest button asks, as `actor`; returns what happened, in a sentence for the clicker."""
    if kind == "retrain":
        proposal = request_retrain(svc, agent=_text(value), actor=actor)
        return f"Retraining proposed ({proposal.approval.id}): {proposal.text} Approvers decide it."
    model, alias = _model_alias(value)
    if kind == "rollback":
        return _rollback(svc, actor, model, alias)
    report = create_experiment(svc, actor=actor, name=model, alias=alias)
    experiment = report.experiment
    return f"Started A/B experiment {experiment.id}: {experiment.title}. `finetune ab {experiment.id}` follows it."


def _rollback(svc: Services, actor: Actor, model: str, alias: str) -> str:
    subject = f"{model}@{alias}"
    waiting = next(
        (a for a in approvals.pending(svc.store).approvals if a.action == Action.ROLLBACK and a.subject_id == subject),
        None,
    )
    if waiting is not None:
        return f"A rollback of {subject} already waits for approval ({waiting.id}, asked by {waiting.requested_by})."
    change = registry.rollback(svc, actor=actor, name=model, alias=alias, reason="asked from the weekly digest")
    if change.approval is not None and change.approval.status == ApprovalState.PENDING:
        return f"Rollback of {subject} requested ({change.approval.id}): approvers decide it in the channel."
    now = change.alias.version_id if change.alias else "nothing"
    return f"Rolled back {subject}: it serves {now} now."


def _text(value: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE or not value.isprintable():
        raise InvalidInput(
            "the button carries no model or agent name.", hint="Ask for a fresh digest with `/finetune report`."
        )
    return value


def _model_alias(value: str) -> tuple[str, str]:
    model, at, alias = _text(value).rpartition("@")
    if not at or not model or not alias:
        raise InvalidInput(
            f"the button names {value!r}, not MODEL@ALIAS.", hint="Ask for a fresh digest with `/finetune report`."
        )
    return model, alias

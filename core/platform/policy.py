"""Who may do what: one table, one function.

`POLICY` gives every operation the faces can run the least role that may run
it, the faces it is refused over whatever the role, and whether it waits for an
approval. `authorize(actor, operation)` is the one decision: the faces ask it
for every command and tool (`bot.invoke.check_policy`), and the core asks it
again for the actions that matter (launching, cancelling, deciding approvals,
notices, the audit log), so no face can go around it.

Agents over MCP may request costly actions but never decide them: deciding an
approval is refused over MCP whatever the caller's role.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import PermissionDenied
from core.platform.actors import Actor
from core.platform.identity import ROLE_LISTS
from core.platform.settings import Settings
from core.vocabulary import ApprovalNeed, Face, IdentityKind, Operation, Role, role_rank

__all__ = ["POLICY", "Rule", "authorize", "may", "role_setting"]


@dataclass(frozen=True)
class Rule:
    least: Role  # the least role that may run the operation
    doing: str  # what it is, for messages: "<actor> may not <doing>"
    approval: ApprovalNeed = ApprovalNeed.NEVER
    refused_over: frozenset[Face] = field(default_factory=frozenset)


POLICY: dict[Operation, Rule] = {
    Operation.READ: Rule(Role.VIEWER, "read"),
    Operation.INGEST: Rule(Role.OPERATOR, "ingest feedback"),
    Operation.BUILD: Rule(Role.OPERATOR, "build datasets"),
    Operation.EXPORT: Rule(Role.OPERATOR, "export datasets"),
    Operation.VALIDATE: Rule(Role.OPERATOR, "validate dataset exports"),
    Operation.LAUNCH: Rule(Role.OPERATOR, "launch fine-tuning jobs", approval=ApprovalNeed.OVER_LIMITS),
    Operation.CANCEL: Rule(Role.OPERATOR, "cancel jobs"),
    Operation.CANCEL_ANY: Rule(Role.APPROVER, "cancel other people's jobs"),
    Operation.DECIDE: Rule(Role.APPROVER, "decide approvals", refused_over=frozenset({Face.MCP})),
    Operation.NOTIFY: Rule(Role.ADMIN, "send notices"),
    Operation.AUDIT: Rule(Role.ADMIN, "read the audit log"),
    Operation.OUTBOX: Rule(Role.ADMIN, "administer the outbox"),
    Operation.WEBHOOKS: Rule(Role.ADMIN, "administer webhook deliveries"),
    Operation.CONFIG: Rule(Role.ADMIN, "read the settings"),
    Operation.SERVE: Rule(Role.ADMIN, "run the server"),
    Operation.MOVE_ALIAS: Rule(Role.OPERATOR, "move model aliases"),
    Operation.MOVE_PROTECTED_ALIAS: Rule(Role.OPERATOR, "change protected model aliases", approval=ApprovalNeed.ALWAYS),
    Operation.CONTROL_ROLLOUT: Rule(Role.OPERATOR, "pause, resume or cancel staged rollouts"),
    Operation.RETIRE_VERSION: Rule(Role.OPERATOR, "retire model versions", approval=ApprovalNeed.ALWAYS),
    Operation.RUN_EXPERIMENT: Rule(Role.OPERATOR, "create, stop or conclude A/B experiments"),
    Operation.EVALUATE: Rule(Role.OPERATOR, "run evaluations"),
    Operation.LOOP: Rule(Role.OPERATOR, "start, retry or cancel runs of the closed loop"),
}


def may(actor: Actor, operation: Operation) -> bool:
    rule = POLICY[operation]
    return actor.face not in rule.refused_over and role_rank(actor.role) >= role_rank(rule.least)


def authorize(actor: Actor, operation: Operation) -> None:
    """Return if `actor` may run `operation`; otherwise PermissionDenied naming the setting that would allow it."""
    rule = POLICY[operation]
    if actor.face in rule.refused_over:
        raise PermissionDenied(
            f"{actor} may not {rule.doing} over {actor.face}: agents may request costly actions, never decide them.",
            hint="An approver decides in Slack or with `finetune approve` / `finetune reject`.",
            actor=actor.id,
            operation=operation,
        )
    if role_rank(actor.role) < role_rank(rule.least):
        raise PermissionDenied(
            f"{actor} ({actor.role}) may not {rule.doing}: that needs the {rule.least} role.",
            hint=_role_hint(actor, rule.least),
            actor=actor.id,
            operation=operation,
        )


def role_setting(role: Role) -> str:
    """The setting that lists `role`'s identities (FINETUNE_OPERATORS, ...)."""
    return Settings.env_names()[ROLE_LISTS[role]]


def _role_hint(actor: Actor, least: Role) -> str:
    setting = role_setting(least)
    kind = actor.identity.partition(":")[0]
    if kind == IdentityKind.SLACK:
        return (
            f"Ask an admin to add {actor.identity} (or a Slack user group it is in, as slack-group:ID) to {setting} "
            "or a higher role's list."
        )
    if kind == IdentityKind.OS:
        return (
            f"Add {actor.identity} to {setting} or a higher role's list "
            "(FINETUNE_CLI_ROLE sets the role of OS users listed nowhere)."
        )
    return f"Add {actor.identity} to {setting} or a higher role's list."

"""Registry tools: the models agents serve, which version answers a caller, and requests to move an alias.

Agents request deployments and rollbacks; a protected alias (`production`) only moves when an approver
decides in Slack or at the terminal, so those tools answer with the approval the change waits on.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from core import registry
from core.platform import Approval, ApprovalList, approvals
from core.registry import (
    MAX_STAGES,
    PRODUCTION,
    History,
    ModelDetail,
    ModelList,
    RegistryChange,
    ResolvedModel,
)
from mcp_server.tools import ID_LIMIT, READS, Effect, Toolbox, call_core

TOOLS = Toolbox()

# Asking again asks for a second approval (or is refused once the alias moved): not idempotent, never destructive.
REQUESTS = Effect(read_only=False, idempotent=False)


ModelName = Annotated[
    str, Field(description="A registered model's name (see list_models).", min_length=1, max_length=ID_LIMIT)
]
AliasName = Annotated[
    str,
    Field(description="The alias: production (protected: moves by approval), candidate, or any other name.",
          max_length=ID_LIMIT),
]  # fmt: skip
VersionRef = Annotated[
    int | Annotated[str, Field(max_length=ID_LIMIT)],
    Field(description="A version of the model: 3, v3 or name:v3 (see get_model)."),
]
Reason = Annotated[str | None, Field(description="Why, for the ledger and the approver (optional).", max_length=1000)]


@TOOLS.tool(title="List models", effect=READS)
def list_models(ctx: Context) -> ModelList:
    """Every registered model (one per agent or use case) with its aliases (production, candidate, ...), the
    version each serves and any canary with its share."""

    return call_core(ctx, "list_models", {}, lambda svc, actor: registry.models_overview(svc.store))


@TOOLS.tool(title="Get model", effect=READS)
def get_model(ctx: Context, name: ModelName) -> ModelDetail:
    """One registered model: every version with its lineage (dataset version, job, provider model id, cost,
    metrics, retired or not), its aliases, and its staged rollouts in progress (stage k of n, share, status,
    next advance)."""
    return call_core(ctx, "get_model", {"name": name}, lambda svc, actor: registry.describe_model(svc.store, name))


@TOOLS.tool(title="Request deployment", effect=REQUESTS)
def request_deployment(
    ctx: Context,
    name: ModelName,
    version: VersionRef,
    alias: AliasName = PRODUCTION,
    canary_share: Annotated[
        int | None,
        Field(description="Run the version as the alias's canary for this percent of callers (0-100) instead of "
              "replacing its stable version.", ge=0, le=100),
    ] = None,
    reason: Reason = None,
    plan: Annotated[
        list[Annotated[int, Field(ge=1, le=100)]] | None,
        Field(description="Roll the version out in stages instead: canary shares in increasing order ending at "
              "100, e.g. [10, 50, 100]; each stage starts after `every`, and 100 promotes the version.",
              min_length=1, max_length=MAX_STAGES),
    ] = None,
    every: Annotated[
        str | None,
        Field(description="With `plan`: the hold between stages, in minutes (m), hours (h) or days (d), e.g. "
              "30m, 24h or 2d; from 1 minute to 30 days.", max_length=32),
    ] = None,
) -> RegistryChange:  # fmt: skip
    """Point a model's alias at a version, or start it as the alias's canary with `canary_share`, or roll it out
    in stages with `plan` and `every` (the answer's `rollout` says its stage and next advance; get_model shows it
    later). An alias that is not protected moves at once (`applied`); a protected one (production) waits for an
    approver in Slack, and the answer carries that `approval` (see get_approval). Agents may request, never
    approve."""
    args: dict[str, object] = {"name": name, "version": version, "alias": alias, "canary_share": canary_share}
    args |= {"reason": reason, "plan": plan, "every": every}
    return call_core(ctx, "request_deployment", args, lambda svc, actor: registry.request_deploy(
        svc, actor=actor, name=name, version=version, alias=alias, canary_share=canary_share, reason=reason,
        plan=plan, every=every,
    ))  # fmt: skip


@TOOLS.tool(title="Request rollback", effect=REQUESTS)
def request_rollback(
    ctx: Context,
    name: ModelName,
    alias: AliasName = PRODUCTION,
    to: Annotated[
        int | Annotated[str, Field(max_length=ID_LIMIT)] | None,
        Field(description="The version to go back to (3, v3 or name:v3); default: end the canary if one runs, "
              "else the version the alias served before."),
    ] = None,
    reason: Reason = None,
) -> RegistryChange:  # fmt: skip
    """Undo a model alias's latest change: end its canary, or go back to its previous version (or to `to`). On a
    protected alias (production) this waits for an approver, and the answer carries that `approval`."""
    args = {"name": name, "alias": alias, "to": to, "reason": reason}
    return call_core(ctx, "request_rollback", args, lambda svc, actor: registry.rollback(
        svc, actor=actor, name=name, alias=alias, to=to, reason=reason,
    ))  # fmt: skip


@TOOLS.tool(title="Resolve model", effect=READS)
def resolve_model(
    ctx: Context,
    name: ModelName,
    key: Annotated[
        str,
        Field(description="A stable id of the caller (user, conversation or tenant): the same key always gets the "
              "same version while the alias and its canary share stay put.", min_length=1, max_length=ID_LIMIT),
    ],
    alias: AliasName = PRODUCTION,
) -> ResolvedModel:  # fmt: skip
    """Which version of a model's alias serves the caller identified by `key`, and the provider model id to call:
    the stable version, or the canary for the callers that fall in its share."""
    return call_core(ctx, "resolve_model", {"name": name, "key": key, "alias": alias}, lambda svc, actor: (
        ResolvedModel.of(registry.resolve_model(svc.store, name, key, alias))
    ))  # fmt: skip


@TOOLS.tool(title="Model history", effect=READS)
def model_history(
    ctx: Context,
    name: ModelName,
    at: Annotated[
        str | None,
        Field(description="An ISO-8601 time (UTC unless it says otherwise), e.g. 2026-11-23T10:00:00Z; "
              "default: now.", max_length=64),
    ] = None,
) -> History:  # fmt: skip
    """What served each alias of a model at a moment (default now), who put it there, through which face and
    approval, and every alias move until then, oldest first."""
    return call_core(
        ctx, "model_history", {"name": name, "at": at}, lambda svc, actor: registry.history(svc.store, name, at=at)
    )


@TOOLS.tool(title="List approvals", effect=READS)
def list_approvals(ctx: Context) -> ApprovalList:
    """Approval requests waiting for a decision (launches over budget, protected alias moves, retirements),
    oldest first. Approvers decide them in Slack or at the terminal, never over MCP."""
    return call_core(ctx, "list_approvals", {}, lambda svc, actor: approvals.pending(svc.store))


@TOOLS.tool(title="Get approval", effect=READS)
def get_approval(
    ctx: Context,
    approval_id: Annotated[
        str, Field(description="The approval id, as a request or list_approvals returns it.", max_length=ID_LIMIT)
    ],
) -> Approval:
    """One approval request: what it asks, who asked, its state (pending, approved, rejected, expired,
    cancelled), who decided and when it expires."""
    return call_core(
        ctx, "get_approval", {"approval_id": approval_id}, lambda svc, actor: approvals.get(svc.store, approval_id)
    )

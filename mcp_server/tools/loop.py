"""Closed-loop tools: agents start a run of the loop for an agent's model, follow it step by step, and retry a
failed one. Every costly or irreversible step of a run (retraining, the canary, a rollback) is an approval that
people decide in Slack or a terminal; these tools can ask for them, never decide them."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from core.loop import LoopRun, LoopRunList, get_run, list_runs, retry_run, start_run
from mcp_server.tools import ID_LIMIT, READS, Effect, Toolbox, call_core

TOOLS = Toolbox()

# Starting asks for an approval (nothing is trained before a person approves); a second start for the same model is
# refused while a run is in progress. A retry relaunches a job (an approval again when over budget).
STARTS = Effect(read_only=False, idempotent=False)

RunId = Annotated[
    str, Field(description="The loop run id (loop-...), as start_loop answers it.", min_length=1, max_length=ID_LIMIT)
]


@TOOLS.tool(title="Start loop run", effect=STARTS)
def start_loop(
    ctx: Context,
    agent: Annotated[
        str, Field(description="The agent whose model is retrained (its dataset's and registered model's name).",
                   min_length=1, max_length=ID_LIMIT),
    ],
    alias: Annotated[
        str | None,
        Field(description="The alias the candidate is evaluated against and canaried behind (default: the "
              "FINETUNE_LOOP_ALIAS setting, production).", max_length=ID_LIMIT),
    ] = None,
) -> LoopRun:  # fmt: skip
    """Start a run of the closed loop for `agent`: its retraining on the corrections since its last dataset version
    is requested as an approval (with the cost estimate). Once a person approves, `finetune serve` trains the
    candidate, evaluates it against the alias, requests a canary (another approval), and promotes it after its
    plan or, when the acceptance guard finds it worse, requests its rollback. Follow it with get_loop_run: its
    `step` and `waiting_for` say which human decision it waits on."""
    return call_core(
        ctx, "start_loop", {"agent": agent, "alias": alias},
        lambda svc, actor: start_run(svc, agent=agent, actor=actor, alias=alias),
    )  # fmt: skip


@TOOLS.tool(title="Get loop run", effect=READS)
def get_loop_run(ctx: Context, run_id: RunId) -> LoopRun:
    """One run of the closed loop: its step and what it waits for (an approval id when a person must decide), what
    it linked (retraining approval, dataset version, job, candidate version, evaluation, canary approval, rollout,
    rollback approval), its outcome when it ended (promoted, rolled_back, not_deployed, rejected, failed,
    cancelled) and every step so far."""
    return call_core(ctx, "get_loop_run", {"run_id": run_id}, lambda svc, actor: get_run(svc, run_id))


@TOOLS.tool(title="List loop runs", effect=READS)
def list_loop_runs(
    ctx: Context,
    active_only: Annotated[bool, Field(description="Only runs in progress.")] = False,
) -> LoopRunList:
    """Runs of the closed loop, newest first: each with its step, outcome and links."""
    return call_core(
        ctx, "list_loop_runs", {"active_only": active_only},
        lambda svc, actor: list_runs(svc, active_only=active_only),
    )  # fmt: skip


@TOOLS.tool(title="Retry loop run", effect=STARTS)
def retry_loop_run(ctx: Context, run_id: RunId) -> LoopRun:
    """Take a failed run up where it failed: relaunch its job with the same dataset version and settings (which
    asks for an approval again when over budget), or run its evaluation again."""
    return call_core(
        ctx, "retry_loop_run", {"run_id": run_id}, lambda svc, actor: retry_run(svc, run_id=run_id, actor=actor)
    )

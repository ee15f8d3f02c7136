"""Closed-loop commands, shared by `finetune` and `/finetune`: list, start, show (also `loop ID`), retry, cancel.

`loop start support` asks for support's retraining now (the same request the
scheduler makes when enough corrections piled up); serve then carries the run
through its job, evaluation, canary and promotion, stopping at every step the
policy gives to a person. The core checks the policy itself; these callbacks
only parse and call.
"""

from __future__ import annotations

import click

from bot.commands import CONTEXT, Invocation, json_option
from core.loop import RUN_ID_PREFIX, LoopRun, LoopRunList, cancel_run, get_run, list_runs, retry_run, start_run

# Text shared by the terminal and Slack -----------------------------------------------------------

OUTCOME_ICONS = {
    "promoted": ":white_check_mark:",
    "rolled_back": ":rewind:",
    "not_deployed": ":no_entry_sign:",
    "rejected": ":no_entry:",
    "failed": ":x:",
    "cancelled": ":heavy_multiplication_x:",
}


def run_line(run: LoopRun) -> str:
    """`loop-1a2b3c support@production: waits for the fine-tuning job to finish (started 2026-12-01 09:00)`."""
    state = f"ended {run.outcome}" if run.outcome else f"waits for {run.waiting_for()}"
    return f"{run.id} {run.model_name}@{run.alias}: {state} (started {run.created_at[:16].replace('T', ' ')} UTC)"


def linked(run: LoopRun) -> list[tuple[str, str]]:
    """What the run linked so far, as (label, value) pairs."""
    pairs = [
        ("Retraining approval", run.retrain_approval_id), ("Dataset version", run.dataset_version_id),
        ("Job", run.job_id), ("Candidate", run.version_id), ("Evaluation", run.evaluation_id),
        ("Canary approval", run.canary_approval_id), ("Rollout", run.rollout_id),
        ("Rollback approval", run.rollback_approval_id),
    ]  # fmt: skip
    return [(label, value) for label, value in pairs if value]


class LoopGroup(click.Group):
    """`loop ID` is `loop show ID`: the short form people type in Slack."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0].startswith(RUN_ID_PREFIX):
            args = ["show", *args]
        return super().resolve_command(ctx, args)


@click.group(
    "loop",
    cls=LoopGroup,
    context_settings=CONTEXT,
    invoke_without_command=True,
    short_help="The closed loop: list, start, show (loop ID), retry, cancel.",
)
@click.option("--active", is_flag=True, help="Only runs in progress.")
@json_option
@click.pass_context
def loop_group(ctx: click.Context, active: bool) -> LoopRunList | None:
    """Without a subcommand, list runs of the loop, newest first; `loop ID` shows one."""
    if ctx.invoked_subcommand is None:
        return list_runs(ctx.obj.services, active_only=active)
    return None


@loop_group.command("start", context_settings=CONTEXT, short_help="Request an agent's retraining as a loop run.")
@click.argument("agent")
@click.option("--alias", metavar="ALIAS", help="The alias the candidate aims at [FINETUNE_LOOP_ALIAS].")
@json_option
@click.pass_obj
def loop_start(inv: Invocation, agent: str, alias: str | None) -> LoopRun:
    """Start a run for AGENT's model: its retraining on the corrections since its last dataset version is requested
    now (an approval with the cost estimate); serve then trains, evaluates against the alias, proposes a canary,
    and promotes or rolls back under the acceptance guard, asking people at each costly step."""
    return start_run(inv.services, agent=agent, actor=inv.actor, alias=alias)


@loop_group.command("show", context_settings=CONTEXT, short_help="Where a run stands, step by step (loop ID).")
@click.argument("run_id", metavar="ID")
@json_option
@click.pass_obj
def loop_show(inv: Invocation, run_id: str) -> LoopRun:
    """Show run ID: what it waits for, what it linked (job, version, evaluation, approvals) and every step so far."""
    return get_run(inv.services, run_id)


@loop_group.command("retry", context_settings=CONTEXT, short_help="Take a failed run up where it failed.")
@click.argument("run_id", metavar="ID")
@json_option
@click.pass_obj
def loop_retry(inv: Invocation, run_id: str) -> LoopRun:
    """Retry failed run ID: relaunch its job with the same dataset version and settings, or run its evaluation
    again, and carry on from there."""
    return retry_run(inv.services, run_id=run_id, actor=inv.actor)


@loop_group.command("cancel", context_settings=CONTEXT, short_help="Stop following a run.")
@click.argument("run_id", metavar="ID")
@click.option("--reason", help="Why, for the record and the thread.")
@json_option
@click.pass_obj
def loop_cancel(inv: Invocation, run_id: str, reason: str | None) -> LoopRun:
    """Stop run ID. What it already requested stays as it is: cancel its job (`jobs cancel`) or reject its
    approvals apart."""
    return cancel_run(inv.services, run_id=run_id, actor=inv.actor, reason=reason)


SHARED: tuple[click.Command, ...] = (loop_group,)

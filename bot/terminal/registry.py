"""Registry results on a terminal: models, versions, alias changes (applied or waiting), history, resolution."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from bot.commands.registry import (
    ResolvedVersion,
    alias_text,
    plan_text,
    put_by_text,
    rollout_text,
    serving_text,
    waiting_text,
)
from bot.terminal.output import render
from core.registry import AliasState, History, ModelDetail, ModelList, ModelVersion, RegistryChange, Rollout


def _print(console: Console, text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


def _aliases(aliases: list[AliasState]) -> str:
    return ", ".join(alias_text(a) for a in aliases) or "no aliases"


@render.register
def _(result: ModelList, console: Console) -> None:
    if not result.models:
        _print(console, "No registered models yet: a model is registered when a fine-tuning job for it succeeds.")
    for model in result.models:
        latest = f", latest {model.latest}" if model.latest else ""
        _print(console, f"[bold]{model.name}[/bold]  {model.versions} version(s){latest}  {_aliases(model.aliases)}")


@render.register
def _(result: ModelDetail, console: Console) -> None:
    _print(console, f"[bold]{result.name}[/bold]  {_aliases(result.aliases)}")
    for rollout in result.rollouts:
        _print(console, f"  {rollout_text(rollout)}")
    for v in result.versions:
        lineage = " by ".join(filter(None, (v.dataset_version_id, v.job_id)))
        cost = f"  ${v.cost_usd:,.2f}" if v.cost_usd is not None else ""
        trained = f"  from {lineage}" if lineage else ""
        created = v.created_at[:16].replace("T", " ")
        _print(console, f"  {v.id}  {v.status}  {v.provider}: {v.provider_model_id or '-'}{trained}{cost}  {created}")
    for d in result.deployments:  # what applications call, and what it costs
        _print(console, f"  {escape(d.describe())}")


@render.register
def _(result: ModelVersion, console: Console) -> None:
    _print(console, f"[bold]{result.id}[/bold]  {result.status}")
    metrics = ", ".join(f"{k} {v:g}" for k, v in result.metrics.items())
    cost = f"${result.cost_usd:,.2f}" if result.cost_usd is not None else None
    for label, value in (("provider", result.provider), ("provider model", result.provider_model_id),
                         ("base model", result.base_model), ("dataset version", result.dataset_version_id),
                         ("job", result.job_id), ("cost", cost), ("metrics", metrics),
                         ("registered", result.created_at[:19]), ("retired", result.retired_at)):  # fmt: skip
        if value:
            _print(console, f"  {label}: {value}")


@render.register
def _(result: RegistryChange, console: Console) -> None:
    if result.rollout is not None:
        _print(console, f"Started {rollout_text(result.rollout)}.")
        _print(console, f"Plan: {plan_text(result.rollout)}.")
    waiting = waiting_text(result)
    if waiting is not None:
        assert result.approval is not None
        _print(console, waiting)
        _print(console, f"An approver runs `finetune approve {result.approval.id}` (or approves it in Slack).")
        if result.alias is not None:
            _print(console, f"Until then {result.alias.model_name}@{alias_text(result.alias)}.")
        return
    if result.alias is not None:
        a = result.alias
        _print(
            console,
            f"{a.model_name}@{a.alias} now serves {serving_text(a.version_id, a.canary_version_id, a.canary_share)}.",
        )
    if result.version is not None:
        _print(console, f"{result.version.id} is {result.version.status}.")


@render.register
def _(result: Rollout, console: Console) -> None:
    _print(console, f"[bold]{result.model_name}@{result.alias}[/bold]  {rollout_text(result)}")
    _print(console, f"  plan: {plan_text(result)}, requested by {result.requested_by}")
    if result.plan_approval_id:
        _print(console, f"  approved as a plan by {result.plan_approval_id} ({result.approval_mode} mode)")
    if result.active:
        _print(console, f"  `finetune models rollout {result.model_name} --alias {result.alias} pause|resume|cancel`")


@render.register
def _(result: History, console: Console) -> None:
    moment = result.at[:19].replace("T", " ") + " UTC" if result.at else "now"
    _print(console, f"[bold]{result.model_name} at {moment}[/bold]")
    if not result.aliases:
        _print(console, "  no alias served a version then.")
    for entry in result.aliases:
        _print(console, f"  {alias_text(entry)}  ({put_by_text(entry)})")
    if result.moves:
        _print(console, "Moves:")
    for move in result.moves:
        to = serving_text(move.to_version_id, move.canary_version_id, move.canary_share)
        approved = f", approval {move.approval_id}" if move.approval_id else ""
        _print(
            console,
            f"  {move.at[:19].replace('T', ' ')}  {move.move or 'move'} {move.alias}: {move.from_version_id or 'nothing'}"
            f" -> {to}  by {move.actor}{approved}" + (f"  ({move.reason})" if move.reason else ""),
        )


@render.register
def _(result: ResolvedVersion, console: Console) -> None:
    model = f" ({result.provider}: {result.provider_model_id})" if result.provider_model_id else f" ({result.provider})"
    _print(
        console,
        f"{result.model_name}@{result.alias} serves {result.version_id}{model} to key {result.key!r}:"
        f" {result.arm} arm, bucket {result.bucket}.",
    )

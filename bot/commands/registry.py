"""Registry commands: registered models and their versions, deploys, canaries, promotions, rollbacks,
retirements, the ledger's history and sticky resolution.

`models ...` holds them all; `deploy` and `rollback` are the short forms a
person types most (`/finetune deploy support v3 --canary 10`,
`/finetune rollback support`). The registry core checks the policy of every
change itself (an unprotected alias moves at once, `production` waits for an
approval, a retirement always does), so these callbacks only parse and call.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click
from pydantic import BaseModel, Field

from bot.commands import CONTEXT, Invocation, json_option
from core import registry
from core.errors import InvalidInput
from core.registry import AliasAt, AliasState, History, ModelVersion, RegistryChange, Rollout
from core.vocabulary import Arm, RolloutState

SHARE = click.IntRange(0, 100)  # percent of callers a canary serves


class _Parsed(click.ParamType):
    """An option whose text a core parser reads (a plan, a hold); its refusal is click's, naming the option."""

    def __init__(self, name: str, parse: Callable[..., Any]) -> None:
        self.name, self.parse = name, parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value, argument=f"--{self.name}")
        except InvalidInput as exc:
            self.fail(f"{exc.message} {exc.hint or ''}".strip(), param, ctx)


PLAN = _Parsed("plan", registry.parse_plan)  # canary shares of a staged rollout: 10,50,100
HOLD = _Parsed("every", registry.parse_hold)  # the hold between its stages: 30m, 24h, 2d

# `support:v3` or `support:3`: one version of a model, as `models show` reads it.
_VERSION_ID = re.compile(r"(?P<name>.+):v?(?P<number>[0-9]{1,9})")


class ResolvedVersion(BaseModel):
    """The version that serves one caller key of `model_name@alias`, and through which arm."""

    model_name: str
    alias: str
    key: str
    version_id: str
    provider: str
    provider_model_id: str | None
    arm: Arm
    bucket: int = Field(description="The key's place in 0-99; the canary serves places below its share.")


# Text shared by the terminal and Slack ---------------------------------------------------------


def serving_text(version_id: str, canary_version_id: str | None, canary_share: int) -> str:
    """`support:v2`, or `support:v2 with canary support:v3 at 10%`."""
    if canary_version_id:
        return f"{version_id} with canary {canary_version_id} at {canary_share}%"
    return version_id


def alias_text(alias: AliasState | AliasAt) -> str:
    return f"{alias.alias} -> {serving_text(alias.version_id, alias.canary_version_id, alias.canary_share)}"


def put_by_text(entry: AliasAt) -> str:
    """`since 2026-11-23 10:00:00 by slack:U1, approved by cli:ann (ap_1)`."""
    text = f"since {entry.since[:19].replace('T', ' ')} by {entry.put_by}"
    if entry.approval_id:
        text += f", approved by {entry.approved_by or 'an approver'} ({entry.approval_id})"
    return text


def rollout_text(rollout: Rollout) -> str:
    """`rollout ro_1 of support:v3 on production, running: stage 2 of 3 (50%) live; next stage at 2026-11-24 09:00
    UTC`, or what its next stage waits for, and why it stopped."""
    parts = [f"{rollout.progress()} ({rollout.share}%) live"] if rollout.stage else []
    if rollout.approval_id:
        upcoming = rollout.stage + 1
        parts.append(
            f"stage {upcoming} of {len(rollout.stages)} ({rollout.stages[upcoming - 1]}%) waits for approval"
            f" {rollout.approval_id}"
        )
    elif rollout.status is RolloutState.RUNNING and rollout.next_at:
        parts.append(f"next stage at {rollout.next_at[:16].replace('T', ' ')} UTC")
    text = f"rollout {rollout.id} of {rollout.version_id} on {rollout.alias}, {rollout.status}"
    text += f": {'; '.join(parts)}" if parts else ""
    return text + (f" ({rollout.status_reason})" if rollout.status_reason else "")


def plan_text(rollout: Rollout) -> str:
    """`10% → 50% → 100%, every 1d`."""
    return " → ".join(f"{share}%" for share in rollout.stages) + f", every {rollout.hold}"


def waiting_text(change: RegistryChange) -> str | None:
    """What a change that waits for an approval waits for, or None when it was applied."""
    if change.approval is None:
        return None
    approval = change.approval
    return f"Waiting for approval {approval.id} ({approval.action} {approval.subject_id}); nothing has moved yet."


# Reading ------------------------------------------------------------------------------------------


@click.group(
    "models",
    context_settings=CONTEXT,
    invoke_without_command=True,
    short_help="Registered models: list, show, deploy, canary, promote, rollback, retire, history, resolve.",
)
@json_option
@click.pass_context
def models_group(ctx: click.Context) -> registry.ModelList | None:
    """Without a subcommand, list registered models with their aliases."""
    if ctx.invoked_subcommand is None:
        return registry.models_overview(ctx.obj.store)
    return None


@models_group.command("list", context_settings=CONTEXT, short_help="Registered models and what each alias serves.")
@json_option
@click.pass_obj
def models_list(inv: Invocation) -> registry.ModelList:
    """List every registered model: its number of versions, its latest, and what each alias serves."""
    return registry.models_overview(inv.store)


@models_group.command("show", context_settings=CONTEXT, short_help="A model's versions and aliases, or one version.")
@click.argument("model")
@json_option
@click.pass_obj
def models_show(inv: Invocation, model: str) -> registry.ModelDetail | ModelVersion:
    """Show MODEL (its versions with their lineage, and its aliases), or one version as MODEL:vN."""
    match = _VERSION_ID.fullmatch(model)
    if match and model not in registry.list_models(inv.store):  # a model named `x:1` is shown as a model
        return registry.get_version(inv.store, f"{match['name']}:v{int(match['number'])}")
    return registry.describe_model(inv.store, model)


@models_group.command("history", context_settings=CONTEXT, short_help="What served each alias when, and who put it.")
@click.argument("model")
@click.option("--at", "at", metavar="TIME", help="An ISO-8601 time (UTC unless it says): what served then.")
@json_option
@click.pass_obj
def models_history(inv: Invocation, model: str, at: str | None) -> History:
    """Show what served each alias of MODEL at TIME (default: now), who put it there and who approved it,
    and every move of the ledger until then."""
    return registry.history(inv.store, model, at=at)


@models_group.command("resolve", context_settings=CONTEXT, short_help="The version that serves one caller key.")
@click.argument("model")
@click.option("--key", required=True, help="The caller's stable id (user, conversation or tenant).")
@click.option("--alias", default=registry.PRODUCTION, show_default=True, help="The alias to resolve.")
@json_option
@click.pass_obj
def models_resolve(inv: Invocation, model: str, key: str, alias: str) -> ResolvedVersion:
    """Show which version of MODEL@ALIAS serves the caller KEY: the same key keeps its version while the canary
    share is unchanged."""
    found = registry.resolve_model(inv.store, model, key, alias)
    return ResolvedVersion(
        model_name=found.model_name, alias=found.alias, key=key, version_id=found.version_id,
        provider=found.provider, provider_model_id=found.provider_model_id, arm=found.arm, bucket=found.bucket,
    )  # fmt: skip


# Changing aliases ---------------------------------------------------------------------------------

_alias_option = click.option(
    "--alias",
    default=registry.PRODUCTION,
    show_default=True,
    help="The alias to change (production waits for approval).",
)
_reason_option = click.option("--reason", help="Why, for the ledger.")


@models_group.command("deploy", context_settings=CONTEXT, short_help="Point an alias at a version, or canary it.")
@click.argument("model")
@click.argument("version")
@_alias_option
@click.option("--canary", "canary", type=SHARE, metavar="PCT", help="Run VERSION as a canary for PCT% of callers.")
@click.option("--plan", "plan", type=PLAN, metavar="PCTS", help="Roll VERSION out in stages, e.g. 10,50,100.")
@click.option("--every", "every", type=HOLD, metavar="HOLD", help="The hold between stages: 30m, 24h, 2d.")
@_reason_option
@json_option
@click.pass_obj
def models_deploy(
    inv: Invocation, model: str, version: str, alias: str, canary: int | None, plan: list[int] | None,
    every: timedelta | None, reason: str | None,
) -> RegistryChange:  # fmt: skip
    """Point MODEL@ALIAS at VERSION (3, v3 or MODEL:v3), ending any canary; with --canary PCT, run VERSION beside
    the alias's stable version for PCT% of callers instead. With --plan 10,50,100 --every 24h, roll it out in
    stages: a canary at each share in turn, the next after each hold, promoted at 100. Protected aliases
    (production) wait for an approver (FINETUNE_ROLLOUT_APPROVAL says whether for the plan or each stage)."""
    return registry.request_deploy(
        inv.services, actor=inv.actor, name=model, version=version, alias=alias, canary_share=canary, reason=reason,
        plan=plan, every=every,
    )  # fmt: skip


_ROLLOUT_CONTROLS: dict[str, Callable[..., Rollout]] = {
    "pause": registry.pause_rollout,
    "resume": registry.resume_rollout,
    "cancel": registry.cancel_rollout,
}


@models_group.command("rollout", context_settings=CONTEXT, short_help="A staged rollout: show, pause, resume, cancel.")
@click.argument("model")
@click.argument("action", type=click.Choice(["show", *_ROLLOUT_CONTROLS]), default="show", required=False)
@_alias_option
@_reason_option
@json_option
@click.pass_obj
def models_rollout(inv: Invocation, model: str, action: str, alias: str, reason: str | None) -> Rollout:
    """Show MODEL@ALIAS's staged rollout (stage, share, next advance), or pause, resume or cancel it (operators).
    Pausing or cancelling withdraws a stage approval it waits on; the alias stays where it is."""
    if action == "show":
        return registry.get_rollout(inv.store, model, alias=alias)
    control = _ROLLOUT_CONTROLS[action]
    return control(inv.services, actor=inv.actor, name=model, alias=alias, reason=reason)


@models_group.command("canary", context_settings=CONTEXT, short_help="Change the share a running canary serves.")
@click.argument("model")
@click.argument("pct", type=SHARE)
@_alias_option
@_reason_option
@json_option
@click.pass_obj
def models_canary(inv: Invocation, model: str, pct: int, alias: str, reason: str | None) -> RegistryChange:
    """Send PCT% (0-100) of MODEL@ALIAS's callers to its canary: 0 pauses it, raising it only moves more callers."""
    return registry.set_canary_share(inv.services, actor=inv.actor, name=model, alias=alias, share=pct, reason=reason)


@models_group.command("promote", context_settings=CONTEXT, short_help="Make an alias's canary its stable version.")
@click.argument("model")
@_alias_option
@_reason_option
@json_option
@click.pass_obj
def models_promote(inv: Invocation, model: str, alias: str, reason: str | None) -> RegistryChange:
    """Make MODEL@ALIAS's canary its stable version, for every caller."""
    return registry.promote_canary(inv.services, actor=inv.actor, name=model, alias=alias, reason=reason)


@models_group.command("rollback", context_settings=CONTEXT, short_help="Undo an alias's latest change.")
@click.argument("model")
@_alias_option
@click.option("--to", "to", metavar="VERSION", help="Go back to this version instead of the previous one.")
@_reason_option
@json_option
@click.pass_obj
def models_rollback(inv: Invocation, model: str, alias: str, to: str | None, reason: str | None) -> RegistryChange:
    """Undo MODEL@ALIAS's latest change: end its canary if one runs, else go back to the version it served before
    (by the ledger), or to --to VERSION."""
    return registry.rollback(inv.services, actor=inv.actor, name=model, alias=alias, to=to, reason=reason)


@models_group.command("retire", context_settings=CONTEXT, short_help="Retire a version for good (approval).")
@click.argument("model")
@click.argument("version")
@_reason_option
@json_option
@click.pass_obj
def models_retire(inv: Invocation, model: str, version: str, reason: str | None) -> RegistryChange:
    """Retire VERSION of MODEL for good, once an approver agrees: no alias may point at it again. Refused while an
    alias serves it."""
    return registry.retire(inv.services, actor=inv.actor, name=model, version=version, reason=reason)


def _short_form(command: click.Command, name: str, short_help: str) -> click.Command:
    """`deploy ...` is `models deploy ...`, one level up."""
    short = copy.copy(command)
    short.name = name
    short.short_help = short_help
    return short


deploy_command = _short_form(
    models_deploy, "deploy", "Deploy: deploy MODEL VERSION [--canary PCT | --plan 10,50,100 --every 24h] [--alias A]."
)
rollback_command = _short_form(models_rollback, "rollback", "Roll back: rollback MODEL [--alias A] [--to VERSION].")


SHARED: tuple[click.Command, ...] = (models_group, deploy_command, rollback_command)
TERMINAL: tuple[click.Command, ...] = ()

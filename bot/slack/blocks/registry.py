"""Registry results in Slack: models, versions, alias changes (applied or waiting for an approval), history."""

from __future__ import annotations

from bot.commands.registry import (
    ResolvedVersion,
    alias_text,
    plan_text,
    put_by_text,
    rollout_text,
    serving_text,
    waiting_text,
)
from bot.slack.blocks.kit import SlackMessage, context, header, render, section
from core.registry import AliasState, History, ModelDetail, ModelList, ModelVersion, RegistryChange, Rollout

_LINES = 20  # lines per section: a section holds 3,000 characters


def _aliases(aliases: list[AliasState]) -> str:
    return ", ".join(f"`{alias_text(a)}`" for a in aliases) or "no aliases"


def _sections(lines: list[str], empty: str) -> list[dict[str, object]]:
    chunks = ["\n".join(lines[i : i + _LINES]) for i in range(0, len(lines), _LINES)]
    return [section(chunk) for chunk in chunks] or [section(empty)]


@render.register
def _(result: ModelList) -> SlackMessage:
    lines = [
        f"*{m.name}* · {m.versions} version(s){f', latest `{m.latest}`' if m.latest else ''} · {_aliases(m.aliases)}"
        for m in result.models
    ]
    empty = "No registered models yet: a model is registered when a fine-tuning job for it succeeds."
    return SlackMessage(f"{len(result.models)} model(s)", [header("Models"), *_sections(lines, empty)])


@render.register
def _(result: ModelDetail) -> SlackMessage:
    lines = [
        f"`{v.id}` {v.status} · {v.provider} `{v.provider_model_id or '-'}`"
        + (f" · from `{v.dataset_version_id}`" if v.dataset_version_id else "")
        + (f" by `{v.job_id}`" if v.job_id else "")
        + (f" · ${v.cost_usd:,.2f}" if v.cost_usd is not None else "")
        for v in reversed(result.versions)  # newest first: what a person looks for
    ]
    rollouts = [section(f":vertical_traffic_light: {rollout_text(r)}") for r in result.rollouts]
    deployments = [f":satellite_antenna: {d.describe()}" for d in result.deployments]  # what applications call
    blocks = [
        header(result.name),
        section(f"Aliases: {_aliases(result.aliases)}"),
        *rollouts,
        *_sections(lines, "No versions."),
        *(_sections(deployments, "") if deployments else []),
    ]
    return SlackMessage(f"{result.name}: {len(result.versions)} version(s)", blocks)


@render.register
def _(result: ModelVersion) -> SlackMessage:
    facts = [
        ("provider model", f"{result.provider} `{result.provider_model_id or '-'}`"),
        ("base model", result.base_model),
        ("lineage", " → ".join(filter(None, (result.dataset_version_id, result.job_id)))),
        ("cost", f"${result.cost_usd:,.2f}" if result.cost_usd is not None else None),
        ("metrics", ", ".join(f"{k} {v:g}" for k, v in result.metrics.items())),
        ("retired", result.retired_at),
    ]
    lines = "\n".join(f"{label}: {value}" for label, value in facts if value)
    blocks = [section(f"*{result.id}* `{result.status}`\n{lines}"), context(f"Registered {result.created_at[:19]} UTC")]
    return SlackMessage(f"{result.id}: {result.status}", blocks)


@render.register
def _(result: RegistryChange) -> SlackMessage:
    started = _rollout_started(result.rollout) if result.rollout is not None else []
    waiting = waiting_text(result)
    if waiting is not None:
        assert result.approval is not None
        blocks = [
            *started,
            section(f":raised_hand: {waiting} An approver runs `/finetune approve {result.approval.id}`."),
        ]
        if result.alias is not None:
            blocks.append(context(f"Until then `{result.alias.model_name}@{alias_text(result.alias)}`."))
        return SlackMessage(waiting, blocks)
    lines = []
    if result.alias is not None:
        a = result.alias
        serving = serving_text(a.version_id, a.canary_version_id, a.canary_share)
        lines.append(f":white_check_mark: *{a.model_name}@{a.alias}* now serves `{serving}`.")
    if result.version is not None:
        lines.append(f":white_check_mark: `{result.version.id}` is {result.version.status}.")
    text = "\n".join(lines) or "Done."
    return SlackMessage(text.replace("*", "").replace("`", ""), [*started, section(text)])


def _rollout_started(rollout: Rollout) -> list[dict[str, object]]:
    return [
        section(f":vertical_traffic_light: Started {rollout_text(rollout)}."),
        context(f"Plan: {plan_text(rollout)}."),
    ]


@render.register
def _(result: Rollout) -> SlackMessage:
    text = f"{result.model_name}@{result.alias}: {rollout_text(result)}"
    controls = f"`/finetune models rollout {result.model_name} --alias {result.alias} pause|resume|cancel`"
    blocks = [
        section(f":vertical_traffic_light: *{result.model_name}@{result.alias}*: {rollout_text(result)}"),
        context(
            f"Plan: {plan_text(result)} · requested by {result.requested_by}"
            + (f" · {controls}" if result.active else "")
        ),
    ]
    return SlackMessage(text, blocks)


@render.register
def _(result: History) -> SlackMessage:
    moment = result.at[:19].replace("T", " ") + " UTC" if result.at else "now"
    served = [f"`{alias_text(a)}` ({put_by_text(a)})" for a in result.aliases]
    moves = [
        f"`{m.at[:19].replace('T', ' ')}` {m.move or 'move'} {m.alias}: {m.from_version_id or 'nothing'} →"
        f" {serving_text(m.to_version_id, m.canary_version_id, m.canary_share)} by {m.actor}"
        + (f" (approval `{m.approval_id}`)" if m.approval_id else "")
        for m in result.moves[-_LINES:]
    ]
    blocks = [
        header(f"{result.model_name} at {moment}"),
        *_sections(served, "No alias served a version then."),
        *([context(f"{len(result.moves)} move(s) until then; the latest:"), *_sections(moves, "")] if moves else []),
    ]
    return SlackMessage(f"What served {result.model_name} at {moment}", blocks)


@render.register
def _(result: ResolvedVersion) -> SlackMessage:
    text = (
        f"*{result.model_name}@{result.alias}* serves `{result.version_id}` to key `{result.key}`"
        f" ({result.arm} arm, bucket {result.bucket})."
    )
    return SlackMessage(f"{result.model_name}@{result.alias}: {result.version_id}", [section(text)])

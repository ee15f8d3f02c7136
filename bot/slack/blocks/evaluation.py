"""Evaluations in Slack: the one message a run edits as it goes (an outbox event), and `/finetune eval` answers."""

from __future__ import annotations

from bot.commands.evaluation import (
    calibration_text,
    judge_text,
    metric_rows,
    progress_bar,
    progress_text,
    state_text,
    verdict_text,
)
from bot.slack.blocks.kit import Block, SlackMessage, context, fields, header, render, section
from bot.slack.blocks.notifications import mention
from core.evaluation import Evaluation, EvaluationList
from core.platform import events
from core.vocabulary import EvaluationState

ICONS = {
    EvaluationState.QUEUED: ":hourglass:",
    EvaluationState.RUNNING: ":hourglass_flowing_sand:",
    EvaluationState.SUCCEEDED: ":white_check_mark:",
    EvaluationState.STOPPED: ":octagonal_sign:",
    EvaluationState.FAILED: ":x:",
}
LISTED = 15  # evaluations a list shows


@render.register
def _(event: events.EvaluationChanged) -> SlackMessage:
    text = (
        f"{ICONS[event.status]} Evaluation `{event.evaluation_id}`: *{event.candidate}* against *{event.baseline}*"
        f" on `{event.dataset_version}`: *{state_text(event.status, event.reason)}*"
    )
    blocks: list[Block] = [section(text)]
    if event.headline:
        blocks.append(section(f"*{event.headline}*"))
        text += f"\n{event.headline}"
    progress = f"`{progress_bar(event.done, event.total)}` {progress_text(event.done, event.total, event.cost_usd)}"
    blocks.append(section(progress))
    blocks.append(
        context(
            f"Judge {event.judge} · requested by {mention(event.requested_by)} · `/finetune eval show "
            f"{event.evaluation_id}`"
        )
    )
    return SlackMessage(text, blocks)


@render.register
def _(result: Evaluation) -> SlackMessage:
    text = (
        f"{ICONS[result.status]} Evaluation `{result.id}`: *{result.candidate_label}* against "
        f"*{result.baseline_label}* on `{result.dataset_version}`: *{state_text(result.status, result.status_reason)}*"
    )
    progress = progress_text(result.done, result.total, result.cost_usd, cap=result.max_cost_usd)
    blocks: list[Block] = [section(text), section(f"`{progress_bar(result.done, result.total)}` {progress}")]
    if result.status is EvaluationState.QUEUED:
        blocks.append(context("`finetune serve` runs it and posts its progress in the team's channel."))
    summary = result.summary
    if summary is not None:
        blocks.append(section(f"*{summary.headline}*"))
        rows = metric_rows(summary)
        blocks += fields([(name, f"{cand} · {base}") for name, cand, base in rows][:10])
        blocks.append(context(f"Each metric: {summary.candidate.name} · {summary.baseline.name} (95% CI)"))
        for line in (judge_text(summary), calibration_text(summary), verdict_text(summary)):
            if line:
                blocks.append(section(line))
    return SlackMessage(text, blocks)


@render.register
def _(result: EvaluationList) -> SlackMessage:
    lines = [
        f"`{found.id}` {ICONS[found.status]} {found.candidate_label} against {found.baseline_label}: "
        f"{found.headline or state_text(found.status, found.status_reason)}"
        for found in result.evaluations[:LISTED]
    ]
    text = f"{len(result.evaluations)} evaluation(s)"
    return SlackMessage(text, [header("Evaluations"), section("\n".join(lines) or "No evaluations yet.")])

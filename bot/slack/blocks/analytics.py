"""Analytics in Slack: the cost ledger with ROI and a chart of spend per day; retraining proposals; every agent,
one agent with a chart of its daily acceptance, edit patterns with buttons for their actions, regression alerts."""

from __future__ import annotations

import json
from datetime import date

from bot.commands.analytics import (
    alert_facts,
    compared_text,
    comparison_lines,
    example_text,
    intents_text,
    pattern_text,
    pct,
    roi_text,
    span_text,
    span_words,
    stats_text,
    trend_text,
    usd,
)
from bot.slack.blocks.kit import Attachment, Block, SlackMessage, context, fields, header, render, section
from core.analytics import (
    AcceptanceReport,
    AgentPerformance,
    AlertList,
    CostSummary,
    Opportunities,
    Opportunity,
    PairsAdded,
    PromptExperiment,
    RetrainProposal,
    SuggestedAction,
    Window,
)
from core.evaluation import points
from reports.charts import line_chart_png

_LISTED = 20


@render.register
def _(result: CostSummary) -> SlackMessage:
    training = usd(result.training_usd, estimated=result.training_estimated)
    headline = f"{usd(result.total_usd)} in all: training {training}, inference {usd(result.inference_usd)}"
    blocks: list[Block] = [header(f"Costs {span_text(result)}"), section(f"*{headline}*")]
    lines = [
        f"• {row.kind} · {' · '.join(p for p in (row.provider, row.base_model) if p) or 'drafts naming no version'}"
        f" · *{row.model}*"
        f"{' ' + row.version if row.version else ''}: {usd(row.usd, estimated=row.estimated)} over {row.events:,}"
        f"{' job(s)' if row.kind == 'training' else ' draft(s)'}"
        + (f" ({row.unpriced_events:,} unpriced)" if row.unpriced_events else "")
        for row in result.rows[:_LISTED]
    ]
    blocks.append(section("\n".join(lines) or "Nothing spent in this window."))
    if result.roi:
        blocks.append(section("*ROI against the base model*\n" + "\n".join(f"• {roi_text(r)}" for r in result.roi)))
    blocks.append(context(" ".join(result.notes)))
    files = _chart(result)
    return SlackMessage(f"Costs {span_text(result)}: {headline}", blocks, files=files)


def _chart(result: CostSummary) -> list[Attachment]:
    if not any(point.total_usd for point in result.daily):
        return []
    first = result.daily[0].start
    points = {
        "training": [((p.start - first).days, p.training_usd) for p in result.daily],
        "inference": [((p.start - first).days, p.inference_usd) for p in result.daily],
    }
    png = line_chart_png(points, title=f"Spend per day from {first}", xlabel="day", ylabel="USD")
    return [Attachment("costs.png", f"Spend per day from {first}", png)] if png else []


@render.register
def _(result: RetrainProposal) -> SlackMessage:
    approval = result.approval
    body = (
        f":arrows_counterclockwise: {result.text}\nRequested as `{approval.id}`: approvers get Approve and Reject "
        f"buttons; approving builds {result.next_version} and launches the job."
    )
    return SlackMessage(result.text, [section(body), context(" ".join(result.estimate.notes))])


# Acceptance, edit patterns and alerts --------------------------------------------------------------------------

PAIRS_ACTION = "pattern_dpo_pairs"  # the "Add to DPO pairs" button of a pattern
EXPERIMENT_ACTION = "pattern_prompt_experiment"  # its "Open a prompt experiment" button
_BUTTONS = {SuggestedAction.DPO_PAIRS: PAIRS_ACTION, SuggestedAction.PROMPT_EXPERIMENT: EXPERIMENT_ACTION}
MAX_BLOCKS = 50  # Slack's limit per message


@render.register
def _(result: AcceptanceReport) -> SlackMessage:
    title = f"Agents, {span_words(result.span)}"
    lines = []
    for row in result.rows[:_LISTED]:
        change = row.trend.change if row.trend else None
        moved = f" ({points(change)})" if change is not None else ""
        rating = f" · rating {row.rating:.2f}" if row.rating is not None else ""
        lines.append(
            f"• *{row.agent}*: {pct(row.acceptance)} accepted{moved} · {pct(row.unedited_share)} unedited{rating}"
            f" · {row.events:,} drafts"
        )
    body = "\n".join(lines) or "No feedback in this window."
    days = result.window.removesuffix("d")
    note = "All time." if result.window == Window.ALL else f"Change: acceptance against the {days} days before."
    return SlackMessage(title, [header(title), section(body), context(note)])


@render.register
def _(result: AgentPerformance) -> SlackMessage:
    summary = result.summary
    title = f"{result.agent}, {span_words(result.span)}"
    trend = trend_text(summary, result.window)
    blocks: list[Block] = [header(title), section(stats_text(summary) + (f"\n*Trend:* {trend}" if trend else ""))]
    if result.intents is not None:
        blocks.append(section(f"*Intents:* {intents_text(result.intents)}"))
    if result.by is not None:
        rows = [f"• *{row.value or '(none)'}*: {stats_text(row)}" for row in result.breakdown[:_LISTED]]
        blocks.append(section(f"*By {result.by}*\n" + ("\n".join(rows) or "nothing")))
    if result.comparison is not None:
        lines = "\n".join(f"• {line}" for line in comparison_lines(result))
        blocks.append(section(f"*{compared_text(result)}*\n{lines}"))
    days = [(point.day, point.acceptance) for point in result.daily if point.acceptance is not None]
    chart = daily_chart(
        {"acceptance": days}, title=f"{result.agent}: daily acceptance", ylabel="acceptance (%)", percent=True,
        filename=f"{result.agent}-acceptance.png",
    )  # fmt: skip
    if chart:
        blocks.append(context("Daily acceptance attached."))
    return SlackMessage(f"{title}: {stats_text(summary)}", blocks, files=chart)


@render.register
def _(result: Opportunities) -> SlackMessage:
    blocks: list[Block] = []
    shown = total = 0
    for agent in result.agents:
        blocks.append(header(f"Edit patterns of {agent.agent}"))
        blocks.append(context(f"{agent.edited_drafts:,} edited drafts, {agent.unedited_drafts:,} sent unedited"))
        for opportunity in agent.opportunities:
            total += 1
            if len(blocks) + 3 > MAX_BLOCKS - 1:
                continue
            shown += 1
            blocks.extend(_opportunity(agent.agent, opportunity))
    if not result.agents:
        blocks.append(section("No edits mined yet: patterns appear once users edit drafts."))
    if shown < total:
        blocks.append(context(f"{total - shown} more: `/finetune patterns AGENT --limit N` shows one agent's."))
    return SlackMessage(f"Edit patterns: {total} across {len(result.agents)} agent(s)", blocks)


def _opportunity(agent: str, opportunity: Opportunity) -> list[Block]:
    pattern = opportunity.pattern
    text = f"*{pattern_text(pattern)}*\n{pattern.suggestion}"
    blocks: list[Block] = [section(text), context(f"e.g. {example_text(pattern, limit=120)}")]
    buttons, typed = [], []
    for action in opportunity.actions:
        if action.ready:
            buttons.append(_button(action.label, _BUTTONS[action.action], agent=agent, phrase=pattern.phrase))
        else:
            typed.append(f"{action.label}: `{action.command.removeprefix('finetune ')}`")
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    if typed:
        blocks.append(context(" · ".join(typed)))
    return blocks


def _button(label: str, action_id: str, *, agent: str, phrase: str) -> Block:
    """A button whose value names the pattern (the listener runs the action's command as the clicker)."""
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": json.dumps({"agent": agent, "phrase": phrase})[:2000],
    }


@render.register
def _(result: AlertList) -> SlackMessage:
    title = "Open regression alerts" if result.open_only else "Regression alerts"
    blocks: list[Block] = [header(title)]
    for alert in result.alerts[: (MAX_BLOCKS - 2) // 2]:
        icon = ":white_check_mark:" if alert.resolved_at else ":chart_with_downwards_trend:"
        blocks.append(section(f"{icon} *#{alert.id} {alert.kind}* `{alert.agent}`: {alert.message}"))
        blocks.extend(fields(alert_facts(alert)))
    if not result.alerts:
        blocks.append(section("None. The daily check runs in `finetune serve`."))
    return SlackMessage(f"{title}: {len(result.alerts)}", blocks)


@render.register
def _(result: PairsAdded) -> SlackMessage:
    version = result.version
    verb = "unchanged" if version.reused else "built"
    text = (
        f":package: *{version.id}* {verb}: {version.counts.get('examples', 0):,} preference pairs of {result.agent}"
        f" for {', '.join(f'‘{p}’' for p in result.phrases)}.\n{result.next_step}"
    )
    return SlackMessage(text, [section(text)])


@render.register
def _(result: PromptExperiment) -> SlackMessage:
    experiment = result.experiment.experiment
    text = f":test_tube: Started *{experiment.id}*: {experiment.title}.\n{result.next_step}"
    return SlackMessage(text, [section(text)])


def daily_chart(
    series: dict[str, list[tuple[date, float]]], *, title: str, ylabel: str, filename: str, percent: bool = False
) -> list[Attachment]:
    """A PNG of values per day, one line per named series, days counted from the first; empty without data."""
    days = [day for points in series.values() for day, _ in points]
    if not days:
        return []
    first = min(days)
    scale = 100.0 if percent else 1.0
    lines = {name: [((day - first).days, value * scale) for day, value in points] for name, points in series.items()}
    png = line_chart_png(lines, title=title, xlabel=f"days from {first}", ylabel=ylabel)
    return [Attachment(filename=filename, title=title, content=png)] if png else []

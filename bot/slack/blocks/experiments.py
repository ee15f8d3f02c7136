"""A/B experiments in Slack: the list, one experiment with a chart of both arms over time, and the notices
(a conclusion; the canary guard's evidence and what it did)."""

from __future__ import annotations

from bot.commands.experiments import (
    difference_text,
    experiment_line,
    split_text,
    srm_text,
    tests_text,
    value_text,
    verdict_text,
)
from bot.slack.blocks.kit import Attachment, Block, SlackMessage, context, fields, header, render, section
from bot.slack.blocks.notifications import mention
from core.evaluation import ExperimentList, ExperimentReport, MetricResult
from core.platform import events
from core.vocabulary import CanaryAction
from reports.charts import line_chart_png

VERDICT_ICONS = {"winner": ":trophy:", "loser": ":chart_with_downwards_trend:", "inconclusive": ":hourglass:"}
_LISTED = 30


@render.register
def _(result: ExperimentList) -> SlackMessage:
    lines = [f"`{experiment_line(e)}`" for e in result.experiments[:_LISTED]]
    body = "\n".join(lines) or "No experiments yet: `/finetune ab create MODEL --alias ALIAS` tests an alias's canary."
    return SlackMessage(f"{len(result.experiments)} experiment(s)", [header("A/B experiments"), section(body)])


@render.register
def _(result: ExperimentReport) -> SlackMessage:
    experiment, analysis = result.experiment, result.analysis
    icon = VERDICT_ICONS.get(analysis.verdict, "")
    blocks: list[Block] = [
        header(f"{experiment.id}: {experiment.subject}"),
        section(
            f"*{experiment.treatment}* against *{experiment.control}* · {experiment.status}"
            f" · split {split_text(result)}\n{icon} *{analysis.verdict}*: {verdict_text(result)}"
        ),
        *fields([(_label(metric), _metric_fact(metric)) for metric in analysis.metrics]),
        context(f"{srm_text(result)} · {analysis.plan_note or ''}"),
    ]
    chart = _chart(result)
    if chart:
        blocks.append(context("Both arms over time attached."))
    return SlackMessage(f"{experiment.id}: {analysis.verdict}", blocks, files=chart)


def _label(metric: MetricResult) -> str:
    return f"{metric.metric}{' (primary)' if metric.primary else ''}"


def _metric_fact(metric: MetricResult) -> str:
    return (
        f"{value_text(metric, 'treatment')} against {value_text(metric, 'control')}\n"
        f"{difference_text(metric)}\n{tests_text(metric)}"
    )


def _chart(result: ExperimentReport) -> list[Attachment]:
    """The primary metric of both arms, cumulative to each day, one point per day."""
    experiment, daily = result.experiment, result.analysis.daily
    series = {
        f"control {experiment.control}": [(n, p.control) for n, p in enumerate(daily, 1) if p.control is not None],
        f"treatment {experiment.treatment}": [
            (n, p.treatment) for n, p in enumerate(daily, 1) if p.treatment is not None
        ],
    }
    png = line_chart_png(series, title=f"{experiment.id}: {experiment.subject}", xlabel="day", ylabel=experiment.metric)
    if png is None:
        return []
    return [Attachment(filename=f"{experiment.id}.png", title=f"{experiment.metric} of both arms", content=png)]


@render.register
def _(event: events.ExperimentEnded) -> SlackMessage:
    icon = VERDICT_ICONS.get(event.verdict, ":bar_chart:")
    text = (
        f"{icon} Experiment `{event.experiment_id}` on `{event.name}` {event.status}: *{event.treatment}* against"
        f" *{event.control}* is *{event.verdict}*. {event.reason}"
    )
    note = f" · {event.note}" if event.note else ""
    return SlackMessage(text, [section(text), context(f"By {mention(event.actor)}{note}")])


_GUARD_DID = {
    CanaryAction.PROPOSED: "Rollback requested: approve `{approval}` to end the canary.",
    CanaryAction.PERFORMED: "Rolled back by the scheduler (FINETUNE_CANARY_AUTO_ROLLBACK).",
    CanaryAction.ANNOUNCED: "Roll it back with `/finetune rollback {model} --alias {alias}`.",
}


@render.register
def _(event: events.CanaryGuarded) -> SlackMessage:
    did = _GUARD_DID[event.action].format(approval=event.approval_id, model=event.model_name, alias=event.alias)
    text = (
        f":rotating_light: Canary *{event.canary_version_id}* on `{event.model_name}@{event.alias}` is worse than"
        f" *{event.stable_version_id}*: {event.evidence}"
    )
    return SlackMessage(f"{text} {did}", [section(text), section(did)])

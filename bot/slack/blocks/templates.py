"""Prompt templates in Slack: every template's numbers, one section each, and two templates compared."""

from __future__ import annotations

from bot.commands.templates import (
    cost_text,
    days_text,
    difference_text,
    number_text,
    p_text,
    share_text,
    span_text,
    template_name,
    value_text,
)
from bot.slack.blocks.kit import Block, SlackMessage, context, fields, header, render, section
from core.analytics import TemplateComparison, TemplateReport, TemplateStats

VERDICT_ICONS = {"winner": ":trophy:", "loser": ":chart_with_downwards_trend:", "inconclusive": ":hourglass:"}
_LISTED = 40  # Slack shows 50 blocks at most


def _numbers(stats: TemplateStats) -> str:
    return (
        f"{stats.events:,} events, {days_text(stats)}\n"
        f"acceptance {share_text(stats.acceptance, stats.acceptance_interval)} · unedited"
        f" {share_text(stats.unedited_share, stats.unedited_interval)} · rating {number_text(stats.rating)}"
        f" · {cost_text(stats.cost_per_event_usd)}/event · {number_text(stats.latency_ms, digits=0, unit=' ms')}"
    )


@render.register
def _(result: TemplateReport) -> SlackMessage:
    whose = f"agent `{result.agent}`" if result.agent else "every agent"
    blocks: list[Block] = [header("Prompt templates"), context(f"{whose} · {span_text(result)} ({result.window})")]
    if not result.rows:
        blocks.append(section("No feedback in this window."))
    for row in result.rows[:_LISTED]:
        blocks.append(section(f"*{row.agent}* · `{template_name(row)}`\n{_numbers(row)}"))
    if len(result.rows) > _LISTED:
        blocks.append(context(f"{len(result.rows) - _LISTED} more: add --agent, or --json for all of them."))
    return SlackMessage(f"{len(result.rows)} prompt template(s), {span_text(result)}", blocks)


@render.register
def _(result: TemplateComparison) -> SlackMessage:
    a, b = template_name(result.baseline), template_name(result.candidate)
    icon = VERDICT_ICONS.get(result.verdict, "")
    facts = []
    for test in result.tests:
        mark = " (significant)" if test.significant else ""
        tested = f"\n{test.test}, {p_text(test)}" if test.p_value is not None else ""
        facts.append(
            (
                f"{test.metric}{mark}",
                f"B {value_text(test, 'candidate')} · A {value_text(test, 'baseline')}\n{difference_text(test)}{tested}",
            )
        )
    blocks: list[Block] = [
        header(f"Template {b} against {a}"),
        section(f"{icon} *{result.verdict}*: {result.reason}"),
        section(f"*A* `{a}`: {_numbers(result.baseline)}\n*B* `{b}`: {_numbers(result.candidate)}"),
        *fields(facts),
        context(f"agent `{result.agent}` · {span_text(result)} ({result.window}) · alpha {result.alpha:g}"),
    ]
    return SlackMessage(f"Template {b} against {a}: {result.verdict}", blocks)

"""Prompt templates on a terminal: a table of every template's numbers, and two templates compared."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

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
from bot.terminal.output import render
from core.analytics import TemplateComparison, TemplateReport, TemplateStats

VERDICT_STYLES = {"winner": "green", "loser": "red", "inconclusive": "yellow"}


def _print(console: Console, text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


@render.register
def _(result: TemplateReport, console: Console) -> None:
    whose = f"agent {result.agent}" if result.agent else "every agent"
    _print(console, f"[bold]Prompt templates[/bold] of {escape(whose)}, {span_text(result)} ({result.window})")
    if not result.rows:
        _print(console, "No feedback in this window.")
    agent = None
    for row in result.rows:
        if row.agent != agent:
            agent = row.agent
            _print(console, f"[bold]{escape(agent)}[/bold]")
        _print(console, f"  [cyan]{escape(template_name(row))}[/cyan]  {row.events:,} events over {days_text(row)}")
        _print(console, f"    {_numbers(row)}")


def _numbers(stats: TemplateStats) -> str:
    return (
        f"acceptance {share_text(stats.acceptance, stats.acceptance_interval)} · unedited"
        f" {share_text(stats.unedited_share, stats.unedited_interval)} · rating {number_text(stats.rating)} ·"
        f" {cost_text(stats.cost_per_event_usd)}/event · {number_text(stats.latency_ms, digits=0, unit=' ms')}"
    )


def _side(label: str, stats: TemplateStats) -> str:
    return (
        f"  {label} [bold]{escape(template_name(stats))}[/bold]: {stats.events:,} events over {days_text(stats)}\n"
        f"    {_numbers(stats)}"
    )


@render.register
def _(result: TemplateComparison, console: Console) -> None:
    _print(
        console,
        f"[bold]{escape(result.candidate.template or '')}[/bold] against [bold]{escape(result.baseline.template or '')}"
        f"[/bold] (agent {escape(result.agent)}), {span_text(result)}; alpha {result.alpha:g}",
    )
    _print(console, _side("A", result.baseline))
    _print(console, _side("B", result.candidate))
    for test in result.tests:
        mark = " *" if test.significant else ""
        _print(
            console,
            f"  [bold]{test.metric}[/bold]{mark}: B {value_text(test, 'candidate')} against A"
            f" {value_text(test, 'baseline')}",
        )
        tested = f"; {test.test}, {p_text(test)}" if test.p_value is not None else ""
        _print(console, f"    difference {escape(difference_text(test))}{tested}")
    style = VERDICT_STYLES.get(result.verdict, "bold")
    _print(console, f"[{style}]{result.verdict.upper()}[/{style}]  {escape(result.reason)}")

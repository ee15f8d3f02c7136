"""A/B experiments on a terminal: the list, and one experiment's numbers, split check, plan and verdict."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from bot.commands.experiments import (
    difference_text,
    experiment_line,
    split_text,
    srm_text,
    tests_text,
    value_text,
    verdict_text,
)
from bot.terminal.output import render
from core.evaluation import ExperimentList, ExperimentReport

VERDICT_STYLES = {"winner": "green", "loser": "red", "inconclusive": "yellow"}


def _print(console: Console, text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


@render.register
def _(result: ExperimentList, console: Console) -> None:
    if not result.experiments:
        _print(console, "No experiments yet: `finetune ab create MODEL --alias ALIAS` tests an alias's canary.")
    for experiment in result.experiments:
        _print(console, escape(experiment_line(experiment)))


@render.register
def _(result: ExperimentReport, console: Console) -> None:
    experiment, analysis = result.experiment, result.analysis
    since = experiment.started_at[:16].replace("T", " ")
    _print(
        console, f"[bold]{experiment.id}[/bold]  {escape(experiment.title)}  {experiment.status} (since {since} UTC)"
    )
    _print(console, f"  split: {split_text(result)}; alpha {experiment.alpha:g}")
    _print(console, f"  outcomes: {escape(srm_text(result))}")
    for metric in analysis.metrics:
        primary = " (primary)" if metric.primary else ""
        _print(
            console,
            f"  [bold]{metric.metric}{primary}[/bold]: {value_text(metric, 'treatment')} against"
            f" {value_text(metric, 'control')}",
        )
        _print(console, f"    difference {difference_text(metric)}; {tests_text(metric)}")
        if metric.note:
            _print(console, f"    {escape(metric.note)}")
    style = VERDICT_STYLES.get(analysis.verdict, "bold")
    _print(console, f"[{style}]{analysis.verdict.upper()}[/{style}]  {escape(verdict_text(result))}")
    if analysis.plan_note:
        _print(console, f"  plan: {escape(analysis.plan_note)}")
    if experiment.ended_at:
        _print(
            console, f"  {experiment.status} {experiment.ended_at[:16].replace('T', ' ')} UTC by {experiment.ended_by}"
        )

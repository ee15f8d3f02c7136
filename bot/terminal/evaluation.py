"""Evaluations on a terminal: where one stands, each side's metrics with intervals, the judge and the verdict."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bot.commands.evaluation import (
    calibration_text,
    judge_text,
    metric_rows,
    progress_text,
    state_text,
    verdict_text,
)
from bot.terminal.output import render
from core.evaluation import Evaluation, EvaluationList
from core.vocabulary import EvaluationState


@render.register
def _(result: Evaluation, console: Console) -> None:
    split = f" ({result.split} split)" if result.split else ""
    console.print(f"[bold]{result.id}[/bold]  {state_text(result.status, result.status_reason)}", highlight=False)
    console.print(
        f"  {result.candidate_label} against {result.baseline_label} on {result.dataset_version}{split}, judged by "
        f"{result.judge}",
        highlight=False,
    )
    console.print(f"  {progress_text(result.done, result.total, result.cost_usd, cap=result.max_cost_usd)}")
    if result.status is EvaluationState.QUEUED:
        console.print(f"  Queued: `finetune serve` runs it; `finetune eval show {result.id}` follows it.")
    summary = result.summary
    if summary is None:
        return
    console.print(f"\n[bold]{summary.headline}[/bold]", highlight=False)
    if summary.split_note:
        console.print(f"Note: {summary.split_note}.", highlight=False)
    table = Table(title=f"{summary.examples} examples against the users' final texts", title_justify="left")
    table.add_column("metric")
    table.add_column(summary.candidate.name)
    table.add_column(summary.baseline.name)
    for row in metric_rows(summary):
        table.add_row(*row)
    console.print(table)
    for line in (judge_text(summary), calibration_text(summary), verdict_text(summary)):
        if line:
            console.print(line, highlight=False)


@render.register
def _(result: EvaluationList, console: Console) -> None:
    if not result.evaluations:
        console.print("No evaluations yet. Run one: finetune eval run CANDIDATE --baseline production")
    for found in result.evaluations:
        line = (
            f"{found.id}  {state_text(found.status, found.status_reason)}  {found.candidate_label} against "
            f"{found.baseline_label} on {found.dataset_version}  ({found.done} of {found.total} examples)"
        )
        console.print(line, highlight=False)
        if found.headline:
            console.print(f"  {found.headline}", highlight=False)

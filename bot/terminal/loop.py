"""Closed-loop runs on a terminal: the list, and one run's links and steps."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from bot.commands.loop import linked, run_line
from bot.terminal.output import render
from core.loop import LoopRun, LoopRunList

OUTCOME_STYLES = {"promoted": "green", "rolled_back": "yellow", "failed": "red", "rejected": "red"}


def _print(console: Console, text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


@render.register
def _(result: LoopRunList, console: Console) -> None:
    if not result.runs:
        _print(console, "No loop runs yet: `finetune loop start AGENT` requests an agent's retraining as one.")
    for run in result.runs:
        _print(console, escape(run_line(run)))


@render.register
def _(run: LoopRun, console: Console) -> None:
    style = OUTCOME_STYLES.get(str(run.outcome), "bold")
    _print(console, f"[bold]{run.id}[/bold]  {escape(run.model_name)}@{escape(run.alias)}")
    state = f"ended {run.outcome}" if run.outcome else f"waits for {run.waiting_for()}"
    _print(console, f"  [{style}]{escape(state)}[/{style}]" + (f": {escape(run.reason)}" if run.reason else ""))
    for label, value in linked(run):
        _print(console, f"  {label}: {escape(value)}")
    for step in run.steps:
        _print(console, f"  {step.seq:>2}. {step.at[:19].replace('T', ' ')}  {escape(step.text)}")
    if run.outcome == "failed":
        _print(console, f"  Retry it with `finetune loop retry {run.id}`.")

"""Putting results on a terminal: `emit` (JSON or rich), the progress bar, and the grammar's own results.

`render` dispatches on the result's type; each capability's module in this
package registers its renderers. Pure presentation: no core calls.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bot.commands import Advance, ErrorResult, HelpResult, Message, Outcome, ProgressFactory, UsageProblem

LINE_EVERY_SECONDS = 10.0  # without a terminal, a progress line at least this often (and at every tenth of the total)


def progress_bar(console: Console, *, clock: Callable[[], float] = time.monotonic) -> ProgressFactory:
    """A progress factory for long commands, on `console` (stderr).

    At a terminal: a live bar with done/total, the cost so far and the time left once the total is known (a
    spinner and a counter until then). Otherwise (a pipe, a log file, CI): plain lines, one at every tenth of the
    total and at least every LINE_EVERY_SECONDS, so a log shows the run moving without one line per item.
    """

    @contextlib.contextmanager
    def progress(description: str, *, total: int | None = None) -> Iterator[Advance]:
        if not console.is_terminal:
            yield _Lines(console, description, total, clock)
            return
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[cost]}"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(description, total=total, cost="")

            def advance(done: int, *, total: int | None = None, cost_usd: float | None = None) -> None:
                if total is not None:
                    bar.update(task, total=total)
                if cost_usd is not None:
                    bar.update(task, cost=f"{_usd(cost_usd)} spent")
                bar.update(task, completed=done)

            yield advance

    return progress


class _Lines:
    """Progress as plain lines: `Evaluating v4 against production: 6 of 12 (50%), $0.0123 spent, about 0:00:31 left`."""

    def __init__(self, console: Console, description: str, total: int | None, clock: Callable[[], float]) -> None:
        self.console, self.description, self.total, self.clock = console, description, total, clock
        self.started = self.last_at = clock()
        self.last_step: int | None = None
        self.cost_usd: float | None = None

    def __call__(self, done: int, *, total: int | None = None, cost_usd: float | None = None) -> None:
        self.total = self.total if total is None else total
        self.cost_usd = self.cost_usd if cost_usd is None else cost_usd
        now = self.clock()
        step = done * 10 // self.total if self.total else None
        if step == self.last_step and now - self.last_at < LINE_EVERY_SECONDS and done != self.total:
            return
        self.last_step, self.last_at = step, now
        self.console.print(self.line(done, now), markup=False, highlight=False, soft_wrap=True)

    def line(self, done: int, now: float) -> str:
        parts = [f"{done:,} of {self.total:,} ({done / self.total:.0%})" if self.total else f"{done:,} done"]
        if self.cost_usd is not None:
            parts.append(f"{_usd(self.cost_usd)} spent")
        if self.total and 0 < done < self.total:
            left = (now - self.started) / done * (self.total - done)
            parts.append(f"about {timedelta(seconds=round(left))} left")
        return f"{self.description}: {', '.join(parts)}"


def _usd(amount: float) -> str:
    return f"${amount:,.4f}"


def emit(outcome: Outcome, console: Console, err_console: Console) -> None:
    result = outcome.result
    if result is None:
        return
    if outcome.as_json:
        console.print_json(result.model_dump_json())
        return
    render(result, err_console if isinstance(result, (UsageProblem, ErrorResult)) else console)


@functools.singledispatch
def render(result: BaseModel, console: Console) -> None:
    console.print_json(result.model_dump_json())


@render.register
def _(result: HelpResult, console: Console) -> None:
    if result.topic:
        entry = result.commands[0]
        console.print(f"[bold]Usage:[/bold] {entry.usage}\n")
        console.print(entry.description or entry.summary)
        return
    console.print(f"[bold]Usage:[/bold] {result.prog} COMMAND [ARGS]...\n")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("command", style="bold cyan")
    table.add_column("what it does")
    for entry in result.commands:
        table.add_row(entry.name, entry.summary)
    console.print(table)
    console.print(f"\n`{result.prog} help COMMAND` shows how to use one.")


@render.register
def _(result: UsageProblem, console: Console) -> None:
    console.print(f"[red]Error:[/red] {result.message}", highlight=False, soft_wrap=True)
    if result.usage:
        console.print(f"Usage: {result.usage}", highlight=False, soft_wrap=True)
    console.print(f"Run `{result.prog} help` to list commands.", highlight=False)


@render.register
def _(result: ErrorResult, console: Console) -> None:
    console.print(f"[red]Error:[/red] {result.message}", highlight=False, soft_wrap=True)
    if result.hint:
        console.print(f"Fix: {result.hint}", highlight=False, soft_wrap=True)


@render.register
def _(result: Message, console: Console) -> None:
    console.print(result.text, highlight=False)

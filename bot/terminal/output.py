"""Putting results on a terminal: `emit` (JSON or rich), the progress bar, and the grammar's own results.

`render` dispatches on the result's type; each capability's module in this
package registers its renderers. Pure presentation: no core calls.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.commands import ErrorResult, HelpResult, Message, Outcome, ProgressFactory, UsageProblem


def progress_bar(console: Console) -> ProgressFactory:
    """A progress factory for long commands: a live counter on stderr when it is a terminal."""

    @contextlib.contextmanager
    def progress(description: str) -> Iterator[Callable[[int], None]]:
        if not console.is_terminal:
            yield lambda done: None
            return
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} done"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(description, total=None)
            yield lambda done: bar.update(task, completed=done)

    return progress


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

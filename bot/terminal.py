"""Results rendered for a terminal with rich. Pure presentation: no core calls."""

from __future__ import annotations

import functools
import json

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from bot.grammar import AuditList, ErrorResult, HelpResult, Message, Outcome, UsageProblem
from core.config_report import ConfigReport
from core.notifications import Notice
from core.status import StatusReport


def emit(outcome: Outcome, console: Console, err_console: Console) -> None:
    result = outcome.result
    if outcome.as_json or (not outcome.ok and not isinstance(result, (UsageProblem, ErrorResult))):
        console.print_json(result.model_dump_json())
        return
    target = console if outcome.ok else err_console
    render(result, target)


@functools.singledispatch
def render(result: BaseModel, console: Console) -> None:
    console.print_json(result.model_dump_json())


@render.register
def _(result: StatusReport, console: Console) -> None:
    table = Table(title="finetune-ops status", show_header=False, title_justify="left")
    table.add_column("fact", style="bold")
    table.add_column("value")
    table.add_row("Feedback events", str(result.feedback_events))
    table.add_row("Datasets", f"{result.datasets} ({result.dataset_versions} versions)")
    jobs = ", ".join(f"{state} {n}" for state, n in result.jobs_by_state.items() if n) or "none"
    table.add_row("Jobs", jobs)
    models = ", ".join(f"{alias} → {version}" for alias, version in result.models_by_alias.items()) or "none"
    table.add_row("Models", models)
    table.add_row("Pending approvals", str(result.pending_approvals))
    table.add_row("Undelivered notifications", str(result.outbox_pending))
    table.add_row("Scheduler heartbeat", result.scheduler_heartbeat or "never (is `finetune serve` running?)")
    console.print(table)


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
    console.print(f"[red]Error:[/red] {result.message}", highlight=False)
    if result.usage:
        console.print(f"Usage: {result.usage}", highlight=False)
    console.print(f"Run `{result.prog} help` to list commands.", highlight=False)


@render.register
def _(result: ErrorResult, console: Console) -> None:
    console.print(f"[red]Error:[/red] {result.message}", highlight=False)
    if result.hint:
        console.print(f"Fix: {result.hint}", highlight=False)


@render.register
def _(result: Notice, console: Console) -> None:
    where = result.channel or "the default channel"
    console.print(f"Queued notice #{result.outbox_id} for {where}; `finetune serve` delivers it.")


@render.register
def _(result: AuditList, console: Console) -> None:
    table = Table(title="Audit log (newest first)", title_justify="left")
    for column in ("at (UTC)", "actor", "face", "command", "args", "outcome"):
        table.add_column(column)
    for e in result.entries:
        table.add_row(e.at, e.actor, e.face, e.command, json.dumps(e.args)[:60], e.outcome)
    console.print(table)


@render.register
def _(result: ConfigReport, console: Console) -> None:
    table = Table(title="Settings (environment or .env)", title_justify="left")
    for column in ("variable", "value", "meaning"):
        table.add_column(column)
    for e in result.entries:
        table.add_row(e.env, "[dim]unset[/dim]" if e.value is None else e.value, e.description)
    console.print(table)


@render.register
def _(result: Message, console: Console) -> None:
    console.print(result.text, highlight=False)

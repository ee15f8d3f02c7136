"""Platform results on a terminal: status, notices, the audit log, settings."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from bot.commands.platform import AuditList
from bot.terminal.output import render
from core.platform import ConfigReport, Notice, StatusReport


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

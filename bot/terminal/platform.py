"""Platform results on a terminal: status, notices, the audit log, settings."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from bot.commands.platform import AuditList
from bot.terminal.output import render
from core.platform import ConfigReport, Notice, StatusReport, outbox


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
    if result.spend is not None:
        table.add_row("Spend this month", result.spend.summary())
    table.add_row("Undelivered notifications", str(result.outbox_pending))
    table.add_row("Dead notifications", _dead(result))
    table.add_row("Scheduler heartbeat", heartbeat_text(result))
    table.add_row("Database", result.database)
    console.print(table)
    for entry in result.dead_letters:
        console.print(f"  dead #{entry.id} {entry.kind}: {entry.summary[:80]} ({entry.last_error})", highlight=False)


def heartbeat_text(result: StatusReport) -> str:
    if result.scheduler_health == "missing":
        return "never (is `finetune serve` running?)"
    if result.scheduler_health == "stale":
        return f"{result.scheduler_heartbeat}: stale, is `finetune serve` running?"
    return result.scheduler_heartbeat or ""


def _dead(result: StatusReport) -> str:
    if not result.outbox_dead:
        return "0"
    return f"{result.outbox_dead} (`finetune outbox` lists them; `outbox retry ID` or `outbox discard ID`)"


@render.register
def _(result: outbox.OutboxList, console: Console) -> None:
    title = f"Outbox: {result.pending} undelivered, {result.dead} dead (oldest first)"
    if not result.entries:
        console.print(f"{title}: nothing waiting.", highlight=False)
        return
    table = Table(title=title, title_justify="left")
    for column in ("id", "state", "kind", "attempts", "created (UTC)", "summary", "last error"):
        table.add_column(column)
    for e in result.entries:
        table.add_row(
            str(e.id), e.state, e.kind, str(e.attempts), e.created_at[:19], e.summary[:60], e.last_error or ""
        )
    console.print(table)
    console.print("`finetune outbox retry ID` tries one again; `finetune outbox discard ID` drops it.", highlight=False)


@render.register
def _(result: outbox.OutboxChange, console: Console) -> None:
    verb = "will be tried again now" if result.action == "retry" else "is discarded"
    console.print(f"Notification #{result.id} {verb}: {result.summary[:80]}", highlight=False)


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

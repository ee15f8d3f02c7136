"""Platform commands: help, status, notices, the audit log; and the terminal's config, serve and mcp."""

from __future__ import annotations

from typing import cast

import click
from pydantic import BaseModel

from bot.commands import CONTEXT, CommandHelp, HelpResult, Invocation, Message, json_option
from core.platform import ConfigReport, Notice, StatusReport, audit, describe_settings, get_status, notify, outbox


class AuditList(BaseModel):
    entries: list[audit.AuditEntry]


# Shared with Slack ------------------------------------------------------------------------------


@click.command("help", context_settings=CONTEXT, short_help="List commands, or explain one.")
@click.argument("command", nargs=-1)
@click.pass_context
def help_command(ctx: click.Context, command: tuple[str, ...]) -> HelpResult:
    """List every command with a one-line description, or show how to use COMMAND (e.g. `help data build`)."""
    root = ctx.find_root()
    group = cast(click.Group, root.command)
    if not command:
        entries = [describe(root, name, group.commands[name]) for name in group.list_commands(root)]
        return HelpResult(prog=root.info_name or "finetune", commands=entries)
    parent: click.Context = root
    cmd: click.Command | None = None
    for depth, word in enumerate(command):
        commands = getattr(cmd or group, "commands", {})
        if word not in commands:
            raise click.UsageError(f"No such command '{' '.join(command[: depth + 1])}'.", ctx)
        if cmd is not None:
            parent = click.Context(cmd, info_name=command[depth - 1], parent=parent)
        cmd = commands[word]
    entry = describe(parent, command[-1], cast(click.Command, cmd), full=True)
    return HelpResult(prog=root.info_name or "finetune", commands=[entry], topic=" ".join(command))


def describe(root: click.Context, name: str, cmd: click.Command, *, full: bool = False) -> CommandHelp:
    sub = click.Context(cmd, info_name=name, parent=root)
    usage = " ".join([root.info_name or "finetune", name, *cmd.collect_usage_pieces(sub)])
    description = None
    if full and isinstance(cmd, click.Group):
        lines = [" ".join((cmd.help or "").split())]
        for sub_name, sub_cmd in cmd.commands.items():
            entry = describe(sub, sub_name, sub_cmd)
            lines.append(f"  {entry.usage.removeprefix((root.info_name or 'finetune') + ' ')}: {entry.summary}")
        description = "\n".join(lines)
    elif full:
        params = [p.get_help_record(sub) for p in cmd.get_params(sub)]
        lines = [" ".join((cmd.help or "").split())] + [
            f"  {opt}  {text}" for opt, text in filter(None, params) if text
        ]
        description = "\n".join(line for line in lines if line)
    return CommandHelp(name=name, usage=usage, summary=cmd.get_short_help_str(limit=90), description=description)


@click.command("status", context_settings=CONTEXT, short_help="Feedback, datasets, jobs, models, approvals, scheduler.")
@json_option
@click.pass_obj
def status_command(inv: Invocation) -> StatusReport:
    """Show where everything stands: feedback count, datasets, jobs by state, models by alias,
    pending approvals, undelivered and dead notifications, the database and the scheduler's last heartbeat."""
    return get_status(inv.store, settings=inv.settings)


@click.command("notify", context_settings=CONTEXT, short_help="Send a notice to the team's Slack channel (admin).")
@click.argument("text")
@click.option("--channel", help="Slack channel id (default: FINETUNE_SLACK_CHANNEL).")
@json_option
@click.pass_obj
def notify_command(inv: Invocation, text: str, channel: str | None) -> Notice:
    """Queue TEXT for delivery to Slack through the outbox (delivered by `finetune serve`)."""
    return notify(inv.store, actor=inv.actor, text=text, channel=channel)


@click.command("audit", context_settings=CONTEXT, short_help="Recent audit rows: who did what, where, when (admin).")
@click.option("--limit", type=int, default=20, show_default=True, help="How many rows.")
@click.option("--face", help="Only rows from this face: cli, slack, mcp or scheduler.")
@json_option
@click.pass_obj
def audit_command(inv: Invocation, limit: int, face: str | None) -> AuditList:
    """List the latest audit rows, newest first."""
    return AuditList(entries=audit.recent(inv.store, actor=inv.actor, limit=limit, face=face))


OUTBOX_ID = click.IntRange(1, 2**63 - 1)  # what SQLite can store: a larger number is a usage error, not a crash


@click.group(
    "outbox",
    context_settings=CONTEXT,
    invoke_without_command=True,
    short_help="Undelivered notifications: list, retry, discard (admin).",
)
@json_option
@click.pass_context
def outbox_group(ctx: click.Context) -> outbox.OutboxList | None:
    """Without a subcommand, list the notifications not yet delivered (pending and dead), with their last error."""
    if ctx.invoked_subcommand is None:
        inv: Invocation = ctx.obj
        return outbox.listing(inv.store, actor=inv.actor)
    return None


@outbox_group.command("retry", context_settings=CONTEXT, short_help="Try a dead notification again (admin).")
@click.argument("outbox_id", metavar="ID", type=OUTBOX_ID)
@json_option
@click.pass_obj
def outbox_retry(inv: Invocation, outbox_id: int) -> outbox.OutboxChange:
    """Give notification ID (see `outbox`) a fresh set of delivery attempts, starting now."""
    return outbox.retry(inv.store, actor=inv.actor, outbox_id=outbox_id)


@outbox_group.command("discard", context_settings=CONTEXT, short_help="Stop delivering a notification (admin).")
@click.argument("outbox_id", metavar="ID", type=OUTBOX_ID)
@json_option
@click.pass_obj
def outbox_discard(inv: Invocation, outbox_id: int) -> outbox.OutboxChange:
    """Stop trying to deliver notification ID (see `outbox`); its row stays, marked discarded."""
    return outbox.discard(inv.store, actor=inv.actor, outbox_id=outbox_id)


SHARED: tuple[click.Command, ...] = (help_command, status_command, notify_command, audit_command, outbox_group)


# Terminal only -----------------------------------------------------------------------------------


@click.command("config", context_settings=CONTEXT, short_help="Show the effective settings, secrets masked.")
@json_option
@click.pass_obj
def config_command(inv: Invocation) -> ConfigReport:
    """Print every setting with its environment variable and value; secrets show as ********."""
    return describe_settings(inv.settings)


@click.command("serve", context_settings=CONTEXT, short_help="Run the server: Slack, MCP over HTTP, scheduler.")
@click.pass_obj
def serve_command(inv: Invocation) -> Message:
    """Run the long-lived process: /slack/events, /mcp and /healthz on FINETUNE_HOST:FINETUNE_PORT,
    Socket Mode when SLACK_APP_TOKEN is set, and the scheduler. Stops cleanly on Ctrl-C or SIGTERM."""
    from bot.serve import serve

    audit.record(
        inv.store, inv.actor, "serve", {"host": inv.settings.host, "port": inv.settings.port}, outcome="started"
    )
    return serve(inv.services)


@click.command("mcp", context_settings=CONTEXT, short_help="Run the MCP server over stdio (for an MCP host).")
@click.pass_obj
def mcp_command(inv: Invocation) -> None:
    """Speak MCP on stdin/stdout, for Claude Desktop, IDEs and other MCP hosts. Logs go to stderr."""
    from mcp_server.server import run_stdio

    audit.record(inv.store, inv.actor, "mcp", {"transport": "stdio"}, outcome="started")
    run_stdio(inv.services)  # nothing is printed afterwards: stdout belonged to the protocol


TERMINAL: tuple[click.Command, ...] = (config_command, serve_command, mcp_command)

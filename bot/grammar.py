"""The one command grammar of `finetune ...` (terminal) and `/finetune ...` (Slack).

Commands are click commands whose callbacks call one core function and return
its typed result; they never print. `run_command` parses argv, runs the command,
turns every failure into a result a person can act on, and audits the
invocation. Faces render results: `bot.terminal` for a terminal, `bot.blocks`
for Slack.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shlex
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import click
from pydantic import BaseModel

from core.errors import FinetuneError
from core.platform import audit
from core.platform.actors import Actor
from core.platform.settings import Settings
from core.platform.status import get_status
from core.platform.store import Store
from core.services import Services

log = logging.getLogger(__name__)


ProgressFactory = Callable[[str], AbstractContextManager[Callable[[int], None]]]


@contextlib.contextmanager
def no_progress(_: str) -> Iterator[Callable[[int], None]]:
    yield lambda done: None


@dataclass
class Invocation:
    """What a command runs with: settings, the actor, and the store (opened on first use).

    `progress(description)` gives long-running commands a callback for items done;
    the terminal shows it as a progress bar, other faces ignore it.
    """

    services: Services
    actor: Actor
    as_json: bool = False
    progress: ProgressFactory = no_progress
    request_key: str | None = None  # the face's own id for this request (Slack trigger id): an idempotency key

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def store(self) -> Store:
        return self.services.store


# Results that only the grammar produces ------------------------------------------------


class CommandHelp(BaseModel):
    name: str
    usage: str
    summary: str
    description: str | None = None


class HelpResult(BaseModel):
    prog: str
    commands: list[CommandHelp]
    topic: str | None = None


class UsageProblem(BaseModel):
    message: str
    usage: str | None = None
    prog: str


class ErrorResult(BaseModel):
    error: str
    message: str
    hint: str | None = None


class Message(BaseModel):
    """A plain sentence, for commands whose result is just that."""

    text: str


class AuditList(BaseModel):
    entries: list[audit.AuditEntry]


@dataclass
class Outcome:
    result: BaseModel
    exit_code: int
    as_json: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# The grammar ------------------------------------------------------------------------------

CONTEXT = {"help_option_names": [], "max_content_width": 100}


class Grammar(click.Group):
    """A click group whose commands may be shared with another group (CLI-only commands added)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # definition order: most used first


def json_option(func):
    """`--json`: print the result as JSON (machines, scripts, agents)."""

    @click.option("--json", "as_json", is_flag=True, help="Output JSON.")
    @functools.wraps(func)
    def wrapper(*args, as_json: bool, **kwargs):
        click.get_current_context().obj.as_json = as_json
        return func(*args, **kwargs)

    return wrapper


@click.command("help", context_settings=CONTEXT, short_help="List commands, or explain one.")
@click.argument("command", nargs=-1)
@click.pass_context
def help_command(ctx: click.Context, command: tuple[str, ...]) -> HelpResult:
    """List every command with a one-line description, or show how to use COMMAND (e.g. `help data build`)."""
    root = ctx.find_root()
    group: click.Group = root.command  # type: ignore[assignment]
    if not command:
        entries = [describe(root, name, group.commands[name]) for name in group.list_commands(root)]
        return HelpResult(prog=root.info_name or "finetune", commands=entries)
    parent, cmd = root, None
    for depth, word in enumerate(command):
        commands = getattr(cmd or group, "commands", {})
        if word not in commands:
            raise click.UsageError(f"No such command '{' '.join(command[: depth + 1])}'.", ctx)
        if cmd is not None:
            parent = click.Context(cmd, info_name=command[depth - 1], parent=parent)
        cmd = commands[word]
    entry = describe(parent, command[-1], cmd, full=True)
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
def status_command(inv: Invocation):
    """Show where everything stands: feedback count, datasets, jobs by state, models by alias,
    pending approvals, undelivered notifications and the scheduler's last heartbeat."""
    return get_status(inv.store)


@click.command("notify", context_settings=CONTEXT, short_help="Send a notice to the team's Slack channel (admin).")
@click.argument("text")
@click.option("--channel", help="Slack channel id (default: FINETUNE_SLACK_CHANNEL).")
@json_option
@click.pass_obj
def notify_command(inv: Invocation, text: str, channel: str | None):
    """Queue TEXT for delivery to Slack through the outbox (delivered by `finetune serve`)."""
    from core.platform.notifications import notify

    return notify(inv.store, actor=inv.actor, text=text, channel=channel)


@click.command("audit", context_settings=CONTEXT, short_help="Recent audit rows: who did what, where, when (admin).")
@click.option("--limit", type=int, default=20, show_default=True, help="How many rows.")
@click.option("--face", help="Only rows from this face: cli, slack, mcp or scheduler.")
@json_option
@click.pass_obj
def audit_command(inv: Invocation, limit: int, face: str | None):
    """List the latest audit rows, newest first."""
    return AuditList(entries=audit.recent(inv.store, actor=inv.actor, limit=limit, face=face))


SHARED_COMMANDS: tuple[click.Command, ...] = (help_command, status_command, notify_command, audit_command)


def make_grammar(*commands: click.Command, help_text: str) -> Grammar:
    group = Grammar(name="finetune", help=help_text, context_settings=CONTEXT)
    for cmd in commands:
        group.add_command(cmd)
    return group


# Running a command --------------------------------------------------------------------------


def run_text(group: click.Group, text: str, inv: Invocation, *, prog: str) -> Outcome:
    """Run a command typed as one string (Slack), split like a shell would split it."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        outcome = Outcome(UsageProblem(message=f"cannot read the command: {exc} (check your quotes)", prog=prog), 2)
        _audit(inv, "unknown", [text], outcome)
        return outcome
    return run_command(group, argv, inv, prog=prog)


def run_command(group: click.Group, argv: list[str], inv: Invocation, *, prog: str) -> Outcome:
    """Parse and run one command; never raises for bad input. Audits the invocation."""
    if not argv:
        argv = ["help"]
    if "--help" in argv or "-h" in argv:
        words = []
        for arg in argv:  # the command path: leading words before any option or argument value
            if arg.startswith("-") or (words and not _is_subcommand(group, [*words, arg])):
                break
            words.append(arg)
        argv = ["help", *words]
    name = argv[0] if argv[0] in group.commands else "unknown"
    try:
        result = group.main(args=argv, prog_name=prog, standalone_mode=False, obj=inv)
        outcome = Outcome(result, 0 if getattr(result, "ok", True) else 1, inv.as_json)
    except click.UsageError as exc:
        outcome = Outcome(_usage_problem(exc, prog), 2, inv.as_json)
    except click.ClickException as exc:
        outcome = Outcome(UsageProblem(message=exc.format_message(), prog=prog), exc.exit_code, inv.as_json)
    except (click.exceptions.Abort, KeyboardInterrupt):
        outcome = Outcome(ErrorResult(error="Aborted", message="Aborted."), 130)
    except FinetuneError as exc:
        outcome = Outcome(ErrorResult(error=type(exc).__name__, message=exc.message, hint=exc.hint), 1, inv.as_json)
    except Exception:
        log.exception("command %r failed (request %s)", name, inv.actor.request_id)
        outcome = Outcome(
            ErrorResult(
                error="InternalError",
                message=f"Something went wrong inside finetune-ops (reference {inv.actor.request_id[:12]}).",
                hint="The server log has the details under that reference; please report it.",
            ),
            1,
        )
    _audit(inv, name, argv, outcome)
    return outcome


def _is_subcommand(group: click.Group, words: list[str]) -> bool:
    cmd: click.Command = group
    for word in words:
        if not isinstance(cmd, click.Group) or word not in cmd.commands:
            return False
        cmd = cmd.commands[word]
    return True


def _usage_problem(exc: click.UsageError, prog: str) -> UsageProblem:
    usage = f"{prog} COMMAND [ARGS]..."
    if exc.ctx is not None and exc.ctx.parent is not None:  # a subcommand's own usage line
        usage = " ".join([prog, exc.ctx.info_name or "", *exc.ctx.command.collect_usage_pieces(exc.ctx)])
    return UsageProblem(message=exc.format_message(), usage=usage, prog=prog)


def _audit(inv: Invocation, name: str, argv: list[str], outcome: Outcome) -> None:
    try:
        store = inv.store
        if audit.recorded(store, inv.actor):
            return  # the core function audited its own change, in its own transaction
        result: Any = outcome.result
        detail = getattr(result, "message", None) if not outcome.ok else None
        status = "ok" if outcome.ok else ("usage" if isinstance(result, UsageProblem) else "error")
        audit.record(store, inv.actor, name, {"argv": argv}, outcome=status, detail=detail)
    except FinetuneError:
        log.warning("could not write the audit row for %r: the store is unavailable", name)

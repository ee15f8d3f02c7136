"""The `finetune` console script: the shared grammar plus the commands only a terminal has."""

from __future__ import annotations

import logging
import sys

import click
from pydantic import ValidationError
from rich.console import Console

from bot.data_commands import SHARED_DATA_COMMANDS, data_group
from bot.grammar import CONTEXT, SHARED_COMMANDS, Invocation, json_option, make_grammar, run_command
from bot.job_commands import SHARED_JOB_COMMANDS
from core.platform import audit
from core.platform.actors import cli_actor
from core.platform.config_report import describe_settings
from core.platform.settings import Settings
from core.services import build_services


@click.command("config", context_settings=CONTEXT, short_help="Show the effective settings, secrets masked.")
@json_option
@click.pass_obj
def config_command(inv: Invocation):
    """Print every setting with its environment variable and value; secrets show as ********."""
    return describe_settings(inv.settings)


@click.command("serve", context_settings=CONTEXT, short_help="Run the server: Slack, MCP over HTTP, scheduler.")
@click.pass_obj
def serve_command(inv: Invocation):
    """Run the long-lived process: /slack/events, /mcp and /healthz on FINETUNE_HOST:FINETUNE_PORT,
    Socket Mode when SLACK_APP_TOKEN is set, and the scheduler. Stops cleanly on Ctrl-C or SIGTERM."""
    from bot.serve import serve

    audit.record(
        inv.store, inv.actor, "serve", {"host": inv.settings.host, "port": inv.settings.port}, outcome="started"
    )
    return serve(inv.settings, inv.store)


@click.command("mcp", context_settings=CONTEXT, short_help="Run the MCP server over stdio (for an MCP host).")
@click.pass_obj
def mcp_command(inv: Invocation):
    """Speak MCP on stdin/stdout, for Claude Desktop, IDEs and other MCP hosts. Logs go to stderr."""
    from mcp_server.server import run_stdio

    audit.record(inv.store, inv.actor, "mcp", {"transport": "stdio"}, outcome="started")
    return run_stdio(inv.settings, inv.store)


CLI = make_grammar(
    *SHARED_COMMANDS,
    *SHARED_DATA_COMMANDS,
    *SHARED_JOB_COMMANDS,
    data_group,
    config_command,
    serve_command,
    mcp_command,
    help_text="finetune-ops: feedback to fine-tuned models, with a human in the loop.",
)


def configure_logging(level: str) -> None:
    """Logs go to stderr, always: stdout belongs to results (and to the protocol under `finetune mcp`)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # One line per heartbeat would drown the log; APScheduler still logs job failures at ERROR.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines: list[str] = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            env = Settings.env_names().get(field, field.upper())
            lines.append(f"{env}: {error['msg']} (got {error.get('input')!r})")
        raise click.ClickException(
            "invalid settings:\n  " + "\n  ".join(lines) + "\nFix them in the environment or .env."
        ) from None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    err = Console(stderr=True)
    try:
        settings = load_settings()
    except click.ClickException as exc:
        err.print(f"[red]Error:[/red] {exc.message}", highlight=False)
        sys.exit(2)
    configure_logging(settings.log_level)
    from bot.terminal import emit, progress_bar

    inv = Invocation(services=build_services(settings), actor=cli_actor(), progress=progress_bar(err))
    outcome = run_command(CLI, argv, inv, prog="finetune")
    if outcome.result is not None:
        emit(outcome, Console(), err)
    sys.exit(outcome.exit_code)

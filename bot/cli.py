"""The `finetune` console script: the terminal's composition root.

`main` loads the settings, builds the `Services` once and runs one command of
`CLI` (every capability's commands, assembled in `bot.commands.groups`) as the
OS user, printing its result with the terminal renderers.
"""

from __future__ import annotations

import logging
import sys

import click
from pydantic import ValidationError
from rich.console import Console

from bot.commands import Invocation, run_command
from bot.commands.groups import TERMINAL as CLI
from bot.invoke import terminal_actor
from core.platform import Settings
from core.services import build_services

__all__ = ["CLI", "configure_logging", "load_settings", "main"]


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

    services = build_services(settings)
    inv = Invocation(services=services, actor=terminal_actor(), progress=progress_bar(err))
    outcome = run_command(CLI, argv, inv, prog="finetune")
    emit(outcome, Console(), err)
    sys.exit(outcome.exit_code)

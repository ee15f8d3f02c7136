"""The `finetune` console script: the terminal's composition root.

`main` loads the settings (warning on stderr about FINETUNE_* names that are no
setting), builds the `Services` once and runs one command of `CLI` (every
capability's commands, assembled in `bot.commands.groups`) as the OS user,
printing its result with the terminal renderers.
"""

from __future__ import annotations

import logging
import sys

import click
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from rich.console import Console

from bot.commands import Invocation, run_command
from bot.commands.groups import TERMINAL as CLI
from bot.invoke import terminal_actor
from core.platform import Settings
from core.platform.settings import unknown_setting_warnings
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
        lines = [_settings_error(error) for error in exc.errors()]
        raise click.ClickException(
            "invalid settings:\n  " + "\n  ".join(lines) + "\nFix them in the environment or .env."
        ) from None


def _settings_error(error: ErrorDetails) -> str:
    """`NAME: what is wrong (got 'value')`; a secret's value is never repeated."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:  # a rule across settings: its message names them
        return message
    where = str(error["loc"][0])  # a field's name, or the variable it was read from
    fields = {env.upper(): name for name, env in Settings.env_names().items()}
    field = where if where in Settings.model_fields else fields.get(where.upper())
    env = Settings.env_names()[field] if field else where.upper()
    secret = field is None or "SecretStr" in str(Settings.model_fields[field].annotation)
    got = "(value hidden: it is a secret)" if secret else f"(got {error.get('input')!r})"
    return f"{env}: {message} {got}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    err = Console(stderr=True)
    try:
        settings = load_settings()
    except click.ClickException as exc:
        err.print(f"[red]Error:[/red] {exc.message}", highlight=False)
        sys.exit(2)
    for warning in unknown_setting_warnings():
        err.print(f"[yellow]Warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    configure_logging(settings.log_level)
    from bot.terminal import emit, progress_bar

    services = build_services(settings)
    inv = Invocation(services=services, actor=terminal_actor(settings), progress=progress_bar(err))
    outcome = run_command(CLI, argv, inv, prog="finetune")
    emit(outcome, Console(), err)
    sys.exit(outcome.exit_code)

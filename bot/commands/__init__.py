"""The one command grammar of `finetune ...` (terminal) and `/finetune ...` (Slack).

Each capability declares its commands once, in `bot/commands/<capability>.py`:
click commands whose callbacks call one core function and return its typed
result (they never print), listed as `SHARED` (Slack and terminal) or
`TERMINAL` (terminal only). `bot.commands.groups` assembles the two groups.
`run_command` parses argv and runs the command through the one invocation
wrapper (`bot.invoke`), turning every failure into a result a person can act
on. Faces render results: `bot.terminal` for a terminal, `bot.slack.blocks`
for Slack.
"""

from __future__ import annotations

import contextlib
import functools
import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import click
from pydantic import BaseModel

from bot.invoke import Failure, Verdict, guard_commands, invoke
from core.platform import Actor, Settings, Store, lone_surrogate
from core.services import Services


class Advance(Protocol):
    """Tells a progress display how far a long command is: items done, and when known their total and the cost."""

    def __call__(self, done: int, *, total: int | None = None, cost_usd: float | None = None) -> None: ...


class ProgressFactory(Protocol):
    """`with progress(description, total=N) as advance:` shows a long command's progress while it runs."""

    def __call__(self, description: str, *, total: int | None = None) -> AbstractContextManager[Advance]: ...


def _ignore(done: int, *, total: int | None = None, cost_usd: float | None = None) -> None:
    return None


@contextlib.contextmanager
def no_progress(description: str, *, total: int | None = None) -> Iterator[Advance]:
    yield _ignore


@dataclass
class Invocation:
    """What a command runs with: the services (store opened on first use) and the actor.

    `progress(description, total=N)` gives long-running commands a callback for items done (and the cost so
    far); the terminal shows it as a progress bar, other faces ignore it.
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


@dataclass
class Outcome:
    result: BaseModel | None  # None: nothing to show (`finetune mcp` leaves stdout to the protocol)
    exit_code: int
    as_json: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# Declaring commands ------------------------------------------------------------------------

CONTEXT: dict[str, Any] = {"help_option_names": [], "max_content_width": 100}


class Grammar(click.Group):
    """A click group whose commands may be shared with another group (terminal-only commands added)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # definition order: most used first


def make_grammar(*commands: click.Command, help_text: str) -> Grammar:
    group = Grammar(name="finetune", help=help_text, context_settings=CONTEXT)
    for cmd in commands:
        group.add_command(cmd)
    guard_commands(group)  # each (sub)command checks the policy for its own path when it runs
    return group


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--json`: print the result as JSON (machines, scripts, agents)."""

    @click.option("--json", "as_json", is_flag=True, help="Output JSON.")
    @functools.wraps(func)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> Any:
        click.get_current_context().obj.as_json = as_json
        return func(*args, **kwargs)

    return wrapper


def idempotency_key(_: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--key`: given, it must say something; an empty key would silently mean "no key"."""
    if value is not None and not value.strip():
        raise click.BadParameter("the idempotency key is empty; pass a non-empty key, or leave the option out.")
    return value


# Bounding what is echoed -------------------------------------------------------------------------

ECHO_LIMIT = 80  # characters of a value a message repeats back
MESSAGE_LIMIT = 2000  # characters of any message or hint a face shows
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` safe to echo: control characters and lone surrogates escaped, at most `limit` characters."""
    text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def bounded(text: str, *, echoed: Iterable[str] = ()) -> str:
    """A message with every long `echoed` value in it clipped, and no longer than MESSAGE_LIMIT."""
    for value in sorted({v for v in echoed if len(v) > ECHO_LIMIT}, key=len, reverse=True):
        text = text.replace(value, clip(value)).replace(repr(value), clip(repr(value)))
    return clip(text, MESSAGE_LIMIT)


# Running a command --------------------------------------------------------------------------

MAX_TEXT = 10_000  # characters of one typed command (Slack); far more than any command needs


def run_text(group: click.Group, text: str, inv: Invocation, *, prog: str) -> Outcome:
    """Run a command typed as one string (Slack), split like a shell would split it."""
    if len(text) > MAX_TEXT:
        message = f"the command is {len(text):,} characters long; {prog} takes at most {MAX_TEXT:,}."
        return _refuse(inv, [text], UsageProblem(message=message, prog=prog))
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        problem = UsageProblem(message=f"cannot read the command: {exc} (check your quotes)", prog=prog)
        return _refuse(inv, [text], problem)
    return run_command(group, argv, inv, prog=prog)


def run_command(group: click.Group, argv: list[str], inv: Invocation, *, prog: str) -> Outcome:
    """Parse and run one command through the invocation wrapper; never raises for bad input."""
    if (problem := _not_text(argv, prog)) is not None:
        return _refuse(inv, argv, problem)
    if not argv:
        argv = ["help"]
    if "--help" in argv or "-h" in argv:
        argv = ["help", *_command_path(group, argv)]
    name = argv[0] if argv[0] in group.commands else "unknown"
    return _run(inv, name, argv, lambda: _parse_and_call(group, argv, inv, prog))


def _refuse(inv: Invocation, argv: list[str], problem: UsageProblem) -> Outcome:
    return _run(inv, "unknown", argv, lambda: Outcome(problem, 2))


def _not_text(argv: list[str], prog: str) -> UsageProblem | None:
    """A lone surrogate (a terminal's undecodable bytes) is not text: it can be neither stored nor shown."""
    for number, arg in enumerate(argv, start=1):
        if (found := lone_surrogate(arg)) is not None:
            message = (
                f"word {number} of the command contains U+{ord(found.group()):04X}, a lone surrogate (bytes that "
                "are not UTF-8), which is not text. Type it again as plain text."
            )
            return UsageProblem(message=message, prog=prog)
    return None


def _run(inv: Invocation, name: str, argv: list[str], call: Callable[[], Outcome]) -> Outcome:
    done = invoke(inv.services, inv.actor, name, {"argv": argv}, lambda: _bounded(call(), argv), verdict=_verdict)
    return _bounded(_failed(done, inv), argv) if isinstance(done, Failure) else done


def _bounded(outcome: Outcome, argv: list[str]) -> Outcome:
    """Errors echo what was typed: a huge argument comes back clipped."""
    result = outcome.result
    if isinstance(result, UsageProblem | ErrorResult):
        update = {"message": bounded(result.message, echoed=argv)}
        if isinstance(result, ErrorResult) and result.hint:
            update["hint"] = bounded(result.hint, echoed=argv)
        outcome.result = result.model_copy(update=update)
    return outcome


def _parse_and_call(group: click.Group, argv: list[str], inv: Invocation, prog: str) -> Outcome:
    """Click's own failures (usage, abort) are results here; core errors go on to the wrapper."""
    try:
        result = group.main(args=argv, prog_name=prog, standalone_mode=False, obj=inv)
    except click.UsageError as exc:
        return Outcome(_usage_problem(exc, prog), 2, inv.as_json)
    except click.ClickException as exc:  # not a usage problem: something the command could not do
        return Outcome(ErrorResult(error=type(exc).__name__, message=exc.format_message()), exc.exit_code, inv.as_json)
    except (click.exceptions.Abort, KeyboardInterrupt):
        return Outcome(ErrorResult(error="Aborted", message="Aborted."), 130)
    return Outcome(result, 0 if getattr(result, "ok", True) else 1, inv.as_json)


def _verdict(outcome: Outcome) -> Verdict:
    if outcome.ok:
        return Verdict()
    result: Any = outcome.result
    return Verdict("usage" if isinstance(result, UsageProblem) else "error", getattr(result, "message", None))


def _failed(failure: Failure, inv: Invocation) -> Outcome:
    if failure.internal:
        message = f"Something went wrong inside finetune-ops (reference {failure.reference})."
        hint = "The server log has the details under that reference; please report it."
        return Outcome(ErrorResult(error=failure.error, message=message, hint=hint), 1)
    return Outcome(ErrorResult(error=failure.error, message=failure.message, hint=failure.hint), 1, inv.as_json)


def _command_path(group: click.Group, argv: list[str]) -> list[str]:
    """The leading words of argv that name a (sub)command, before any option or argument value."""
    words: list[str] = []
    for arg in argv:
        if arg.startswith("-") or (words and not _is_subcommand(group, [*words, arg])):
            break
        words.append(arg)
    return words


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

"""The README's reference tables, generated from the code so they cannot drift.

    python3 dev.py docs           rewrite the tables in README.md
    python3 dev.py docs --check   exit 1 when README.md is not what the code says (CI, tests)

Each table sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers:
`commands` comes from the click grammar (every command of the terminal, and
whether Slack has it too), `mcp-tools` from the MCP server's tool list, and
`settings` from the settings model.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    match = re.match(r"(.+?\.)(\s|$)", text)
    return match.group(1) if match else text


# Commands ------------------------------------------------------------------------------------------


def _param_usage(param: click.Parameter) -> str | None:
    if isinstance(param, click.Argument):
        word = param.human_readable_name.upper()
        return f"[{word}]" if not param.required else word
    if not isinstance(param, click.Option) or param.hidden:
        return None
    name = max(param.opts, key=len)
    if param.is_flag:
        return f"[{name}]"
    if isinstance(param.type, click.Choice):
        value = "\\|".join(str(choice) for choice in param.type.choices)
    elif param.metavar:
        value = param.metavar
    elif isinstance(param.type, click.types.IntParamType):
        value = "N"
    elif isinstance(param.type, click.types.FloatParamType):
        value = "X"
    else:
        value = name.lstrip("-").upper()
    usage = f"{name} {value}"
    return usage if param.required else f"[{usage}]"


def _usage(path: list[str], command: click.Command) -> str:
    pieces = [piece for param in command.params if (piece := _param_usage(param)) is not None]
    return " ".join(["finetune", *path, *pieces])


def _walk(group: click.Group, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    for name, command in group.commands.items():
        here = [*path, name]
        if not isinstance(command, click.Group) or command.invoke_without_command:
            yield here, command
        if isinstance(command, click.Group):
            yield from _walk(command, here)


def commands_table(cli: click.Group, slack: click.Group) -> str:
    slack_paths = {" ".join(path) for path, _ in _walk(slack, [])}
    rows = ["| command | what it does | where |", "|---|---|---|"]
    for path, command in _walk(cli, []):
        where = "CLI, Slack" if " ".join(path) in slack_paths else "CLI"
        summary = command.short_help or _first_sentence(command.help or "")
        rows.append(f"| `{_usage(path, command)}` | {_cell(summary)} | {where} |")
    return "\n".join(rows)


# MCP tools -----------------------------------------------------------------------------------------


def mcp_tools_table(tools: list[Any]) -> str:
    rows = ["| tool | what it does | kind |", "|---|---|---|"]
    for tool in tools:
        notes = tool.annotations
        kind = []
        if notes is not None:
            if notes.read_only_hint:
                kind.append("read-only")
            if notes.destructive_hint:
                kind.append("destructive")
            if notes.idempotent_hint:
                kind.append("idempotent")
            if notes.open_world_hint:
                kind.append("calls a provider")
        rows.append(f"| `{tool.name}` | {_cell(_first_sentence(tool.description or ''))} | {', '.join(kind)} |")
    return "\n".join(rows)


def _mcp_tools() -> list[Any]:
    import tempfile

    import anyio
    from mcp import Client

    from core.platform.settings import Settings
    from core.services import build_services
    from mcp_server.server import build_server

    with tempfile.TemporaryDirectory() as folder:
        services = build_services(Settings(_env_file=None, data_dir=Path(folder)))

        async def listing() -> list[Any]:
            async with Client(build_server(services)) as client:
                return list((await client.list_tools()).tools)

        try:
            return anyio.run(listing)
        finally:
            services.close()


# Settings ------------------------------------------------------------------------------------------


def settings_table() -> str:
    from pydantic import SecretStr
    from pydantic_core import PydanticUndefined

    from core.platform.settings import Settings

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        env = Settings.env_names()[name]
        if field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        else:
            default = None if field.default is PydanticUndefined else field.default
        if default in (None, [], "") or isinstance(default, SecretStr):
            shown = "unset" if not isinstance(default, list) else "empty"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif isinstance(default, Path):
            shown = f"`./{default}`"
        else:
            shown = f"`{default:g}`" if isinstance(default, float) else f"`{default}`"
        rows.append(f"| `{env}` | {shown} | {_cell(field.description or '')} |")
    return "\n".join(rows)


# Putting them in the README ------------------------------------------------------------------------


def _grammars() -> tuple[click.Group, click.Group]:
    from bot.cli import CLI
    from bot.slack.app import GRAMMAR

    return CLI, GRAMMAR


TABLES: dict[str, Callable[[], str]] = {
    "commands": lambda: commands_table(*_grammars()),
    "mcp-tools": lambda: mcp_tools_table(_mcp_tools()),
    "settings": settings_table,
}


def render(readme: str) -> str:
    """`readme` with every marked table regenerated; a missing marker pair is an error."""
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> block")
        table = make()

        def replace(match: re.Match[str], table: str = table) -> str:
            return f"{match.group(1)}{table}\n{match.group(2)}"

        readme = pattern.sub(replace, readme)
    return readme


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Regenerate (or check) the README's reference tables.")
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md is out of date: run `python3 dev.py docs`.", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        README.write_text(wanted)
        print("README.md updated.")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run as a script: import the project from this checkout
    sys.exit(main(sys.argv[1:]))

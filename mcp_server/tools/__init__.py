"""MCP tools, one module per capability, and the glue they share.

A tool is a module-level function: typed arguments, each described
(`Annotated[..., Field(description=...)]`), a docstring that becomes its
description, a pydantic return model that becomes its output schema, and an
`Effect` that becomes its annotations (read-only, destructive, idempotent,
open-world). It takes the request `Context`, from which `call_core` reads the
`Services` the server's lifespan yields and who is calling;
`call_core` runs the one core call through the invocation wrapper
(`bot.invoke`) and turns a failure into a `ToolError` whose text says what was
wrong and how to fix it, in the MCP face's own words (arguments, not CLI flags).

Arguments are checked strictly (`mcp_server.tools.arguments`): an unknown
argument, a wrong type or hostile input is refused before the tool runs, with
an error that names the argument, and the refusal is audited like any call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import Field

from bot.invoke import Failure, invoke, mcp_actor
from core.errors import FinetuneError
from core.platform import Actor
from core.services import Services

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def services(ctx: Context) -> Services:
    """The Services the server's lifespan yielded (see `mcp_server.server.build_server`)."""
    found = ctx.request_context.lifespan_context
    if not isinstance(found, Services):
        raise RuntimeError("this MCP server was built without its Services: use mcp_server.server.build_server")
    return found


def client_actor(ctx: Context) -> Actor:
    """The caller, by what it cannot choose: its bearer token's name over HTTP, the OS user over stdio."""
    return mcp_actor(services(ctx).settings, ctx.request_context.request)


def call_core(
    ctx: Context,
    tool: str,
    args: dict[str, Any],
    fn: Callable[[Services, Actor], T],
    *,
    batch_item: str | None = None,
) -> T:
    """Run one core call as the calling client, through the invocation wrapper; a failure is a tool error.

    `batch_item` names the items of a batch argument (`event`) where the core counts them as lines.
    """
    svc, actor = services(ctx), client_actor(ctx)
    done = invoke(svc, actor, tool, args, lambda: fn(svc, actor))
    if isinstance(done, Failure):
        if done.internal:
            raise ToolError(f"Internal error in finetune-ops (reference {done.reference}); the server log has details.")
        text = in_mcp_words(str(done))
        raise ToolError(_LINE.sub(rf"{batch_item}\1 \2", text) if batch_item else text)
    return done


def read_resource(ctx: Context, read: Callable[[Services], str]) -> str:
    """A resource's text; a core error becomes a resource error with its message and fix."""
    try:
        return read(services(ctx))
    except FinetuneError as exc:
        raise ResourceError(in_mcp_words(str(exc))) from exc


# Core messages in the MCP face's words ------------------------------------------------------------

# Core hints speak to people at a terminal; an agent needs the tool and argument names instead.
_CLI_COMMANDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"`?finetune validate (\S+?) (\S+?) --model (\S+?)`?(?=[;:,.]?(?:\s|$))"),
        r"validate_dataset (version=\1, target=\2, model=\3)",
    ),
    (
        re.compile(r"`?finetune validate (\S+?) (\S+?)`?(?=[;:,.]?(?:\s|$))"),
        r"validate_dataset (version=\1, target=\2)",
    ),
    (re.compile(r"`finetune jobs list`"), "list_jobs"),
    (re.compile(r"`finetune eval run (\S+?) --baseline (\S+?)`"), r"evaluate_model (candidate=\1, baseline=\2)"),
    (re.compile(r"finetune data build NAME"), "build_dataset (name=NAME)"),
)
_FLAGS = {
    "--skip-invalid": "skip_invalid=true",
    "--edited-only": "filters.edited_only=true",
    "--epochs": "hyperparameters.epochs",
    "--batch-size": "hyperparameters.batch_size",
    "--learning-rate": "hyperparameters.learning_rate",
    "--lr-multiplier": "hyperparameters.learning_rate_multiplier",
    "--warmup-steps": "hyperparameters.warmup_steps",
    "--base-model": "base_model",
    "--map": "field_map",
}
_LINE = re.compile(r"\bline(s?) (\d+)")
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)( (?=[a-z0-9]))?")


def in_mcp_words(text: str) -> str:
    """`text` with the CLI's commands and flags named as MCP tools and arguments (`--epochs` -> hyperparameters.epochs)."""
    for pattern, replacement in _CLI_COMMANDS:
        text = pattern.sub(replacement, text)
    return _FLAG.sub(_argument_for, text)


def _argument_for(match: re.Match[str]) -> str:
    flag, value_follows = f"--{match.group(1)}", match.group(2) is not None
    name = _FLAGS.get(flag, match.group(1).replace("-", "_"))
    if "=" in name:
        return name + (" " if value_follows else "")
    return f"{name}=" if value_follows else name


# Declaring tools ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """What a tool does to the world, published as its MCP annotations so hosts can decide what to confirm."""

    read_only: bool
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False  # it calls a provider (OpenAI, Bedrock, ...), not just this server's own state

    def annotations(self, title: str) -> ToolAnnotations:
        return ToolAnnotations(
            title=title,
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


# No id, name, version or key comes near this; a longer one is a mistake, refused before any lookup.
ID_LIMIT = 200
Version = Annotated[
    str, Field(description="Dataset version: name@N, or a name for its latest version.", max_length=ID_LIMIT)
]

READS = Effect(read_only=True)
RECORDS = Effect(read_only=False)  # adds records or derived files; the same call again adds nothing
CALLS_PROVIDER = Effect(read_only=False, idempotent=False, open_world=True)
STOPS_AT_PROVIDER = Effect(read_only=False, destructive=True, open_world=True)


@dataclass
class Toolbox:
    """The tools and resources of one capability, declared at module level, registered by `build_server`."""

    tools: list[tuple[Callable[..., Any], str, Effect]] = field(default_factory=list)
    resources: list[tuple[Callable[..., Any], dict[str, Any]]] = field(default_factory=list)

    def tool(self, *, title: str, effect: Effect) -> Callable[[F], F]:
        """A tool named after its function, its docstring (whitespace folded) as the description."""

        def declare(fn: F) -> F:
            self.tools.append((fn, title, effect))
            return fn

        return declare

    def resource(self, uri: str, *, name: str, mime_type: str) -> Callable[[F], F]:
        def declare(fn: F) -> F:
            self.resources.append((fn, {"uri": uri, "name": name, "mime_type": mime_type}))
            return fn

        return declare

    def build_tools(self) -> list[Tool]:
        from mcp_server.tools.arguments import strict_tool

        return [strict_tool(fn, title=title, annotations=effect.annotations(title)) for fn, title, effect in self.tools]

    def register_resources(self, server: MCPServer[Services]) -> None:
        for fn, options in self.resources:
            server.resource(**options)(fn)

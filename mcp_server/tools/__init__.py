"""MCP tools, one module per capability, and the glue they share.

A tool is a module-level function: typed arguments, a docstring that becomes
its description, a pydantic return model that becomes its output schema. It
takes the request `Context`, from which `call_core` reads the `Services` the
server's lifespan yields and the calling client's name; `call_core` runs the
one core call through the invocation wrapper (`bot.invoke`) and turns a failure
into a `ToolError` whose text says what was wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

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


def client_actor(ctx: Context | None) -> Actor:
    """The MCP client, named by what it declared at initialize (e.g. 'claude-desktop')."""
    name = None
    if ctx is not None:
        params = ctx.session.client_params
        if params is not None and params.client_info is not None:
            name = params.client_info.name
    return mcp_actor(name)


def call_core(ctx: Context, tool: str, args: dict[str, Any], fn: Callable[[Services, Actor], T]) -> T:
    """Run one core call as the calling client, through the invocation wrapper; a failure is a tool error."""
    svc, actor = services(ctx), client_actor(ctx)
    done = invoke(svc, actor, tool, args, lambda: fn(svc, actor))
    if isinstance(done, Failure):
        if done.internal:
            raise ToolError(f"Internal error in finetune-ops (reference {done.reference}); the server log has details.")
        raise ToolError(str(done))
    return done


def read_resource(ctx: Context, read: Callable[[Services], str]) -> str:
    """A resource's text; a core error becomes a resource error with its message and fix."""
    try:
        return read(services(ctx))
    except FinetuneError as exc:
        raise ResourceError(str(exc)) from exc


@dataclass
class Toolbox:
    """The tools and resources of one capability, declared at module level, registered by `build_server`."""

    tools: list[tuple[Callable[..., Any], str]] = field(default_factory=list)
    resources: list[tuple[Callable[..., Any], dict[str, Any]]] = field(default_factory=list)

    def tool(self, *, title: str) -> Callable[[F], F]:
        """A tool named after its function, its docstring (whitespace folded) as the description."""

        def declare(fn: F) -> F:
            self.tools.append((fn, title))
            return fn

        return declare

    def resource(self, uri: str, *, name: str, mime_type: str) -> Callable[[F], F]:
        def declare(fn: F) -> F:
            self.resources.append((fn, {"uri": uri, "name": name, "mime_type": mime_type}))
            return fn

        return declare

    def register(self, server: MCPServer) -> None:
        for fn, title in self.tools:
            server.add_tool(fn, name=fn.__name__, title=title, description=" ".join((fn.__doc__ or "").split()))
        for fn, options in self.resources:
            server.resource(**options)(fn)

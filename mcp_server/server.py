"""The MCP server: one typed tool per core operation, for AI agents.

Each tool's docstring is its description and its return annotation its output
schema. Tools are thin: identify the caller, call one core function, return its
typed result. Errors an agent should read become `ToolError` with the core
error's message and fix; every call is audited with the client's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from core import __version__, audit
from core.actors import Actor
from core.errors import FinetuneError
from core.settings import Settings
from core import status
from core.status import StatusReport
from core.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

INSTRUCTIONS = """finetune-ops turns feedback on what AI agents write into fine-tuned models, with humans approving
costly steps in Slack. Start with get_status to see feedback, datasets, jobs, models and pending approvals."""


def client_actor(ctx: Context | None) -> Actor:
    """The MCP client, named by what it declared at initialize (e.g. 'claude-desktop')."""
    name = None
    if ctx is not None:
        params = ctx.session.client_params
        if params is not None and params.client_info is not None:
            name = params.client_info.name
    return Actor(id=name or "anonymous-client", face="mcp")


def call_core(store: Store, ctx: Context | None, tool: str, args: dict[str, Any], fn: Callable[[Actor], T]) -> T:
    """Run one core call as the calling client: audit it and turn core errors into tool errors."""
    actor = client_actor(ctx)
    try:
        result = fn(actor)
    except FinetuneError as exc:
        audit.record(store, actor, tool, args, outcome="error", detail=exc.message)
        raise ToolError(str(exc)) from exc
    except Exception as exc:
        log.exception("MCP tool %s failed (request %s)", tool, actor.request_id)
        audit.record(store, actor, tool, args, outcome="error", detail=f"internal error {actor.request_id[:12]}")
        raise ToolError(
            f"Internal error in finetune-ops (reference {actor.request_id[:12]}); the server log has details."
        ) from exc
    if not audit.recorded(store, actor):
        audit.record(store, actor, tool, args)
    return result


def tool(server: MCPServer, *, title: str):
    """Register a tool named after its function, its docstring (whitespace folded) as the description."""

    def register(fn):
        server.add_tool(fn, name=fn.__name__, title=title, description=" ".join((fn.__doc__ or "").split()))
        return fn

    return register


def build_server(settings: Settings, store: Store) -> MCPServer:
    server = MCPServer(
        "finetune-ops",
        title="finetune-ops",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level=settings.log_level.upper() if settings.log_level.upper() in _LEVELS else "INFO",
    )

    @tool(server, title="Status")
    def get_status(ctx: Context) -> StatusReport:
        """Where everything stands: feedback events, datasets and versions, fine-tuning jobs per state,
        models per alias, pending approvals, undelivered notifications and the scheduler's last heartbeat."""
        return call_core(store, ctx, "get_status", {}, lambda actor: status.get_status(store))

    return server


_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def run_stdio(settings: Settings, store: Store):
    """Serve MCP on stdin/stdout until the host closes the pipe. Only protocol goes to stdout."""
    build_server(settings, store).run("stdio")
    return None

"""The MCP server: one typed tool per core operation, for AI agents.

`build_server(services)` registers each capability's tools
(`mcp_server/tools/<capability>.py`, arguments checked strictly) and hands the `Services` to them through
the server's lifespan: the SDK enters it once per stdio or in-memory session,
and once for all HTTP sessions under `finetune serve`. Nothing but protocol goes
to stdout in stdio mode; logging is configured (to stderr) before the server
starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server.mcpserver import MCPServer

from core import __version__
from core.services import Services
from mcp_server.tools import analytics, data, evaluation, experiments, loop, platform, registry, reports, training

INSTRUCTIONS = """finetune-ops turns feedback on what AI agents write into fine-tuned models, with humans approving
costly steps in Slack. Start with get_status to see feedback, datasets, jobs, models and pending approvals."""

TOOLBOXES = (
    platform.TOOLS, data.TOOLS, training.TOOLS, registry.TOOLS, evaluation.TOOLS, experiments.TOOLS, analytics.TOOLS,
    loop.TOOLS, reports.TOOLS,
)  # fmt: skip

_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def build_server(services: Services) -> MCPServer[Services]:
    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Services]) -> AsyncIterator[Services]:
        yield services

    level = services.settings.log_level.upper()
    server: MCPServer[Services] = MCPServer(
        "finetune-ops",
        title="finetune-ops",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level=level if level in _LEVELS else "INFO",  # type: ignore[arg-type]
        lifespan=lifespan,
        tools=[tool for toolbox in TOOLBOXES for tool in toolbox.build_tools()],
    )
    for toolbox in TOOLBOXES:
        toolbox.register_resources(server)
    return server


def run_stdio(services: Services) -> None:
    """Serve MCP on stdin/stdout until the host closes the pipe. Only protocol goes to stdout."""
    build_server(services).run("stdio")

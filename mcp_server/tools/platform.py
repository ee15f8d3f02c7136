"""Platform tools: where everything stands."""

from __future__ import annotations

from mcp.server.mcpserver import Context

from core.platform import StatusReport, status
from mcp_server.tools import READS, Toolbox, call_core

TOOLS = Toolbox()


@TOOLS.tool(title="Status", effect=READS)
def get_status(ctx: Context) -> StatusReport:
    """Where everything stands: feedback events, datasets and versions, fine-tuning jobs per state,
    models per alias, pending approvals, undelivered notifications and the scheduler's last heartbeat."""
    return call_core(ctx, "get_status", {}, lambda svc, actor: status.get_status(svc.store, settings=svc.settings))

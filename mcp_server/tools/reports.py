"""Report tools: agents read the weekly digest, as structured content beside its Markdown."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import Field

from mcp_server.tools import READS, Toolbox, call_core
from reports.digest import Digest, build_digest
from reports.render_markdown import render_markdown

TOOLS = Toolbox()


@TOOLS.tool(title="Get report", effect=READS)
def get_report(
    ctx: Context,
    week: Annotated[
        str | None,
        Field(description="The ISO week, YYYY-Www (e.g. 2026-W03; weeks run Monday to Sunday in the server's time "
              "zone). Default: the last full week.", max_length=16),
    ] = None,
) -> Annotated[CallToolResult, Digest]:  # fmt: skip
    """The weekly digest of an ISO week: acceptance by agent with the change from the week before (and each agent's
    last eight weeks), the edit patterns users make most, open regression alerts, fine-tuning jobs finished,
    deployments and rollbacks, pending approvals, A/B experiments with their verdicts, training and inference spend,
    and the next actions the numbers point at (each with its command). The structured content is the digest; the
    text is the same as Markdown."""
    digest = call_core(ctx, "get_report", {"week": week}, lambda svc, actor: build_digest(svc, week=week))
    return CallToolResult(
        content=[TextContent(type="text", text=render_markdown(digest))],
        structured_content=digest.model_dump(mode="json"),
    )

"""Analytics tools: agents read what was spent (training and inference) and what each fine-tuned version earns
back against its base model, and may request retraining an agent (an approver decides); how each agent's drafts
fare, the edits users keep making turned into improvement opportunities, and the regression alerts."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from core.analytics import (
    AgentPerformance,
    AlertList,
    CostSummary,
    Opportunities,
    RetrainProposal,
    Window,
    alert_list,
    request_retrain,
    today,
    window_span,
)
from core.analytics import agent_performance as performance_of
from core.analytics import cost_summary as summarize_costs
from core.analytics import improvement_opportunities as opportunities_of
from mcp_server.tools import ID_LIMIT, READS, Effect, Toolbox, call_core

TOOLS = Toolbox()


@TOOLS.tool(title="Cost summary", effect=READS)
def cost_summary(
    ctx: Context,
    window: Annotated[
        Window, Field(description="Days to cover, ending today in FINETUNE_TIMEZONE: 7d, 30d, 90d or all.")
    ] = Window.DAYS_30,
) -> CostSummary:
    """What was spent over a window: training (jobs that reached their provider; the provider's actual cost when
    reported, else the catalog's estimate, marked estimated) and inference (the cost_usd feedback reported; drafts
    without one are counted as unpriced, never guessed), by provider, base model, model and version, per day and
    per week; and each fine-tuned version's ROI against its base model on the same agent (price saved per draft
    plus acceptance lift times the value of an accepted draft), net benefit per day and payback days, or the
    reason they cannot be computed."""
    return call_core(
        ctx, "cost_summary", {"window": window},
        lambda svc, actor: summarize_costs(
            svc, span=window_span(window, as_of=today(svc.clock(), svc.settings.timezone))
        ),
    )  # fmt: skip


# A second request for the same agent is refused while the first is open: not idempotent, never destructive.
REQUESTS = Effect(read_only=False, idempotent=False)


@TOOLS.tool(title="Propose retraining", effect=REQUESTS)
def propose_retrain(
    ctx: Context,
    agent: Annotated[
        str, Field(description="The agent whose drafts the new corrections are (feedback's `agent`).", min_length=1,
                   max_length=ID_LIMIT),
    ],
) -> RetrainProposal:  # fmt: skip
    """Request retraining an agent on the corrections (finals that differ from the draft) that arrived since its
    last dataset version: the next version of that dataset and a training job on the agent's last provider and
    base model, with the cost estimate. This only opens an approval request; a human approver decides it, and
    approving builds the version and launches the job. Refused when there are no new corrections, or while the
    agent has a proposal pending or a job from one running."""
    return call_core(
        ctx, "propose_retrain", {"agent": agent},
        lambda svc, actor: request_retrain(svc, agent=agent, actor=actor),
    )  # fmt: skip


# Acceptance, edit patterns and alerts ------------------------------------------------------------------------

AgentName = Annotated[
    str, Field(description="The agent, as feedback's `agent` names it.", min_length=1, max_length=ID_LIMIT)
]


@TOOLS.tool(title="Agent performance", effect=READS)
def agent_performance(
    ctx: Context,
    agent: AgentName,
    window: Annotated[
        Window, Field(description="Days to cover, ending today in FINETUNE_TIMEZONE: 7d, 30d, 90d or all.")
    ] = Window.DAYS_30,
    by: Annotated[
        Literal["version", "intent", "template"] | None,
        Field(description="Also break acceptance down by model version, intent or prompt template."),
    ] = None,
    compare_with: Annotated[
        str | None,
        Field(description="Compare with this other agent over the same days (differences tested).",
              max_length=ID_LIMIT),
    ] = None,
    previous: Annotated[
        bool, Field(description="Compare with this agent's previous window of the same length instead.")
    ] = False,
) -> AgentPerformance:  # fmt: skip
    """How one agent's drafts fare over a window: acceptance (the mean share of each draft users kept) with its
    interval, the share sent unedited, ratings, volume and the change against the window before; its acceptance on
    each day; its best and worst intents; optionally a breakdown by version, intent or template, and a comparison
    with another agent or its previous window, tested (Welch's t-test on daily acceptance, z-tests on the unedited
    share and thumbs up, Holm's correction). Read from daily rollups brought up to date first."""
    args = {"agent": agent, "window": window, "by": by, "compare_with": compare_with, "previous": previous}
    return call_core(
        ctx, "agent_performance", args,
        lambda svc, actor: performance_of(
            svc, agent=agent, window=window, by=by, compare_with=compare_with, previous=previous
        ),
    )  # fmt: skip


@TOOLS.tool(title="Improvement opportunities", effect=READS)
def improvement_opportunities(
    ctx: Context,
    agent: Annotated[
        str | None, Field(description="One agent; every agent with mined edits when left out.", max_length=ID_LIMIT)
    ] = None,
    limit: Annotated[int, Field(description="Patterns per agent, most frequent first.", ge=1, le=50)] = 10,
) -> Opportunities:
    """The edits users keep making to an agent's drafts, turned into suggestions and actions: each phrase they
    delete or add with its support (edited drafts showing it), frequency, lift over drafts sent unedited, an example
    edit and its category (filler, hedging, tone, length, formatting, content), a suggestion, and the actions that
    fit, each naming the finetune command that takes it: add the examples to the next version of the agent's DPO
    pairs dataset (`analytics dpo-pairs`; with build_dataset, filters.edit_phrases selects the same examples), or
    open a prompt experiment on its templates (`analytics prompt-experiment`; create_experiment with templates).
    People run those; this tool only reads."""
    return call_core(
        ctx, "improvement_opportunities", {"agent": agent, "limit": limit},
        lambda svc, actor: opportunities_of(svc, agent=agent, limit=limit),
    )  # fmt: skip


@TOOLS.tool(title="List alerts", effect=READS)
def list_alerts(
    ctx: Context,
    include_resolved: Annotated[bool, Field(description="Resolved alerts too, not only open ones.")] = False,
) -> AlertList:
    """Regression alerts from the daily check (an agent's acceptance dropped, or its latency or cost per draft
    rose, significantly against the weeks before), newest first, each with its evidence (both windows' values and
    volumes, Welch's test on daily values) and attribution (the model version, template or intent whose share of
    traffic moved, since which day)."""
    return call_core(
        ctx, "list_alerts", {"include_resolved": include_resolved},
        lambda svc, actor: alert_list(svc, include_resolved=include_resolved),
    )  # fmt: skip

"""A/B experiment tools: agents start an online experiment on a model alias's canary (or two templates) and read
where it stands: each arm's numbers, the tests, the split check, the sample size and the verdict."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from core.analytics import TemplateComparison, TemplateReport, Window
from core.analytics import compare_templates as compare_two
from core.analytics import list_templates as template_report
from core.evaluation import ExperimentReport, experiment_report
from core.evaluation import create_experiment as create
from core.vocabulary import ExperimentMetric
from mcp_server.tools import ID_LIMIT, READS, Effect, Toolbox, call_core

TOOLS = Toolbox()

# A second call for the same canary is refused while the first experiment runs: not idempotent, never destructive.
STARTS = Effect(read_only=False, idempotent=False)

ExperimentId = Annotated[
    str, Field(description="The experiment id (ab_...), as create_experiment answers it.", min_length=1,
               max_length=ID_LIMIT),
]  # fmt: skip
MetricName = Annotated[
    ExperimentMetric,
    Field(description="acceptance (share of drafts accepted), mean_acceptance, edit_distance (lower is better), "
          "rating or latency (lower is better)."),
]  # fmt: skip


@TOOLS.tool(title="Create experiment", effect=STARTS)
def create_experiment(
    ctx: Context,
    name: Annotated[
        str, Field(description="The registered model whose alias's canary is tested, or with `templates` the agent "
                   "whose templates are compared.", min_length=1, max_length=ID_LIMIT),
    ],
    alias: Annotated[
        str | None,
        Field(description="The alias whose canary (treatment) is tested against its stable version (control); "
              "production when neither this nor `templates` is given.", max_length=ID_LIMIT),
    ] = None,
    templates: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]] | None,
        Field(description="Compare two prompt templates of agent `name` instead: [control, treatment], as the "
              "feedback's `template` names them.", min_length=2, max_length=2),
    ] = None,
    metric: MetricName = ExperimentMetric.ACCEPTANCE,
    secondary: Annotated[
        list[MetricName],
        Field(description="Secondary metrics, also tested (Holm-adjusted with the primary one).", max_length=4),
    ] = [],  # noqa: B006 - pydantic copies defaults; the schema shows an empty list
    alpha: Annotated[float, Field(description="Significance level.", gt=0, lt=0.5)] = 0.05,
    effect_points: Annotated[
        float,
        Field(description="The change of the acceptance rate, in percentage points, to plan the sample size for.",
              gt=0, lt=50),
    ] = 5.0,
    split: Annotated[
        int | None,
        Field(description="With `templates`: the treatment's share in percent (default 50). A canary's split is "
              "its share.", ge=1, le=99),
    ] = None,
) -> ExperimentReport:  # fmt: skip
    """Start an online A/B experiment on the outcomes that name what served them (feedback's model_version and arm,
    or template): a model alias's canary against its stable version, split as the canary share says, or two
    templates of an agent. The answer is the experiment with its analysis so far; the verdict uses an
    always-valid sequential test, so checking it often with get_experiment is fine."""
    args = {"name": name, "alias": alias, "templates": templates, "metric": metric, "secondary": secondary}
    return call_core(
        ctx, "create_experiment", args,
        lambda svc, actor: create(
            svc, actor=actor, name=name, alias=alias, templates=templates, metric=metric, secondary=secondary,
            alpha=alpha, effect=effect_points / 100, split=split,
        ),
    )  # fmt: skip


@TOOLS.tool(title="Get experiment", effect=READS)
def get_experiment(ctx: Context, experiment_id: ExperimentId) -> ExperimentReport:
    """One A/B experiment: per arm each metric's rate or mean with its interval, the fixed-horizon and always-valid
    tests of the difference with Holm's adjustment, the split check (a mismatch blocks any verdict), the sample
    size and weeks a decision needs at the observed volume, and the verdict (winner, loser, inconclusive) with
    its reason."""
    return call_core(
        ctx, "get_experiment", {"experiment_id": experiment_id},
        lambda svc, actor: experiment_report(svc, experiment_id),
    )  # fmt: skip


TemplateName = Annotated[
    str, Field(description="A prompt template, as the feedback's `template` names it (e.g. greet-v2).", min_length=1,
               max_length=256),
]  # fmt: skip
AgentName = Annotated[
    str | None,
    Field(description="The agent whose templates are read; default: every agent (compare: the one agent whose "
          "feedback names both templates).", max_length=ID_LIMIT),
]  # fmt: skip
WindowName = Annotated[
    Window, Field(description="Days covered, ending today in FINETUNE_TIMEZONE: 7d, 30d, 90d or all.")
]


@TOOLS.tool(title="List templates", effect=READS)
def list_templates(ctx: Context, agent: AgentName = None, window: WindowName = Window.DAYS_30) -> TemplateReport:
    """Every prompt template of an agent (or of every agent) over a window, from the feedback that names it: events
    and days served, acceptance (mean share of each draft kept) with its interval, unedited share with its interval,
    mean rating, cost per event and mean latency. Events naming no template are a row of their own."""
    return call_core(
        ctx, "list_templates", {"agent": agent, "window": window},
        lambda svc, actor: template_report(svc, agent=agent, window=window),
    )  # fmt: skip


@TOOLS.tool(title="Compare templates", effect=READS)
def compare_templates(
    ctx: Context, a: TemplateName, b: TemplateName, agent: AgentName = None, window: WindowName = Window.DAYS_30,
) -> TemplateComparison:  # fmt: skip
    """Template `b` (candidate) against template `a` (baseline) of one agent over a window: Welch's t-test on the
    daily mean acceptance and on the daily mean rating and the two-proportion z-test on the unedited share, each with
    its interval of the difference, Holm's correction across them, and the verdict on `b` (winner, loser,
    inconclusive) in one sentence."""
    return call_core(
        ctx, "compare_templates", {"a": a, "b": b, "agent": agent, "window": window},
        lambda svc, actor: compare_two(svc, a=a, b=b, agent=agent, window=window),
    )  # fmt: skip

"""Analytics commands, shared by `finetune` and `/finetune`: the `analytics` group of reports.

`analytics costs --window 30d` is the cost ledger (training and inference, by
provider, base model, model and version) with each fine-tuned version's ROI
against its base model. `retrain AGENT` proposes the agent's next dataset
version and training job now, as an approval request. The callbacks only
parse and call.
"""

from __future__ import annotations

import copy

import click

from bot.commands import CONTEXT, Invocation, json_option
from core.analytics import (
    BREAKDOWNS,
    PREVIOUS,
    AcceptanceReport,
    AcceptanceStats,
    AgentPerformance,
    Alert,
    AlertList,
    CostSummary,
    IntentRanking,
    Opportunities,
    PairsAdded,
    Pattern,
    PhraseKind,
    PromptExperiment,
    RetrainProposal,
    Roi,
    Span,
    Window,
    add_dpo_pairs,
    agent_performance,
    agents_overview,
    alert_list,
    cost_summary,
    improvement_opportunities,
    open_prompt_experiment,
    request_retrain,
    today,
    window_span,
)
from core.evaluation import MeanTest, ProportionTest, points
from core.vocabulary import AlertKind, values

WINDOW = click.Choice(values(Window))


# Text shared by the terminal and Slack (costs) ----------------------------------------------------------


def usd(amount: float | None, *, estimated: bool = False) -> str:
    """`$3.10`, `$0.0042` below a cent, `-` when unknown; `(est.)` after an estimate."""
    if amount is None:
        return "-"
    shown = f"${amount:,.2f}" if abs(amount) >= 0.01 or amount == 0 else f"${amount:,.4f}"
    return shown + (" (est.)" if estimated else "")


def span_text(summary: CostSummary) -> str:
    span = summary.span
    return f"{span.start} to {span.end}" if span.start else f"up to {span.end}"


def roi_text(roi: Roi) -> str:
    """One version's ROI in a sentence: lift, value per draft, net per day, payback; or why it cannot be told."""
    head = f"{roi.version} on {roi.agent}"
    if roi.value_per_event_usd is None:
        return f"{head}: {roi.reason}"
    lift = f"{roi.lift_points:+.1f} points" if roi.lift_points is not None else "-"
    payback = f"pays back in {roi.payback_days:,.1f} days" if roi.payback_days is not None else (roi.reason or "")
    return (
        f"{head}: lift {lift} ({_pct(roi.base_acceptance)} -> {_pct(roi.acceptance)}), "
        f"{usd(roi.value_per_event_usd)} a draft x {roi.daily_events:,.1f} drafts/day = "
        f"{usd(roi.net_benefit_per_day_usd)}/day; training {usd(roi.training_usd, estimated=roi.training_estimated)}; "
        f"{payback}"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


# Commands ------------------------------------------------------------------------------------------------


@click.group("analytics", context_settings=CONTEXT, short_help="Analytics: costs and ROI.")
def analytics_group() -> None:
    """The analytics group: spend, ROI and how the agents' drafts fare. Each subcommand is one report."""


@analytics_group.command("costs", context_settings=CONTEXT, short_help="Training and inference spend, and ROI.")
@click.option("--window", type=WINDOW, default=Window.DAYS_30.value, show_default=True,
              help="Days to cover, ending today (FINETUNE_TIMEZONE).")  # fmt: skip
@json_option
@click.pass_obj
def analytics_costs(inv: Invocation, window: str) -> CostSummary:
    """What was spent over --window: training (jobs that reached their provider: the actual cost when the provider
    reported one, else the catalog's estimate, marked est.) and inference (the cost_usd feedback reported) by
    provider, base model, model and version, per day and week; and each fine-tuned version's ROI against its base
    model on the same agent: the price saved per draft plus the acceptance lift times the value of an accepted draft
    (FINETUNE_MINUTES_SAVED_PER_ACCEPTED_DRAFT x FINETUNE_COST_PER_MINUTE_USD), per day at its recent volume, and
    the days until it pays its training back."""
    as_of = today(inv.services.clock(), inv.settings.timezone)
    return cost_summary(inv.services, span=window_span(window, as_of=as_of))


# Retraining ----------------------------------------------------------------------------------------------


@click.command("retrain", context_settings=CONTEXT, short_help="Propose retraining an agent on its new corrections.")
@click.argument("agent")
@json_option
@click.pass_obj
def retrain(inv: Invocation, agent: str) -> RetrainProposal:
    """Propose retraining AGENT now, as an approval request: the next version of its dataset (its last version's
    recipe, with the corrections that arrived since) and a job on its last job's provider and base model, with the
    cost estimate. Approving it builds the version and launches the job; budgets and spend limits still apply."""
    return request_retrain(inv.services, agent=agent, actor=inv.actor)


# Acceptance, edit patterns and alerts: text shared by the terminal and Slack ------------------------------

BY = click.Choice(list(BREAKDOWNS))


def pct(value: float | None) -> str:
    """`61.2%`, or `-` when there is nothing to measure."""
    return "-" if value is None else f"{value:.1%}"


def stats_text(row: AcceptanceStats) -> str:
    """`acceptance 61.2% [59.0-63.3%] · unedited 40.1% · rating 4.10 (230 rated) · 1,234 drafts`."""
    interval = row.acceptance_interval
    shown = f" [{interval.low:.1%}-{interval.high:.1%}]" if interval else ""
    rating = f"{row.rating:.2f} ({row.rated:,} rated)" if row.rating is not None else "none"
    return (
        f"acceptance {pct(row.acceptance)}{shown} · unedited {pct(row.unedited_share)} · rating {rating}"
        f" · {row.events:,} drafts"
    )


def trend_text(row: AcceptanceStats, window: Window) -> str:
    """`−12.3 points against the 30 days before (64.0%)`; empty for all time."""
    trend = row.trend
    if trend is None:
        return ""
    before = f"the {window.removesuffix('d')} days before"
    if trend.change is None:
        return f"no feedback in {before}" if not trend.previous_events else f"nothing to compare in {before}"
    return f"{points(trend.change)} against {before} ({pct(trend.previous_acceptance)})"


def span_words(span: Span) -> str:
    """`2026-03-01 to 2026-03-30`, or `up to 2026-03-30` for all time."""
    return f"{span.start} to {span.end}" if span.start else f"up to {span.end}"


def intents_text(ranking: IntentRanking) -> str:
    """`best refund 80.1% (n=123), shipping 75.0% (n=98); worst billing 41.0% (n=60)`."""

    def listed(rows: list[AcceptanceStats]) -> str:
        return ", ".join(f"{row.value} {pct(row.acceptance)} (n={row.events:,})" for row in rows) or "-"

    text = f"best {listed(ranking.best)}; worst {listed(ranking.worst)}"
    if ranking.too_few:
        text += f" ({ranking.too_few} with fewer than {ranking.min_events} drafts left out)"
    return text


def compared_text(result: AgentPerformance) -> str:
    """`against sales 2026-03-01..2026-03-30`, or `against support 2026-01-30..2026-02-28 (the previous 30 days)`."""
    if result.comparison is None:
        return ""
    baseline = result.comparison.baseline.value or ""
    if result.compared_with == PREVIOUS:
        return f"against {baseline} (the previous {result.window.removesuffix('d')} days)"
    return f"against {baseline}"


def comparison_lines(result: AgentPerformance) -> list[str]:
    """Each tested difference: `acceptance (Welch on daily means): 61.2% against 70.0%, −8.8 points, p 0.003, Holm
    0.006 (significant)`."""
    comparison = result.comparison
    if comparison is None:
        return []
    adjusted = {entry.name: entry for entry in comparison.adjusted}
    tests: tuple[tuple[str, str, MeanTest | ProportionTest | None], ...] = (
        ("acceptance", "acceptance (Welch on daily means)", comparison.acceptance),
        ("unedited", "unedited share (z-test)", comparison.unedited),
        ("thumbs_up", "thumbs up among thumbs (z-test)", comparison.thumbs_up),
    )
    lines = []
    for name, label, test in tests:
        if test is None:
            lines.append(f"{label}: too little data to test")
            continue
        if isinstance(test, MeanTest):
            mine, theirs = test.candidate_mean, test.baseline_mean
        else:
            mine, theirs = test.candidate_rate, test.baseline_rate
        holm = adjusted.get(name)
        verdict = ""
        if holm is not None:
            verdict = f", Holm {holm.adjusted_p_value:.2g} ({'significant' if holm.significant else 'not significant'})"
        lines.append(
            f"{label}: {pct(mine)} against {pct(theirs)}, {points(test.difference)}, p {test.p_value:.2g}{verdict}"
        )
    return lines


def pattern_text(pattern: Pattern) -> str:
    """`users delete 'let me analyze this' · filler removed · 95% of edited drafts (1,234) · lift 12.3`."""
    verb = "delete" if pattern.kind == PhraseKind.DELETED else "add"
    lift = f"lift {pattern.lift:.1f}" if pattern.lift is not None else "lift not known yet"
    return (
        f"users {verb} '{pattern.phrase}' · {pattern.category} · {pattern.frequency:.0%} of edited drafts"
        f" ({pattern.support:,}) · {lift}"
    )


def example_text(pattern: Pattern, limit: int = 160) -> str:
    """The example edit: `-"Let me analyze this. " +"" (event support-3-12)`."""
    example = pattern.example

    def clipped(text: str) -> str:
        return text if len(text) <= limit else text[: limit - 1] + "\u2026"

    return f'-"{clipped(example.deleted)}" +"{clipped(example.added)}" (event {example.event})'


def alert_facts(alert: Alert) -> list[tuple[str, str]]:
    """An alert's evidence as label and text: both windows, the test, the attribution, its state."""
    evidence = alert.evidence
    measured = evidence.get("measurement") or {}
    facts = []
    for side in ("recent", "baseline"):
        span, value = measured.get(side) or {}, measured.get(f"{side}_value")
        events = measured.get(f"{side}_events") or 0
        shown = f"{_metric_value(alert.kind, value)} from {span.get('start')} to {span.get('end')} ({events:,} events)"
        facts.append((side.capitalize(), shown))
    test = measured.get("test")
    facts.append(("Test", f"Welch's t-test on daily values, p = {test['p_value']:.2g}" if test else "too few days"))
    cause = evidence.get("attribution")
    if cause:
        since = f" since {cause['since']}" if cause.get("since") else ""
        share = f"{cause['recent_share']:.0%} of recent events, {cause['baseline_share']:.0%} before"
        facts.append(("Attributed to", f"{cause['dimension']} {cause['value'] or '(none)'}{since} ({share})"))
    else:
        facts.append(("Attributed to", "nothing: version, template and intent mix did not change"))
    state = f"resolved {alert.resolved_at[:10]}" if alert.resolved_at else "open"
    facts.append(("State", f"{alert.severity}, {state}, raised {alert.created_at[:10]}"))
    return facts


def _metric_value(kind: AlertKind, value: float | None) -> str:
    if value is None:
        return "-"
    if kind == AlertKind.ACCEPTANCE_DROP:
        return pct(value)
    return f"{value:,.0f} ms" if kind == AlertKind.LATENCY_SPIKE else f"${value:,.4f}"


# Acceptance, edit patterns and alerts: commands ------------------------------------------------------------

_window = click.option(
    "--window", type=WINDOW, default=Window.DAYS_30.value, show_default=True,
    help="Days to cover, ending today (FINETUNE_TIMEZONE).",
)  # fmt: skip
_limit = click.option("--limit", type=click.IntRange(1, 50), default=10, show_default=True, help="Patterns per agent.")


@analytics_group.command("agents", context_settings=CONTEXT, short_help="Every agent: acceptance, rating, change.")
@_window
@json_option
@click.pass_obj
def analytics_agents(inv: Invocation, window: str) -> AcceptanceReport:
    """Every agent over --window: acceptance (the mean share of each draft kept) with its interval, the share sent
    unedited, the mean rating, the volume, and the change of acceptance against the window of the same length
    before (week over week with 7d)."""
    return agents_overview(inv.services, window=window)


@analytics_group.command("agent", context_settings=CONTEXT, short_help="One agent: trend, intents, breakdown.")
@click.argument("name")
@_window
@click.option("--by", type=BY, help="Break acceptance down by version, intent or template.")
@click.option("--compare-with", metavar="AGENT", help="Compare with another agent over the same days.")
@click.option("--previous", is_flag=True, help="Compare with this agent's previous window instead.")
@json_option
@click.pass_obj
def analytics_agent(
    inv: Invocation, name: str, window: str, by: str | None, compare_with: str | None, previous: bool
) -> AgentPerformance:
    """Agent NAME over --window: its numbers and trend, its daily acceptance (a chart in Slack), its best and worst
    intents, a breakdown --by version, intent or template, and with --compare-with AGENT or --previous the
    differences tested (Welch's t-test on daily acceptance, z-tests on the unedited share and thumbs up, Holm's
    correction)."""
    return agent_performance(
        inv.services, agent=name, window=window, by=by, compare_with=compare_with, previous=previous
    )


@analytics_group.command("patterns", context_settings=CONTEXT, short_help="Edit patterns, suggestions, actions.")
@click.option("--agent", metavar="AGENT", help="One agent (default: every agent).")
@_limit
@json_option
@click.pass_obj
def analytics_patterns(inv: Invocation, agent: str | None, limit: int) -> Opportunities:
    """The phrases users delete from each agent's drafts and add to them, most frequent first: how often (support,
    share of edited drafts), how much more often than in drafts sent unedited (lift), an example edit, the category
    and a suggestion, with the command of each action that fits (add to DPO pairs, open a prompt experiment)."""
    return improvement_opportunities(inv.services, agent=agent, limit=limit)


@analytics_group.command("alerts", context_settings=CONTEXT, short_help="Regression alerts and their evidence.")
@click.option("--all", "include_resolved", is_flag=True, help="Resolved alerts too.")
@json_option
@click.pass_obj
def analytics_alerts(inv: Invocation, include_resolved: bool) -> AlertList:
    """Open regression alerts (acceptance drops, latency and cost spikes the daily check found), newest first, with
    their evidence (both windows, the test) and what changed with them (version, template or intent)."""
    return alert_list(inv.services, include_resolved=include_resolved)


@analytics_group.command("dpo-pairs", context_settings=CONTEXT, short_help="Add a pattern's edits to DPO pairs.")
@click.argument("agent")
@click.argument("phrase")
@click.option("--dataset", metavar="NAME", help="The dataset of pairs [AGENT-pairs].")
@json_option
@click.pass_obj
def analytics_dpo_pairs(inv: Invocation, agent: str, phrase: str, dataset: str | None) -> PairsAdded:
    """Build the next version of AGENT's pairs dataset with the edited drafts that show pattern PHRASE, besides the
    patterns it already holds (its recipe selects them by `edit_phrases`); `jobs launch --method dpo` trains on
    them as preference pairs, the user's final chosen over the draft."""
    return add_dpo_pairs(inv.services, actor=inv.actor, agent=agent, phrase=phrase, dataset=dataset)


@analytics_group.command(
    "prompt-experiment", context_settings=CONTEXT, short_help="Open a template experiment for a pattern."
)
@click.argument("agent")
@click.argument("phrase")
@click.option("--control", metavar="TEMPLATE", help="The template served now [the one most feedback names].")
@click.option("--treatment", metavar="TEMPLATE", help="The new template's name [named after the change].")
@click.option("--split", type=click.IntRange(1, 99), default=50, metavar="PCT", show_default=True,
              help="The treatment's share of conversations.")  # fmt: skip
@json_option
@click.pass_obj
def analytics_prompt_experiment(
    inv: Invocation, agent: str, phrase: str, control: str | None, treatment: str | None, split: int
) -> PromptExperiment:
    """Start an A/B experiment of AGENT's templates for pattern PHRASE: --control against a --treatment template
    whose prompt makes the suggested change. Serve the treatment to --split percent of conversations with its name
    as the feedback's template; `ab ID` tells whether the change helps."""
    return open_prompt_experiment(
        inv.services, actor=inv.actor, agent=agent, phrase=phrase, control=control, treatment=treatment, split=split
    )


def _short_form(command: click.Command, name: str, short_help: str) -> click.Command:
    """`agent ...` is `analytics agent ...`, one level up."""
    short = copy.copy(command)
    short.name = name
    short.short_help = short_help
    return short


agent_command = _short_form(analytics_agent, "agent", "Agent: agent NAME [--window W] [--by version|intent|template].")
alerts_command = _short_form(analytics_alerts, "alerts", "Alerts: the open regression alerts [--all].")


@click.command("patterns", context_settings=CONTEXT, short_help="Patterns: patterns [AGENT], with their actions.")
@click.argument("agent", required=False)
@_limit
@json_option
@click.pass_obj
def patterns_command(inv: Invocation, agent: str | None, limit: int) -> Opportunities:
    """AGENT's edit patterns (every agent's without one) with suggestions and actions, as `analytics patterns`."""
    return improvement_opportunities(inv.services, agent=agent, limit=limit)


SHARED: tuple[click.Command, ...] = (analytics_group, retrain, agent_command, alerts_command, patterns_command)

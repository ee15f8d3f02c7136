"""Analytics on a terminal: the cost ledger and ROI, retraining proposals, every agent and one in detail, edit
patterns with their actions, and regression alerts."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.commands.analytics import (
    alert_facts,
    compared_text,
    comparison_lines,
    example_text,
    intents_text,
    pattern_text,
    pct,
    roi_text,
    span_text,
    span_words,
    stats_text,
    trend_text,
    usd,
)
from bot.terminal.output import render
from core.analytics import (
    AcceptanceReport,
    AgentPerformance,
    AlertList,
    CostSummary,
    Opportunities,
    PairsAdded,
    PromptExperiment,
    RetrainProposal,
    Window,
)
from core.evaluation import points


def _print(console: Console, text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


@render.register
def _(result: CostSummary, console: Console) -> None:
    training = usd(result.training_usd, estimated=result.training_estimated)
    _print(
        console,
        f"[bold]Costs {span_text(result)}[/bold]: {usd(result.total_usd)} in all; training {training}, "
        f"inference {usd(result.inference_usd)}",
    )
    if result.rows:
        for row in result.rows:
            what = " ".join(part for part in (row.provider, row.base_model) if part) or "drafts naming no version"
            name = f"{row.model} {row.version}" if row.version else row.model
            count = f"{row.events:,} {'job(s)' if row.kind == 'training' else 'draft(s)'}"
            unpriced = f", {row.unpriced_events:,} unpriced" if row.unpriced_events else ""
            _print(
                console,
                f"  {row.kind:<9} [bold]{escape(name)}[/bold] ({escape(what)}): "
                f"{usd(row.usd, estimated=row.estimated)} over {count}{unpriced} [dim]- {escape(row.basis)}[/dim]",
            )
    else:
        _print(console, "Nothing spent in this window.")
    if result.roi:
        _print(console, "[bold]ROI against the base model[/bold]")
        for roi in result.roi:
            _print(console, f"  {escape(roi_text(roi))}")
    for note in result.notes:
        _print(console, f"[dim]{escape(note)}[/dim]")


@render.register
def _(result: RetrainProposal, console: Console) -> None:
    approval = result.approval
    _print(console, f"[bold]{escape(result.text)}[/bold]")
    _print(
        console,
        f"  {approval.id} waits for an approver: `finetune approve {approval.id}` builds {result.next_version} "
        f"and launches the job; `finetune reject {approval.id} --reason TEXT` drops it.",
    )
    for note in result.estimate.notes:
        _print(console, f"[dim]  {escape(note)}[/dim]")


# Acceptance, edit patterns and alerts -----------------------------------------------------------------------


@render.register
def _(result: AcceptanceReport, console: Console) -> None:
    _print(console, f"[bold]Agents, {span_words(result.span)}[/bold] ({result.window})")
    if not result.rows:
        _print(console, "No feedback in this window: ingest some with `finetune data ingest FILE`.")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("agent", "acceptance", "unedited", "rating", "drafts", "change"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for row in result.rows:
        change = row.trend.change if row.trend else None
        rating = f"{row.rating:.2f}" if row.rating is not None else "-"
        table.add_row(
            escape(row.agent), pct(row.acceptance), pct(row.unedited_share), rating, f"{row.events:,}",
            points(change) if change is not None else "-",
        )  # fmt: skip
    console.print(table)
    if result.window != Window.ALL:
        _print(console, f"[dim]change: acceptance against the {result.window.removesuffix('d')} days before[/dim]")


@render.register
def _(result: AgentPerformance, console: Console) -> None:
    summary = result.summary
    _print(console, f"[bold]{escape(result.agent)}[/bold], {span_words(result.span)} ({result.window})")
    _print(console, f"  {escape(stats_text(summary))}")
    if trend := trend_text(summary, result.window):
        _print(console, f"  trend: {escape(trend)}")
    if result.daily:
        low = min(result.daily, key=lambda d: d.acceptance if d.acceptance is not None else 2)
        high = max(result.daily, key=lambda d: d.acceptance if d.acceptance is not None else -1)
        _print(
            console,
            f"  days: {len(result.daily)} with feedback; lowest {pct(low.acceptance)} on {low.day},"
            f" highest {pct(high.acceptance)} on {high.day}",
        )
    if result.intents is not None:
        _print(console, f"  intents: {escape(intents_text(result.intents))}")
    if result.by is not None:
        _print(console, f"  [bold]by {result.by}[/bold]")
        for row in result.breakdown:
            trend = trend_text(row, result.window)
            shown = f"    {escape(row.value or '(none)')}: {escape(stats_text(row))}"
            _print(console, shown + (f"; {escape(trend)}" if trend else ""))
    if result.comparison is not None:
        _print(console, f"  [bold]{escape(compared_text(result))}[/bold]")
        for line in comparison_lines(result):
            _print(console, f"    {escape(line)}")


@render.register
def _(result: Opportunities, console: Console) -> None:
    if not result.agents:
        _print(console, "No edits mined yet: patterns appear once users edit drafts (`finetune data ingest FILE`).")
    for agent in result.agents:
        _print(
            console,
            f"[bold]{escape(agent.agent)}[/bold]: {agent.edited_drafts:,} edited drafts,"
            f" {agent.unedited_drafts:,} sent unedited",
        )
        if not agent.opportunities:
            _print(console, "  no pattern stands out yet")
        for number, opportunity in enumerate(agent.opportunities, start=1):
            pattern = opportunity.pattern
            _print(console, f"  {number}. {escape(pattern_text(pattern))}")
            _print(console, f"     e.g. {escape(example_text(pattern))}")
            _print(console, f"     suggestion: {escape(pattern.suggestion)}")
            for action in opportunity.actions:
                _print(console, f"     {escape(action.label)}: [cyan]{escape(action.command)}[/cyan]")


@render.register
def _(result: AlertList, console: Console) -> None:
    if not result.alerts:
        none = "No open regression alerts." if result.open_only else "No regression alerts yet."
        _print(console, none + " The daily check runs in `finetune serve`.")
    for alert in result.alerts:
        style = "red" if alert.resolved_at is None else "green"
        _print(console, f"[{style}]#{alert.id} {alert.kind}[/{style}] {escape(alert.agent)}: {escape(alert.message)}")
        for label, text in alert_facts(alert):
            _print(console, f"    {label}: {escape(text)}")


@render.register
def _(result: PairsAdded, console: Console) -> None:
    version = result.version
    verb = "Unchanged" if version.reused else "Built"
    _print(
        console,
        f"{verb} [bold]{version.id}[/bold]: {version.counts.get('examples', 0):,} preference pairs of"
        f" {escape(result.agent)} for {len(result.phrases)} pattern(s): {escape(', '.join(result.phrases))}",
    )
    _print(console, escape(result.next_step))


@render.register
def _(result: PromptExperiment, console: Console) -> None:
    experiment = result.experiment.experiment
    _print(console, f"Started [bold]{experiment.id}[/bold]: {escape(experiment.title)}")
    _print(console, f"  change: {escape(result.change)} ('{escape(result.pattern.phrase)}')")
    _print(console, escape(result.next_step))

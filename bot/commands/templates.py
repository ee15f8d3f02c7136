"""Prompt template commands, shared by `finetune` and `/finetune`: every template's numbers, and two compared.

`templates [--agent A] [--window 30d]` lists each template of an agent (or of
every agent) with its usage, acceptance, unedited share, rating, cost per event
and latency; `templates compare A B [--agent A]` tests template B against
template A. Both fold the newest feedback into the rollups first. The callbacks
only parse and call.
"""

from __future__ import annotations

import click

from bot.commands import CONTEXT, Invocation, json_option
from core.analytics import (
    TemplateComparison,
    TemplateReport,
    TemplateStats,
    TemplateTest,
    Window,
    compare_templates,
    list_templates,
)
from core.evaluation import Interval
from core.vocabulary import values

WINDOW = click.Choice(values(Window))

# Text shared by the terminal and Slack -----------------------------------------------------------


def template_name(stats: TemplateStats) -> str:
    return stats.template or "(no template)"


def share_text(value: float | None, interval: Interval | None = None) -> str:
    """`64.2% (58.1-70.0%)`, or `-`."""
    if value is None:
        return "-"
    shown = f"{value:.1%}"
    return shown + (f" ({interval.low:.1%}-{interval.high:.1%})" if interval else "")


def number_text(value: float | None, *, digits: int = 2, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def cost_text(value: float | None) -> str:
    """`$0.0042` per event, or `-` when no event reported a cost."""
    return "-" if value is None else f"${value:,.4f}"


def days_text(stats: TemplateStats) -> str:
    """`12 days, 2026-11-02..2026-11-20`."""
    return f"{stats.days} day{'s' if stats.days != 1 else ''}, {stats.first_day}..{stats.last_day}"


def span_text(report: TemplateReport | TemplateComparison) -> str:
    span = report.span
    return f"{span.start} to {span.end}" if span.start else f"up to {span.end}"


def value_text(test: TemplateTest, side: str) -> str:
    """One side's share or mean and its observations: `61.0% (n=340 drafts)`, `0.812 (n=9 days)`."""
    value = getattr(test, side)
    count = getattr(test, f"{side}_n")
    unit = "drafts" if test.rate else "days"
    if value is None:
        return f"- (n={count} {unit})"
    shown = f"{value:.1%}" if test.rate else f"{value:.3g}"
    return f"{shown} (n={count:,} {unit})"


def difference_text(test: TemplateTest) -> str:
    """`+4.2 points [+1.0, +7.4]`, `+0.061 [+0.010, +0.112]`, or the reason no test ran."""
    if test.difference is None:
        return f"not tested: {test.note}" if test.note else "not tested"
    interval = test.interval
    if test.rate:
        shown = f"{test.difference * 100:+.1f} points"
        bounds = f" [{interval.low * 100:+.1f}, {interval.high * 100:+.1f}]" if interval else ""
    else:
        shown = f"{test.difference:+.3g}"
        bounds = f" [{interval.low:+.3g}, {interval.high:+.3g}]" if interval else ""
    return shown + bounds


def p_text(test: TemplateTest) -> str:
    """`p 0.0031, Holm 0.0093`."""
    if test.p_value is None:
        return ""
    adjusted = f", Holm {test.adjusted_p_value:.2g}" if test.adjusted_p_value is not None else ""
    return f"p {test.p_value:.2g}{adjusted}"


# Commands ----------------------------------------------------------------------------------------

_agent = click.option("--agent", metavar="AGENT", help="Only this agent's templates [every agent].")
_window = click.option(
    "--window", type=WINDOW, default=Window.DAYS_30.value, show_default=True,
    help="Days to cover, ending today (FINETUNE_TIMEZONE).",
)  # fmt: skip


@click.group(
    "templates",
    context_settings=CONTEXT,
    invoke_without_command=True,
    short_help="Prompt templates: each one's numbers; compare two.",
)
@_agent
@_window
@json_option
@click.pass_context
def templates_group(ctx: click.Context, agent: str | None, window: str) -> TemplateReport | None:
    """Without a subcommand, list every prompt template of --agent (or of every agent) over --window: events and
    days served, acceptance (mean share of each draft kept) with its interval, unedited share, mean rating, cost per
    event and mean latency. `templates compare A B` tests two of them."""
    if ctx.invoked_subcommand is None:
        return list_templates(ctx.obj.services, agent=agent, window=window)
    return None


@templates_group.command("compare", context_settings=CONTEXT, short_help="Template B against template A, tested.")
@click.argument("a")
@click.argument("b")
@_agent
@_window
@json_option
@click.pass_obj
def templates_compare(inv: Invocation, a: str, b: str, agent: str | None, window: str) -> TemplateComparison:
    """Compare template B (the candidate) with template A (the baseline) of one agent over --window: Welch's t-test
    on the daily mean acceptance and on the daily mean rating, the two-proportion z-test on the unedited share, each
    with its interval, Holm's correction across them, and the verdict in one sentence. Without --agent, the agent
    whose feedback names both templates."""
    return compare_templates(inv.services, a=a, b=b, agent=agent, window=window)


SHARED: tuple[click.Command, ...] = (templates_group,)

"""What people ask of analytics, fresh: every agent at a glance, one agent in detail, the alerts.

Each reading first folds in the feedback that arrived since the scheduler's
last run (`refresh`: the incremental `roll_up`, and `mine_patterns` where edit
patterns are read), so nobody reads numbers older than their last ingest.
These are cheap steps over the new feedback rows only; without `finetune
serve` the first reading after a large ingest does the work the scheduler
would have done.

Days end with today in FINETUNE_TIMEZONE, by the services' clock.

`agent_performance` puts together what one agent's page shows: its numbers
over the window with the trend against the window before, its daily
acceptance (the chart), its best and worst intents, a breakdown by version,
intent or template, and optionally a comparison tested for significance
(`acceptance.compare`): with another agent over the same days, or with its own
previous window.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from core.analytics import db
from core.analytics.acceptance import (
    DEFAULT_MIN_EVENTS,
    AcceptanceReport,
    AcceptanceStats,
    Comparison,
    Dimension,
    IntentRanking,
    Slice,
    Span,
    Totals,
    Window,
    acceptance_report,
    compare,
    intent_ranking,
    no_feedback,
    parse_window,
    window_span,
)
from core.analytics.patterns import mine_patterns
from core.analytics.regressions import Alert, all_alerts, open_alerts
from core.analytics.rollups import roll_up, today
from core.errors import InvalidInput
from core.services import Services

# What `--by` takes, in the words people use, and the rollup dimension each one is.
BREAKDOWNS: dict[str, Dimension] = {
    "version": Dimension.MODEL_VERSION,
    "intent": Dimension.INTENT,
    "template": Dimension.TEMPLATE,
}
PREVIOUS = "previous"  # what `compared_with` says when an agent is compared with its own previous window


def refresh(svc: Services, *, patterns: bool = False) -> date:
    """Fold in the feedback that arrived since the last run (and mine its edits); today's date, the `as_of`."""
    roll_up(svc.store, timezone=svc.settings.timezone)
    if patterns:
        mine_patterns(svc.store)
    return today(svc.clock(), svc.settings.timezone)


def agents_overview(svc: Services, *, window: Window | str = Window.DAYS_30) -> AcceptanceReport:
    """Every agent over `window` to today: acceptance, unedited share, rating, volume and the change against the
    window of the same length before it."""
    window = parse_window(window)
    return acceptance_report(svc.store, window=window, as_of=refresh(svc))


class DailyAcceptance(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: date
    events: int
    acceptance: float | None


class AgentPerformance(BaseModel):
    """One agent over a window: its numbers, its days, its intents, a breakdown and a comparison."""

    model_config = ConfigDict(frozen=True)

    agent: str
    window: Window
    span: Span
    summary: AcceptanceStats = Field(description="The agent's numbers over the window, with the trend.")
    daily: list[DailyAcceptance] = Field(description="Each day of the window that holds feedback, in order.")
    intents: IntentRanking | None = Field(description="Best and worst intents; None when no event names one.")
    by: Dimension | None
    breakdown: list[AcceptanceStats] = Field(description="Per version, intent or template, most events first.")
    compared_with: str | None = Field(description="The other agent, or 'previous' for the window before.")
    comparison: Comparison | None = Field(description="Baseline: the other agent or the previous window.")


def parse_breakdown(value: str | Dimension | None) -> Dimension | None:
    if value is None:
        return None
    if value in BREAKDOWNS:
        return BREAKDOWNS[value]
    if value in BREAKDOWNS.values():
        return Dimension(value)
    raise InvalidInput(
        f"`by` {value!r} is not something an agent's acceptance is broken down by.",
        hint=f"Use one of: {', '.join(BREAKDOWNS)}.",
        argument="by",
    )


def agent_performance(
    svc: Services,
    *,
    agent: str,
    window: Window | str = Window.DAYS_30,
    by: str | Dimension | None = None,
    compare_with: str | None = None,
    previous: bool = False,
    min_events: int = DEFAULT_MIN_EVENTS,
) -> AgentPerformance:
    """One agent over `window` to today (see the module doc); NotFound naming the agents with feedback."""
    window, dimension = parse_window(window), parse_breakdown(by)
    if compare_with is not None and previous:
        raise InvalidInput(
            "compare with another agent or with the previous window, not both.",
            hint="Drop `compare_with` or `previous`.",
            argument="compare_with",
        )
    store, as_of = svc.store, refresh(svc)
    span = window_span(window, as_of=as_of)
    report = acceptance_report(store, window=window, as_of=as_of, agent=agent)
    if not report.rows:
        raise no_feedback(store, agent, span)
    ranking = intent_ranking(store, agent=agent, window=window, as_of=as_of, min_events=min_events)
    has_intents = bool(ranking.best or ranking.worst or ranking.too_few)
    breakdown = []
    if dimension is not None:
        breakdown = acceptance_report(store, window=window, as_of=as_of, by=dimension, agent=agent).rows
    compared, comparison = _comparison(svc, agent, span, compare_with=compare_with, previous=previous)
    return AgentPerformance(
        agent=agent, window=window, span=span, summary=report.rows[0], daily=daily_acceptance(svc, agent, span),
        intents=ranking if has_intents else None, by=dimension, breakdown=breakdown, compared_with=compared,
        comparison=comparison,
    )  # fmt: skip


def _comparison(
    svc: Services, agent: str, span: Span, *, compare_with: str | None, previous: bool
) -> tuple[str | None, Comparison | None]:
    candidate = Slice(agent=agent, span=span)
    if compare_with is not None:
        if compare_with == agent:
            raise InvalidInput(
                f"`compare_with` names {agent!r} itself.",
                hint="Name another agent, or compare with the previous window instead.",
                argument="compare_with",
            )
        return compare_with, compare(svc.store, baseline=Slice(agent=compare_with, span=span), candidate=candidate)
    if previous:
        before = span.before()
        if before is None:
            raise InvalidInput(
                "all time has no previous window to compare with.",
                hint="Choose a window of 7d, 30d or 90d.",
                argument="previous",
            )
        return PREVIOUS, compare(svc.store, baseline=Slice(agent=agent, span=before), candidate=candidate)
    return None, None


def daily_acceptance(svc: Services, agent: str, span: Span) -> list[DailyAcceptance]:
    """The agent's acceptance on each day of `span` that holds feedback."""
    rows = db.rollup_totals(svc.store, group_by=["day"], agent=agent, **span.bounds())
    days = []
    for row in sorted(rows, key=lambda row: row["day"]):
        totals = Totals.of(row)
        days.append(DailyAcceptance(day=date.fromisoformat(row["day"]), events=totals.events,
                                    acceptance=totals.acceptance))  # fmt: skip
    return days


class AlertList(BaseModel):
    model_config = ConfigDict(frozen=True)

    open_only: bool
    alerts: list[Alert] = Field(description="Newest first, each with its evidence and attribution.")


def alert_list(svc: Services, *, include_resolved: bool = False) -> AlertList:
    """The open regression alerts (with `include_resolved`, every alert), newest first."""
    alerts = all_alerts(svc.store) if include_resolved else open_alerts(svc.store)
    return AlertList(open_only=not include_resolved, alerts=alerts)

"""Acceptance analytics, read from the daily rollups (never from feedback itself).

For an agent, or per model version, intent or template, over the last 7, 30
or 90 days or all time (days in FINETUNE_TIMEZONE, ending with `as_of`):

- acceptance: the mean share of each draft that survived into the final text,
  with Student's t interval from the rollups' sums and sums of squares;
- unedited share: drafts sent without any edit, with Wilson's interval;
- rating: the mean rating (1-5) and the thumbs equivalents (4-5 up, 1-2 down);
- volume, mean latency, cost;
- trend: acceptance in this window against the window of the same length
  just before it.

`intent_ranking` names an agent's best and worst intents among those with at
least `min_events` events. `compare` sets two slices (two agents, or one
agent over two periods) side by side and tests the differences with
`core.evaluation.stats`: Welch's t-test on the daily mean acceptance (days
are the observations, so weekday cycles and day-to-day drift count as noise,
not as evidence), the two-proportion z-test on the unedited share and on the
share of thumbs up among thumbs, and Holm's correction across them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.analytics import db
from core.errors import InvalidInput, NotFound
from core.evaluation import DEFAULT_ALPHA, DEFAULT_CONFIDENCE, AdjustedP, Interval, MeanTest, ProportionTest
from core.evaluation import stats as tests
from core.platform.store import Store

DEFAULT_MIN_EVENTS = 30  # an intent needs this many events in the window to be ranked


class Window(StrEnum):
    """How far back analytics look, ending with the `as_of` day."""

    DAYS_7 = "7d"
    DAYS_30 = "30d"
    DAYS_90 = "90d"
    ALL = "all"


WINDOW_DAYS: dict[Window, int | None] = {Window.DAYS_7: 7, Window.DAYS_30: 30, Window.DAYS_90: 90, Window.ALL: None}


class Dimension(StrEnum):
    """What acceptance is broken down by, besides the agent."""

    AGENT = "agent"
    MODEL_VERSION = "model_version"
    INTENT = "intent"
    TEMPLATE = "template"


class Span(BaseModel):
    """Days from `start` to `end`, both included; `start` None means from the first event."""

    model_config = ConfigDict(frozen=True)

    start: date | None
    end: date

    @property
    def days(self) -> int | None:
        return None if self.start is None else (self.end - self.start).days + 1

    def before(self) -> Span | None:
        """The span of the same length just before this one; None for an open-ended span."""
        if self.start is None:
            return None
        return Span(start=self.start - timedelta(days=self.days or 0), end=self.start - timedelta(days=1))

    def bounds(self) -> dict[str, str | None]:
        return {"start": self.start.isoformat() if self.start else None, "end": self.end.isoformat()}


def window_span(window: Window | str, *, as_of: date) -> Span:
    """The days `window` covers when it ends with `as_of`."""
    days = WINDOW_DAYS[parse_window(window)]
    return Span(start=None if days is None else as_of - timedelta(days=days - 1), end=as_of)


def parse_window(value: Window | str) -> Window:
    try:
        return Window(value)
    except ValueError:
        raise InvalidInput(
            f"`window` {value!r} is not a window.",
            hint=f"Use one of: {', '.join(Window)}.",
            argument="window",
        ) from None


def parse_dimension(value: Dimension | str) -> Dimension:
    try:
        return Dimension(value)
    except ValueError:
        raise InvalidInput(
            f"`by` {value!r} is not something acceptance is broken down by.",
            hint=f"Use one of: {', '.join(Dimension)}.",
            argument="by",
        ) from None


# Sums and what they mean ---------------------------------------------------------------------------------


@dataclass
class Totals:
    """The rollups' sums over some rows."""

    events: int = 0
    acceptance_n: int = 0
    acceptance_sum: float = 0.0
    acceptance_sumsq: float = 0.0
    unedited: int = 0
    rated: int = 0
    rating_sum: float = 0.0
    thumbs_up: int = 0
    thumbs_down: int = 0
    latency_n: int = 0
    latency_sum: float = 0.0
    cost_n: int = 0
    cost_sum: float = 0.0

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Totals:
        """The sums of a rollup row (or of rows summed by SQL, which come back as floats)."""
        totals = cls()
        for name in db.MEASURES:
            setattr(totals, name, type(getattr(totals, name))(row[name]))
        return totals

    def add(self, other: Totals) -> None:
        for name in db.MEASURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def acceptance(self) -> float | None:
        return self.acceptance_sum / self.acceptance_n if self.acceptance_n else None

    @property
    def latency_ms(self) -> float | None:
        return self.latency_sum / self.latency_n if self.latency_n else None

    @property
    def cost_per_event(self) -> float | None:
        return self.cost_sum / self.cost_n if self.cost_n else None


class Trend(BaseModel):
    """Acceptance in the window against the window of the same length before it."""

    model_config = ConfigDict(frozen=True)

    previous_acceptance: float | None
    previous_events: int
    change: float | None = Field(description="This window's acceptance minus the previous one's.")


class AcceptanceStats(BaseModel):
    """One agent's (or one of its versions', intents' or templates') acceptance over a window."""

    model_config = ConfigDict(frozen=True)

    agent: str
    value: str | None = Field(description="The version, intent or template; None when broken down by agent only.")
    events: int
    acceptance: float | None
    acceptance_interval: Interval | None = Field(description="Student's t interval; None below two drafts.")
    unedited_share: float | None
    unedited_interval: Interval | None = Field(description="Wilson's interval.")
    rated: int
    rating: float | None
    thumbs_up: int
    thumbs_down: int
    latency_ms: float | None
    cost_usd: float
    trend: Trend | None = Field(description="None for all time.")


class AcceptanceReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    window: Window
    span: Span
    by: Dimension
    agent: str | None
    rows: list[AcceptanceStats] = Field(description="Most events first.")


def describe(
    agent: str, value: str | None, totals: Totals, *, previous: Totals | None, confidence: float
) -> AcceptanceStats:
    """What `totals` say, with intervals at `confidence` and the trend against `previous`."""
    trend = None
    if previous is not None:
        change = None
        if totals.acceptance is not None and previous.acceptance is not None:
            change = totals.acceptance - previous.acceptance
        trend = Trend(previous_acceptance=previous.acceptance, previous_events=previous.events, change=change)
    return AcceptanceStats(
        agent=agent,
        value=value,
        events=totals.events,
        acceptance=totals.acceptance,
        acceptance_interval=mean_interval(totals, confidence),
        unedited_share=totals.unedited / totals.acceptance_n if totals.acceptance_n else None,
        unedited_interval=_wilson(totals.unedited, totals.acceptance_n, confidence),
        rated=totals.rated,
        rating=totals.rating_sum / totals.rated if totals.rated else None,
        thumbs_up=totals.thumbs_up,
        thumbs_down=totals.thumbs_down,
        latency_ms=totals.latency_ms,
        cost_usd=totals.cost_sum,
        trend=trend,
    )


def mean_interval(totals: Totals, confidence: float = DEFAULT_CONFIDENCE) -> Interval | None:
    """Student's t interval of the mean acceptance from the count, sum and sum of squares, clipped to [0, 1]."""
    from scipy import stats as scipy_stats  # here, not at the top: a command that never computes one skips 0.4 s

    n, mean = totals.acceptance_n, totals.acceptance
    if n < 2 or mean is None:
        return None
    variance = max(0.0, (totals.acceptance_sumsq - n * mean * mean) / (n - 1))
    if variance == 0:
        return Interval(low=mean, high=mean, confidence=confidence)
    low, high = scipy_stats.t.interval(confidence, n - 1, loc=mean, scale=math.sqrt(variance / n))
    return Interval(low=max(0.0, float(low)), high=min(1.0, float(high)), confidence=confidence)


def _wilson(successes: int, trials: int, confidence: float) -> Interval | None:
    from statsmodels.stats.proportion import proportion_confint

    if trials == 0:
        return None
    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    return Interval(low=float(low), high=float(high), confidence=confidence)


# Reports ---------------------------------------------------------------------------------------------------


def acceptance_report(
    store: Store,
    *,
    window: Window | str,
    as_of: date,
    by: Dimension | str = Dimension.AGENT,
    agent: str | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> AcceptanceReport:
    """Acceptance per agent (and per `by`) over `window` ending with `as_of`, with the trend."""
    window, by = parse_window(window), parse_dimension(by)
    span = window_span(window, as_of=as_of)
    current = totals_by(store, span=span, by=by, agent=agent)
    before = span.before()
    previous = totals_by(store, span=before, by=by, agent=agent) if before else None
    rows = [
        describe(
            key[0], key[1], totals,
            previous=None if previous is None else previous.get(key, Totals()), confidence=confidence,
        )
        for key, totals in current.items()
    ]  # fmt: skip
    rows.sort(key=lambda row: (-row.events, row.agent, row.value or ""))
    return AcceptanceReport(window=window, span=span, by=by, agent=agent, rows=rows)


def totals_by(store: Store, *, span: Span, by: Dimension, agent: str | None) -> dict[tuple[str, str | None], Totals]:
    """Sums per (agent, value of `by`) over `span`; the value is None when `by` is the agent, or not given."""
    group = ["agent"] if by == Dimension.AGENT else ["agent", by.value]
    rows = db.rollup_totals(store, group_by=group, agent=agent, **span.bounds())
    return {(row["agent"], (row[by.value] or None) if by != Dimension.AGENT else None): Totals.of(row) for row in rows}


class IntentRanking(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent: str
    span: Span
    min_events: int
    best: list[AcceptanceStats] = Field(description="Highest acceptance first.")
    worst: list[AcceptanceStats] = Field(description="Lowest acceptance first.")
    too_few: int = Field(description="Intents left out for having fewer than min_events events.")


def intent_ranking(
    store: Store,
    *,
    agent: str,
    window: Window | str,
    as_of: date,
    min_events: int = DEFAULT_MIN_EVENTS,
    count: int = 3,
) -> IntentRanking:
    """An agent's best and worst intents by acceptance over `window`, among intents with `min_events` events."""
    if min_events < 1 or count < 1:
        name = "min_events" if min_events < 1 else "count"
        raise InvalidInput(f"`{name}` must be at least 1.", hint="Pass a positive whole number.", argument=name)
    report = acceptance_report(store, window=window, as_of=as_of, by=Dimension.INTENT, agent=agent)
    if not report.rows:
        raise no_feedback(store, agent, report.span)
    ranked = [row for row in report.rows if row.value is not None and row.acceptance is not None]
    kept = sorted((row for row in ranked if row.events >= min_events), key=lambda row: -(row.acceptance or 0))
    best = kept[:count]
    worst = [row for row in reversed(kept) if row not in best][:count]
    return IntentRanking(
        agent=agent, span=report.span, min_events=min_events, best=best, worst=worst, too_few=len(ranked) - len(kept)
    )


def no_feedback(store: Store, agent: str, span: Span) -> NotFound:
    known = db.agents_with_rollups(store)
    listed = ", ".join(sorted(known)[:20]) or "none yet"
    when = f"from {span.start} to {span.end}" if span.start else f"up to {span.end}"
    return NotFound(
        f"no feedback from agent {agent!r} {when}.",
        hint=f"Agents with feedback: {listed}. Check the name, or choose a longer window.",
        agent=agent,
    )


# Comparing two slices -----------------------------------------------------------------------------------


class Slice(BaseModel):
    """One agent over a span of days; with `template`, only the drafts that prompt template produced."""

    model_config = ConfigDict(frozen=True)

    agent: str
    span: Span
    template: str | None = None

    def label(self) -> str:
        start = self.span.start.isoformat() if self.span.start else "the start"
        who = f"{self.agent} template {self.template}" if self.template else self.agent
        return f"{who} {start}..{self.span.end.isoformat()}"


class Comparison(BaseModel):
    """Two slices side by side, candidate against baseline, each difference tested."""

    model_config = ConfigDict(frozen=True)

    baseline: AcceptanceStats
    candidate: AcceptanceStats
    acceptance: MeanTest | None = Field(
        description="Welch's t-test on daily mean acceptance; None with fewer than two days on a side."
    )
    unedited: ProportionTest | None = Field(description="Two-proportion z-test of the unedited share.")
    thumbs_up: ProportionTest | None = Field(description="Two-proportion z-test of thumbs up among thumbs.")
    adjusted: list[AdjustedP] = Field(description="Holm's correction across the tests that ran.")


def compare(store: Store, *, baseline: Slice, candidate: Slice, alpha: float = DEFAULT_ALPHA) -> Comparison:
    """Candidate against baseline: their stats, and each difference tested (see the module doc)."""
    sides = [_slice_totals(store, side, name) for side, name in ((baseline, "baseline"), (candidate, "candidate"))]
    (base, base_days), (cand, cand_days) = sides
    acceptance = None
    if len(base_days) >= 2 and len(cand_days) >= 2:
        acceptance = tests.compare_means(base_days, cand_days, alpha=alpha)
    unedited = _proportions(base.unedited, base.acceptance_n, cand.unedited, cand.acceptance_n, alpha)
    thumbs = _proportions(
        base.thumbs_up, base.thumbs_up + base.thumbs_down, cand.thumbs_up, cand.thumbs_up + cand.thumbs_down, alpha
    )
    p_values = {
        name: test.p_value
        for name, test in (("acceptance", acceptance), ("unedited", unedited), ("thumbs_up", thumbs))
        if test is not None
    }
    return Comparison(
        baseline=describe(baseline.agent, baseline.label(), base, previous=None, confidence=1 - alpha),
        candidate=describe(candidate.agent, candidate.label(), cand, previous=None, confidence=1 - alpha),
        acceptance=acceptance,
        unedited=unedited,
        thumbs_up=thumbs,
        adjusted=tests.holm(p_values, alpha=alpha) if p_values else [],
    )


def _slice_totals(store: Store, side: Slice, name: str) -> tuple[Totals, list[float]]:
    """A slice's sums and its daily mean acceptances; NotFound naming the side when it holds no feedback."""
    if side.span.start is not None and side.span.start > side.span.end:
        raise InvalidInput(
            f"`{name}` starts on {side.span.start} after it ends on {side.span.end}.",
            hint="Give the first day before the last.",
            argument=name,
        )
    rows = slice_days(store, side)
    if not rows:
        raise no_feedback(store, side.agent, side.span)
    totals = Totals()
    for row in rows:
        totals.add(Totals.of(row))
    return totals, daily_means(rows)


def slice_days(store: Store, side: Slice) -> list[dict[str, Any]]:
    """A slice's rollup sums, one row per day that has feedback."""
    if side.template is None:
        return db.rollup_totals(store, group_by=["day"], agent=side.agent, **side.span.bounds())
    rows = db.rollup_totals(store, group_by=["day", "template"], agent=side.agent, **side.span.bounds())
    return [row for row in rows if row["template"] == side.template]


def daily_means(rows: Iterable[Mapping[str, Any]]) -> list[float]:
    """Each day's mean acceptance, in day order, from rollup sums grouped by day."""
    ordered = sorted(rows, key=lambda row: row["day"])
    return [row["acceptance_sum"] / row["acceptance_n"] for row in ordered if row["acceptance_n"]]


def _proportions(k_base: int, n_base: int, k_cand: int, n_cand: int, alpha: float) -> ProportionTest | None:
    if n_base == 0 or n_cand == 0:
        return None
    return tests.compare_proportions(
        baseline_successes=k_base, baseline_trials=n_base, candidate_successes=k_cand, candidate_trials=n_cand,
        alpha=alpha,
    )  # fmt: skip

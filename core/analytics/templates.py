"""Prompt templates side by side: how each template of an agent fares, and two of them compared.

Feedback events name the prompt template that produced the draft (`template`),
and the daily rollups keep their sums per template, so both readers here use
the rollups only, after folding in the newest feedback (`roll_up`: cheap and
incremental, so the numbers are never older than the command).

`list_templates` shows every template of an agent (or of every agent) over a
window (7d, 30d, 90d or all, days in FINETUNE_TIMEZONE ending today): events,
the days it served, acceptance (the mean share of each draft kept) with
Student's t interval, the unedited share with Wilson's interval, the mean
rating, cost per event (over the events that report a cost) and mean latency.
Events that name no template are a row of their own (template None).

`compare_templates` sets template B (the candidate) against template A (the
baseline) of one agent over the same window, with the tests the analytics
comparisons use (`core.analytics.acceptance.compare`, itself built on
`core.evaluation.stats`): Welch's t-test on the daily mean acceptance, the
two-proportion z-test on the unedited share; and Welch's t-test on the daily
mean rating. The two means take days as their observations because two
templates are rarely served side by side at random: one usually follows the
other, and day-to-day drift must count as noise, not as evidence. Each test
has its interval of the difference; Holm's correction across the tests that
could run and the verdict in one sentence come from `core.evaluation.decide`,
as for A/B experiments (a template worse on any metric loses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.analytics import db
from core.analytics.acceptance import (
    Slice,
    Span,
    Totals,
    Window,
    compare,
    daily_means,
    describe,
    parse_window,
    slice_days,
    window_span,
)
from core.analytics.rollups import roll_up, today
from core.errors import InvalidInput, NotFound
from core.evaluation import (
    DEFAULT_ALPHA,
    DEFAULT_CONFIDENCE,
    Evidence,
    Interval,
    MeanTest,
    ProportionTest,
    Verdict,
    compare_means,
    decide,
)
from core.platform.store import Store
from core.services import Services

DEFAULT_WINDOW = Window.DAYS_30
MAX_TEMPLATE_CHARS = 256  # as feedback's `template` field allows


class TemplateStats(BaseModel):
    """One template of one agent over a window."""

    model_config = ConfigDict(frozen=True)

    agent: str
    template: str | None = Field(description="The template's name (its version); None: events naming no template.")
    events: int
    days: int = Field(description="Days with at least one event.")
    first_day: date
    last_day: date
    acceptance: float | None = Field(description="Mean share of each draft kept in the final text.")
    acceptance_interval: Interval | None = Field(description="Student's t interval; None below two drafts.")
    unedited_share: float | None = Field(description="Share of drafts sent without any edit.")
    unedited_interval: Interval | None = Field(description="Wilson's interval.")
    rated: int
    rating: float | None = Field(description="Mean rating, 1-5 (thumbs up 5, down 1).")
    cost_usd: float = Field(description="Cost the events reported, in all.")
    cost_per_event_usd: float | None = Field(description="Mean cost of the events that report one.")
    latency_ms: float | None = Field(description="Mean latency of the events that report one.")


class TemplateReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    window: Window
    span: Span
    agent: str | None = Field(description="The agent asked about; None: every agent.")
    rows: list[TemplateStats] = Field(description="By agent; the latest served first, then the most used.")


class TemplateMetric(StrEnum):
    """What two templates are compared on."""

    ACCEPTANCE = "acceptance"
    UNEDITED = "unedited share"
    RATING = "rating"


class TemplateTest(BaseModel):
    """One metric of template B against template A, tested."""

    model_config = ConfigDict(frozen=True)

    metric: TemplateMetric
    test: str = Field(description="The test and what its observations are.")
    baseline: float | None = Field(description="Template A's mean or share.")
    candidate: float | None = Field(description="Template B's mean or share.")
    baseline_n: int = Field(description="Template A's observations: days for a mean, drafts for a share.")
    candidate_n: int
    rate: bool = Field(description="A share (two-proportion test) rather than a mean (Welch).")
    difference: float | None = Field(description="B minus A.")
    interval: Interval | None = Field(description="The interval of the difference.")
    p_value: float | None
    adjusted_p_value: float | None = Field(description="After Holm's correction across the tests that ran.")
    significant: bool
    note: str | None = Field(description="Why the test could not run, when it could not.")


class TemplateComparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent: str
    window: Window
    span: Span
    alpha: float
    baseline: TemplateStats = Field(description="Template A.")
    candidate: TemplateStats = Field(description="Template B.")
    tests: list[TemplateTest]
    verdict: Verdict = Field(description="For template B: winner, loser or inconclusive.")
    reason: str = Field(description="The verdict in one sentence.")


# Listing --------------------------------------------------------------------------------------------------


def list_templates(svc: Services, *, agent: str | None = None, window: Window | str = DEFAULT_WINDOW) -> TemplateReport:
    """Every template of `agent` (or of every agent) over `window` ending today, with fresh rollups."""
    span = _fresh_span(svc, window)
    agent = _check_name("agent", agent)
    rows = [
        _stats(key[0], key[1], days, confidence=DEFAULT_CONFIDENCE)
        for key, days in _days_by_template(svc.store, span=span, agent=agent).items()
    ]
    if agent is not None and not rows:
        raise _no_templates(svc.store, agent, span)
    rows.sort(key=lambda row: (row.agent, -row.last_day.toordinal(), -row.events, row.template or ""))
    return TemplateReport(window=parse_window(window), span=span, agent=agent, rows=rows)


def _days_by_template(
    store: Store, *, span: Span, agent: str | None
) -> dict[tuple[str, str | None], list[dict[str, Any]]]:
    """Each (agent, template)'s rollup sums per day over `span`."""
    found: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for row in db.rollup_totals(store, group_by=["agent", "template", "day"], agent=agent, **span.bounds()):
        found.setdefault((row["agent"], row["template"] or None), []).append(row)
    return found


def _stats(agent: str, template: str | None, days: Sequence[Mapping[str, Any]], *, confidence: float) -> TemplateStats:
    totals = Totals()
    for day in days:
        totals.add(Totals.of(day))
    described = describe(agent, template, totals, previous=None, confidence=confidence)
    seen = sorted(date.fromisoformat(day["day"]) for day in days)
    return TemplateStats(
        agent=agent, template=template, events=totals.events, days=len(seen), first_day=seen[0], last_day=seen[-1],
        acceptance=described.acceptance, acceptance_interval=described.acceptance_interval,
        unedited_share=described.unedited_share, unedited_interval=described.unedited_interval,
        rated=totals.rated, rating=described.rating, cost_usd=totals.cost_sum,
        cost_per_event_usd=totals.cost_per_event, latency_ms=totals.latency_ms,
    )  # fmt: skip


# Comparing two -------------------------------------------------------------------------------------------


def compare_templates(
    svc: Services, *, a: str, b: str, agent: str | None = None, window: Window | str = DEFAULT_WINDOW,
    alpha: float = DEFAULT_ALPHA,
) -> TemplateComparison:  # fmt: skip
    """Template `b` (candidate) against template `a` (baseline) of `agent` over `window` ending today.

    Without `agent`, the one agent whose feedback names both templates in the window.
    """
    a, b = _template_name("a", a), _template_name("b", b)
    if a == b:
        raise InvalidInput(
            f"`a` and `b` are both {a!r}: a template is not compared with itself.",
            hint="Name two different templates, e.g. compare greet-v1 greet-v2.",
            argument="b",
        )
    span = _fresh_span(svc, window)
    store = svc.store
    agent = _agent_of(store, span=span, agent=_check_name("agent", agent), templates=(a, b))
    sides = [Slice(agent=agent, span=span, template=name) for name in (a, b)]
    days = [slice_days(store, side) for side in sides]
    confidence = 1 - alpha
    stats = [_stats(agent, side.template, rows, confidence=confidence) for side, rows in zip(sides, days, strict=True)]
    found = compare(store, baseline=sides[0], candidate=sides[1], alpha=alpha)
    rating = _rating_test(days[0], days[1], alpha)
    tests = [
        _test(TemplateMetric.ACCEPTANCE, found.acceptance, stats, days, rate=False),
        _test(TemplateMetric.UNEDITED, found.unedited, stats, days, rate=True),
        _test(TemplateMetric.RATING, rating, stats, days, rate=False),
    ]
    tests, verdict, reason = _decide(tests, alpha, a=a, b=b)
    return TemplateComparison(
        agent=agent, window=parse_window(window), span=span, alpha=alpha, baseline=stats[0], candidate=stats[1],
        tests=tests, verdict=verdict, reason=reason,
    )  # fmt: skip


def _rating_test(base_days: list[dict[str, Any]], cand_days: list[dict[str, Any]], alpha: float) -> MeanTest | None:
    """Welch's t-test on the daily mean ratings; None with fewer than two rated days on a side."""
    base, cand = _daily_ratings(base_days), _daily_ratings(cand_days)
    if len(base) < 2 or len(cand) < 2:
        return None
    return compare_means(base, cand, alpha=alpha)


def _daily_ratings(rows: list[dict[str, Any]]) -> list[float]:
    return [row["rating_sum"] / row["rated"] for row in sorted(rows, key=lambda row: row["day"]) if row["rated"]]


_TESTS = {
    TemplateMetric.ACCEPTANCE: "Welch's t-test on the daily mean acceptance",
    TemplateMetric.UNEDITED: "two-proportion z-test on the drafts",
    TemplateMetric.RATING: "Welch's t-test on the daily mean rating",
}


def _test(
    metric: TemplateMetric, result: MeanTest | ProportionTest | None, stats: list[TemplateStats],
    days: list[list[dict[str, Any]]], *, rate: bool,
) -> TemplateTest:  # fmt: skip
    """A metric's test before Holm's correction (`_decide` adds it)."""
    base, cand = stats
    if metric is TemplateMetric.ACCEPTANCE:
        values, counts = (base.acceptance, cand.acceptance), tuple(len(daily_means(rows)) for rows in days)
    elif metric is TemplateMetric.UNEDITED:
        values = (base.unedited_share, cand.unedited_share)
        counts = tuple(int(sum(row["acceptance_n"] for row in rows)) for rows in days)
    else:
        values, counts = (base.rating, cand.rating), tuple(len(_daily_ratings(rows)) for rows in days)
    note = None
    if result is None:
        unit = "drafts with an acceptance" if rate else ("rated days" if metric is TemplateMetric.RATING else "days")
        need = 1 if rate else 2
        note = f"the test needs {need} {unit} on each side; A has {counts[0]}, B has {counts[1]}"
    return TemplateTest(
        metric=metric, test=_TESTS[metric], baseline=values[0], candidate=values[1], baseline_n=counts[0],
        candidate_n=counts[1], rate=rate, difference=result.difference if result else None,
        interval=result.interval if result else None, p_value=result.p_value if result else None,
        adjusted_p_value=None, significant=False, note=note,
    )  # fmt: skip


def _decide(tests: list[TemplateTest], alpha: float, *, a: str, b: str) -> tuple[list[TemplateTest], Verdict, str]:
    """Holm's correction across the tests that ran and the verdict on template B, in one sentence."""
    items = [
        Evidence(name=test.metric, difference=test.difference, p_value=test.p_value, in_points=test.rate)
        for test in tests
        if test.difference is not None and test.p_value is not None
    ]
    if not items:
        return tests, Verdict.INCONCLUSIVE, (
            f"{b} against {a}: Inconclusive: no test could run yet (each mean needs two days with feedback on each "
            "side, the unedited share one draft)."
        )  # fmt: skip
    decision = decide(items, srm=None, alpha=alpha)
    adjusted = {item.name: item for item in decision.adjusted}
    tests = [
        test.model_copy(
            update={"adjusted_p_value": adjusted[test.metric].adjusted_p_value,
                    "significant": adjusted[test.metric].significant}
        )
        if test.metric in adjusted else test
        for test in tests
    ]  # fmt: skip
    return tests, decision.verdict, f"{b} against {a}: {decision.reason}"


# Checks and lookups ---------------------------------------------------------------------------------------


def _fresh_span(svc: Services, window: Window | str) -> Span:
    """The days `window` covers, ending today in FINETUNE_TIMEZONE, once the rollups hold every event."""
    parse_window(window)
    roll_up(svc.store, timezone=svc.settings.timezone)
    return window_span(window, as_of=today(svc.clock(), svc.settings.timezone))


def _check_name(argument: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEMPLATE_CHARS:
        raise InvalidInput(
            f"`{argument}` must be a name of 1 to {MAX_TEMPLATE_CHARS} characters, got {value!r:.80}.",
            hint="Use the name as the feedback's field carries it, e.g. support or greet-v2.",
            argument=argument,
        )
    return value.strip()


def _template_name(argument: str, value: str) -> str:
    name = _check_name(argument, value)
    if name is None:
        raise InvalidInput(
            f"`{argument}` names no template.", hint="Name two templates: compare A B.", argument=argument
        )
    return name


def _agent_of(store: Store, *, span: Span, agent: str | None, templates: tuple[str, str]) -> str:
    """The agent whose templates are compared: `agent`, checked, or the one agent whose feedback names both."""
    used: dict[str, set[str]] = {}
    for row in db.rollup_totals(store, group_by=["agent", "template"], agent=agent, **span.bounds()):
        if row["template"]:
            used.setdefault(row["template"], set()).add(row["agent"])
    missing = [name for name in templates if name not in used]
    if missing:
        raise _unknown_template(store, missing[0], agent=agent, span=span, known=sorted(used))
    both = sorted(used[templates[0]] & used[templates[1]])
    if agent is not None:
        return agent
    if len(both) == 1:
        return both[0]
    if not both:
        raise NotFound(
            f"no agent's feedback names both {templates[0]!r} and {templates[1]!r} {_when(span)}.",
            hint="Two templates are compared within one agent; list them with `finetune templates`.",
        )
    raise InvalidInput(
        f"agents {', '.join(both)} all use templates {templates[0]!r} and {templates[1]!r}.",
        hint=f"Name the agent with --agent, e.g. --agent {both[0]}.",
        argument="agent",
    )


def _unknown_template(store: Store, template: str, *, agent: str | None, span: Span, known: list[str]) -> NotFound:
    if agent is not None and agent not in db.agents_with_rollups(store):
        return _no_templates(store, agent, span)
    whose = f"agent {agent!r}'s" if agent else "any agent's"
    listed = ", ".join(known[:20]) or "none"
    return NotFound(
        f"no feedback of {whose} names template {template!r} {_when(span)}.",
        hint=f"Templates seen then: {listed}. A longer --window looks further back.",
        template=template,
    )


def _no_templates(store: Store, agent: str, span: Span) -> NotFound:
    known = sorted(db.agents_with_rollups(store))
    listed = ", ".join(known[:20]) or "none yet"
    return NotFound(
        f"no feedback from agent {agent!r} {_when(span)}.",
        hint=f"Agents with feedback: {listed}. A longer --window looks further back.",
        agent=agent,
    )


def _when(span: Span) -> str:
    return f"from {span.start} to {span.end}" if span.start else f"up to {span.end}"

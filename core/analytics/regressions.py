"""The daily regression check: acceptance drops and latency or cost spikes per agent, as deduplicated alerts.

For each agent, the last `window_days` completed days (7 by default) are set
against the `baseline_days` before them (30), read from the rollups:

- acceptance drop: mean acceptance fell by at least `drop_points` (10 points);
- latency spike, cost spike: mean latency, or mean cost per event, rose by at
  least `spike_percent` (50 %).

A change only counts when both windows hold `min_events` events and Welch's
t-test (`core.evaluation.stats.compare_means`) on the daily means of the two
windows finds it significant at `alpha`: days are the observations, so weekday
cycles and ordinary day-to-day drift do not raise alerts.

Each finding is attributed: for model version, template and intent, the mix of
events in the recent window is set against the baseline's; the dimension whose
mix moved most (total variation distance, at least `min_mix_shift`) names the
value that grew, the day it started (the first day it carried half its recent
share), and the metric for that value and for the rest.

Alerts live in `alerts` with their evidence (JSON) and a dedupe key (`kind:agent`):
a subject has at most one open alert, later checks leave it be, and one check
resolves it once the metric has recovered: acceptance back within half the
threshold of the baseline the alert was raised against (latency and cost:
back below half the spike). Raising and resolving each post one typed event
(`RegressionAlert`) through the outbox, in the same transaction; the resolution
edits the same Slack message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.analytics import db
from core.analytics.acceptance import Dimension, Span, Totals
from core.evaluation import DEFAULT_ALPHA, MeanTest
from core.evaluation import stats as tests
from core.platform import events, outbox
from core.platform.settings import Settings
from core.platform.store import Store
from core.platform.timeutil import iso
from core.vocabulary import AlertKind

ATTRIBUTED = (Dimension.MODEL_VERSION, Dimension.TEMPLATE, Dimension.INTENT)
METRIC_NAMES = {
    AlertKind.ACCEPTANCE_DROP: "acceptance",
    AlertKind.LATENCY_SPIKE: "latency",
    AlertKind.COST_SPIKE: "cost per event",
}
_METRIC: dict[AlertKind, Callable[[Totals], float | None]] = {
    AlertKind.ACCEPTANCE_DROP: lambda t: t.acceptance,
    AlertKind.LATENCY_SPIKE: lambda t: t.latency_ms,
    AlertKind.COST_SPIKE: lambda t: t.cost_per_event,
}


class RegressionRules(BaseModel):
    """What counts as a regression (see the module doc)."""

    model_config = ConfigDict(frozen=True)

    drop_points: float = Field(default=10.0, gt=0, le=100, description="Acceptance drop, in points, that alerts.")
    window_days: int = Field(default=7, ge=2, le=90, description="Recent completed days checked.")
    baseline_days: int = Field(default=30, ge=2, le=365, description="Days before them that set the baseline.")
    spike_percent: float = Field(
        default=50.0, gt=0, description="Rise of mean latency or cost, in percent, that alerts."
    )
    min_events: int = Field(default=50, ge=1, description="Events each window needs before anything is judged.")
    alpha: float = Field(default=DEFAULT_ALPHA, gt=0, lt=1)
    min_mix_shift: float = Field(default=0.2, gt=0, le=1, description="Mix change that names a cause.")

    @classmethod
    def from_settings(cls, settings: Settings) -> RegressionRules:
        return cls(
            drop_points=settings.regression_drop_points,
            window_days=settings.regression_window_days,
            baseline_days=settings.regression_baseline_days,
            spike_percent=settings.regression_spike_percent,
        )


class Attribution(BaseModel):
    """What changed in the agent's traffic when the metric moved."""

    model_config = ConfigDict(frozen=True)

    dimension: Dimension
    value: str | None = Field(description="The value that grew; None means events that name none.")
    recent_share: float
    baseline_share: float
    mix_shift: float = Field(description="Total variation distance between the two windows' mixes of `dimension`.")
    since: date | None = Field(description="First day the value carried half its recent share.")
    value_metric: float | None = Field(description="The metric for events with this value, in the recent window.")
    rest_metric: float | None = Field(description="The metric for all other events, over both windows.")

    def sentence(self) -> str:
        value = self.value or "(none)"
        since = f" since {self.since}" if self.since else ""
        return (
            f"{self.dimension} {value} carried {self.recent_share:.0%} of events{since} "
            f"(before: {self.baseline_share:.0%})"
        )


class Measurement(BaseModel):
    """A metric over the recent and the baseline window."""

    model_config = ConfigDict(frozen=True)

    recent: Span
    baseline: Span
    recent_value: float | None
    baseline_value: float | None
    recent_events: int
    baseline_events: int
    test: MeanTest | None = Field(description="Welch's t-test on the daily means; None with too few days.")


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    kind: AlertKind
    agent: str
    severity: str
    message: str
    created_at: str
    resolved_at: str | None
    evidence: dict[str, Any]


class RegressionRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    as_of: date
    recent: Span
    baseline: Span
    agents_checked: int
    raised: list[Alert]
    resolved: list[Alert]
    still_open: list[Alert] = Field(description="Open alerts this check left open (already announced).")


def spans(rules: RegressionRules, as_of: date) -> tuple[Span, Span]:
    """The recent window (completed days before `as_of`) and the baseline before it."""
    recent = Span(start=as_of - timedelta(days=rules.window_days), end=as_of - timedelta(days=1))
    assert recent.start is not None
    baseline = Span(start=recent.start - timedelta(days=rules.baseline_days), end=recent.start - timedelta(days=1))
    return recent, baseline


def check_regressions(
    store: Store, *, rules: RegressionRules, as_of: date, channel: str | None = None
) -> RegressionRun:
    """Check every agent with feedback in either window (or an open alert); raise, keep or resolve alerts."""
    recent, baseline = spans(rules, as_of)
    open_before = {alert.id for alert in open_alerts(store)}
    agents = set(db.agents_with_rollups(store, **Span(start=baseline.start, end=recent.end).bounds()))
    agents |= {alert.agent for alert in open_alerts(store)}
    raised: list[Alert] = []
    resolved: list[Alert] = []
    for agent in sorted(agents):
        days = _days(store, agent, recent, baseline)
        for kind in AlertKind:
            measured = measure(days, kind, recent=recent, baseline=baseline)
            outcome = _judge(store, agent, kind, measured, days, rules=rules, channel=channel)
            if outcome is not None:
                (raised if outcome.resolved_at is None else resolved).append(outcome)
    still_open = [alert for alert in open_alerts(store) if alert.id in open_before]
    return RegressionRun(
        as_of=as_of, recent=recent, baseline=baseline, agents_checked=len(agents), raised=raised, resolved=resolved,
        still_open=still_open,
    )  # fmt: skip


def open_alerts(store: Store) -> list[Alert]:
    return [_alert(row) for row in db.alerts(store, open_only=True, kinds=list(AlertKind))]


def all_alerts(store: Store) -> list[Alert]:
    return [_alert(row) for row in db.alerts(store, open_only=False, kinds=list(AlertKind))]


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(
        id=row["id"], kind=AlertKind(row["kind"]), agent=row["subject"], severity=row["severity"],
        message=row["message"], created_at=row["created_at"], resolved_at=row["resolved_at"],
        evidence=json.loads(row["evidence"] or "{}"),
    )  # fmt: skip


# Measuring -------------------------------------------------------------------------------------------------


Days = dict[str, Totals]  # ISO day -> sums


def _days(store: Store, agent: str, recent: Span, baseline: Span) -> Days:
    rows = db.rollup_totals(store, group_by=["day"], agent=agent, **Span(start=baseline.start, end=recent.end).bounds())
    return {row["day"]: Totals.of(row) for row in rows}


def _within(days: Days, span: Span) -> list[tuple[str, Totals]]:
    start, end = span.bounds()["start"] or "", span.bounds()["end"] or ""
    return sorted((day, totals) for day, totals in days.items() if start <= day <= end)


def measure(days: Days, kind: AlertKind, *, recent: Span, baseline: Span) -> Measurement:
    """The metric of `kind` over both windows, and Welch's test on its daily values."""
    metric = _METRIC[kind]
    sides = []
    for span in (recent, baseline):
        totals, daily = Totals(), []
        for _, day in _within(days, span):
            totals.add(day)
            value = metric(day)
            if value is not None:
                daily.append(value)
        sides.append((totals, daily))
    (recent_totals, recent_daily), (baseline_totals, baseline_daily) = sides
    test = None
    if len(recent_daily) >= 2 and len(baseline_daily) >= 2:
        test = tests.compare_means(baseline_daily, recent_daily)
    return Measurement(
        recent=recent, baseline=baseline, recent_value=metric(recent_totals), baseline_value=metric(baseline_totals),
        recent_events=recent_totals.events, baseline_events=baseline_totals.events, test=test,
    )  # fmt: skip


def regressed(kind: AlertKind, measured: Measurement, rules: RegressionRules) -> bool:
    """Whether the change crosses the threshold, with enough events, and is significant."""
    recent, base, test = measured.recent_value, measured.baseline_value, measured.test
    if recent is None or base is None or test is None or test.p_value >= rules.alpha:
        return False
    if min(measured.recent_events, measured.baseline_events) < rules.min_events:
        return False
    if kind == AlertKind.ACCEPTANCE_DROP:
        return base - recent >= rules.drop_points / 100
    return base > 0 and recent >= base * (1 + rules.spike_percent / 100)


def recovered(kind: AlertKind, measured: Measurement, *, alerted_baseline: float, rules: RegressionRules) -> bool:
    """Whether the metric came back within half the threshold of the baseline the alert was raised against."""
    recent = measured.recent_value
    if recent is None or measured.recent_events < rules.min_events:
        return False  # too little traffic to say; the alert stays open
    if kind == AlertKind.ACCEPTANCE_DROP:
        return recent >= alerted_baseline - rules.drop_points / 200
    return recent <= alerted_baseline * (1 + rules.spike_percent / 200)


# Attributing -------------------------------------------------------------------------------------------------


def attribute(
    store: Store, agent: str, kind: AlertKind, *, recent: Span, baseline: Span, min_mix_shift: float
) -> Attribution | None:
    """The dimension whose mix moved most between the windows, and the value that grew; None if none moved enough."""
    best: Attribution | None = None
    for dimension in ATTRIBUTED:
        candidate = _attribute_one(store, agent, kind, dimension, recent=recent, baseline=baseline)
        if candidate is not None and (best is None or candidate.mix_shift > best.mix_shift):
            best = candidate
    return best if best is not None and best.mix_shift >= min_mix_shift else None


def _attribute_one(
    store: Store, agent: str, kind: AlertKind, dimension: Dimension, *, recent: Span, baseline: Span
) -> Attribution | None:
    rows = db.rollup_totals(
        store, group_by=["day", dimension.value], agent=agent, **Span(start=baseline.start, end=recent.end).bounds()
    )
    recent_start = recent.bounds()["start"] or ""
    mixes: dict[bool, dict[str, Totals]] = {True: {}, False: {}}  # in the recent window? -> value -> sums
    per_day: dict[str, dict[str, int]] = {}
    for row in rows:
        value, totals = row[dimension.value], Totals.of(row)
        mixes[row["day"] >= recent_start].setdefault(value, Totals()).add(totals)
        per_day.setdefault(row["day"], {})[value] = totals.events
    shares = {side: _shares(mix) for side, mix in mixes.items()}
    if not shares[True] or not shares[False]:
        return None
    values = set(shares[True]) | set(shares[False])
    shift = sum(abs(shares[True].get(v, 0.0) - shares[False].get(v, 0.0)) for v in values) / 2
    grown = max(values, key=lambda v: (shares[True].get(v, 0.0) - shares[False].get(v, 0.0), v))
    rest = Totals()
    for side in (True, False):
        for value, totals in mixes[side].items():
            if value != grown:
                rest.add(totals)
    metric = _METRIC[kind]
    return Attribution(
        dimension=dimension, value=grown or None, recent_share=shares[True].get(grown, 0.0),
        baseline_share=shares[False].get(grown, 0.0), mix_shift=shift,
        since=_since(per_day, grown, shares[True].get(grown, 0.0) / 2),
        value_metric=metric(mixes[True][grown]) if grown in mixes[True] else None, rest_metric=metric(rest),
    )  # fmt: skip


def _shares(mix: dict[str, Totals]) -> dict[str, float]:
    total = sum(t.events for t in mix.values())
    return {value: t.events / total for value, t in mix.items()} if total else {}


def _since(per_day: dict[str, dict[str, int]], value: str, share: float) -> date | None:
    for day in sorted(per_day):
        counts = per_day[day]
        total = sum(counts.values())
        if total and counts.get(value, 0) / total >= share:
            return date.fromisoformat(day)
    return None


# Alerts --------------------------------------------------------------------------------------------------------


def _judge(
    store: Store,
    agent: str,
    kind: AlertKind,
    measured: Measurement,
    days: Days,
    *,
    rules: RegressionRules,
    channel: str | None,
) -> Alert | None:
    """Raise, resolve or leave the subject's alert; the alert raised or resolved, None when nothing changed."""
    key = f"{kind}:{agent}"
    existing = db.open_alert(store, key)
    now = iso()
    if existing is not None:
        alerted = json.loads(existing["evidence"] or "{}").get("baseline_value")
        if isinstance(alerted, int | float) and recovered(kind, measured, alerted_baseline=alerted, rules=rules):
            return _resolve(store, _alert(existing), measured, now=now, channel=channel)
        db.touch_alert(store, existing["id"], checked_at=now)
        return None
    if not regressed(kind, measured, rules):
        return None
    cause = attribute(
        store, agent, kind, recent=measured.recent, baseline=measured.baseline, min_mix_shift=rules.min_mix_shift
    )
    return _raise(store, agent, kind, measured, cause, days, rules=rules, now=now, channel=channel)


def _raise(
    store: Store,
    agent: str,
    kind: AlertKind,
    measured: Measurement,
    cause: Attribution | None,
    days: Days,
    *,
    rules: RegressionRules,
    now: str,
    channel: str | None,
) -> Alert | None:
    headline = _headline(agent, kind, measured, cause, rules)
    evidence = {
        "metric": METRIC_NAMES[kind],
        "baseline_value": measured.baseline_value,
        "measurement": measured.model_dump(mode="json"),
        "attribution": cause.model_dump(mode="json") if cause else None,
        "rules": rules.model_dump(mode="json"),
    }
    severity = "critical" if _change_ratio(kind, measured, rules) >= 2 else "warning"
    with store.write():
        if db.open_alert(store, f"{kind}:{agent}") is not None:
            return None  # another check raised it meanwhile
        alert_id = db.insert_alert(
            store, kind=kind, subject=agent, severity=severity, message=headline, dedupe_key=f"{kind}:{agent}",
            evidence=evidence, now=now,
        )  # fmt: skip
        event = events.RegressionAlert(
            alert_id=alert_id, alert=kind, agent=agent, resolved=False, headline=headline, metric=METRIC_NAMES[kind],
            facts=alert_facts(kind, measured, cause, severity=severity), daily=daily_values(days, kind, measured),
            recent_start=measured.recent.bounds()["start"],
        )  # fmt: skip
        outbox.enqueue(store, event, channel=channel)
    return Alert(
        id=alert_id, kind=kind, agent=agent, severity=severity, message=headline, created_at=now, resolved_at=None,
        evidence=evidence,
    )  # fmt: skip


def _resolve(store: Store, alert: Alert, measured: Measurement, *, now: str, channel: str | None) -> Alert:
    name = METRIC_NAMES[alert.kind]
    headline = (
        f"{name.capitalize()} of {alert.agent} recovered: {_shown(alert.kind, measured.recent_value)} in the"
        f" {measured.recent.days} days to {measured.recent.end}, against"
        f" {_shown(alert.kind, alert.evidence.get('baseline_value'))} before the alert."
    )
    evidence = {**alert.evidence, "recovery": measured.model_dump(mode="json")}
    with store.write():
        db.resolve_alert(store, alert.id, resolved_at=now, evidence=evidence)
        recovery = {
            "Recovered to": f"{_shown(alert.kind, measured.recent_value)} over the {measured.recent.days} days to"
            f" {measured.recent.end} ({measured.recent_events:,} events)",
            "Before the alert": _shown(alert.kind, alert.evidence.get("baseline_value")),
        }
        event = events.RegressionAlert(
            alert_id=alert.id, alert=alert.kind, agent=alert.agent, resolved=True, headline=headline, metric=name,
            facts=recovery,
        )  # fmt: skip
        outbox.enqueue(store, event, channel=channel)
    return alert.model_copy(update={"resolved_at": now, "evidence": evidence})


def alert_facts(kind: AlertKind, measured: Measurement, cause: Attribution | None, *, severity: str) -> dict[str, str]:
    """The evidence of a raised alert, as label and text (what a Slack notice or a terminal shows beside it)."""
    recent, baseline = measured.recent, measured.baseline
    test = measured.test
    facts = {
        "Recent": f"{_shown(kind, measured.recent_value)} over the {recent.days} days {recent.start} to {recent.end}"
        f" ({measured.recent_events:,} events)",
        "Baseline": f"{_shown(kind, measured.baseline_value)} over the {baseline.days} days {baseline.start} to"
        f" {baseline.end} ({measured.baseline_events:,} events)",
        "Test": (
            f"Welch's t-test on the daily values: t = {test.statistic:.2f}, df = {test.df:.1f}, p = {test.p_value:.2g}"
            if test is not None
            else "too few days to test"
        ),
        "Severity": severity,
    }
    if cause is None:
        facts["Attributed to"] = "nothing: model version, template and intent mix did not change"
    else:
        facts["Attributed to"] = cause.sentence()
        if cause.value_metric is not None and cause.rest_metric is not None:
            facts["Attributed to"] += (
                f"; {_shown(kind, cause.value_metric)} with it, {_shown(kind, cause.rest_metric)} for the rest"
            )
    return facts


def daily_values(days: Days, kind: AlertKind, measured: Measurement) -> list[tuple[str, float]]:
    """The metric on each day of the baseline and recent windows that has a value, in day order."""
    start, end = measured.baseline.bounds()["start"] or "", measured.recent.bounds()["end"] or ""
    metric = _METRIC[kind]
    found = []
    for day, totals in sorted(days.items()):
        value = metric(totals)
        if start <= day <= end and value is not None:
            found.append((day, value))
    return found


def _change_ratio(kind: AlertKind, measured: Measurement, rules: RegressionRules) -> float:
    """How many thresholds the change spans."""
    recent, base = measured.recent_value or 0.0, measured.baseline_value or 0.0
    if kind == AlertKind.ACCEPTANCE_DROP:
        return (base - recent) / (rules.drop_points / 100)
    return (recent / base - 1) / (rules.spike_percent / 100) if base else 0.0


def _headline(
    agent: str, kind: AlertKind, measured: Measurement, cause: Attribution | None, rules: RegressionRules
) -> str:
    base, recent = measured.baseline_value or 0.0, measured.recent_value or 0.0
    change = tests.points(recent - base) if kind == AlertKind.ACCEPTANCE_DROP else f"+{recent / base - 1:.0%}"
    verb = "fell" if kind == AlertKind.ACCEPTANCE_DROP else "rose"
    p_value = measured.test.p_value if measured.test else 1.0
    text = (
        f"{METRIC_NAMES[kind].capitalize()} of {agent} {verb} from {_shown(kind, base)} to {_shown(kind, recent)}"
        f" ({change}) in the {rules.window_days} days to {measured.recent.end}, against the {rules.baseline_days}"
        f" days before (Welch p = {p_value:.2g})."
    )
    if cause is None:
        return text + " Model version, template and intent mix did not change."
    detail = f" {cause.sentence()}"
    if cause.value_metric is not None and cause.rest_metric is not None:
        detail += f", at {_shown(kind, cause.value_metric)} against {_shown(kind, cause.rest_metric)} for the rest"
    return text + detail + "."


def _shown(kind: AlertKind, value: float | None) -> str:
    if value is None:
        return "nothing"
    if kind == AlertKind.ACCEPTANCE_DROP:
        return f"{value:.0%}"
    if kind == AlertKind.LATENCY_SPIKE:
        return f"{value:,.0f} ms"
    return f"${value:,.4f}"

"""The weekly digest: one model of an ISO week, built from the core's own answers and rendered four ways.

`build_digest(svc, week=...)` reads, for the ISO week (default: the last full
week in FINETUNE_TIMEZONE):

- acceptance by agent with the change from the week before
  (`core.analytics.acceptance_report` over the week's seven days, read from
  the rollups, which are brought up to date first), and each agent's weekly
  acceptance over the `HISTORY_WEEKS` weeks that end with it, for the chart;
- the edit patterns users make most (`core.analytics.pattern_report`: counts
  over all feedback mined so far, not only this week);
- the regression alerts open now (`core.analytics.open_alerts`);
- the fine-tuning jobs that finished in the week (`core.training`);
- the alias moves of the week, deployments and rollbacks, from the registry's
  ledger (`core.registry.recent_moves`);
- the approval requests pending now (`core.platform.approvals`);
- the A/B experiments running now or ended in the week, with their verdicts
  (`core.evaluation`);
- spend over the week, training and inference, and over the history weeks
  (`core.analytics.costs.cost_summary`);
- the next actions the numbers point at, which Slack offers as buttons: roll
  back the production alias of an agent whose acceptance dropped, retrain an
  agent on its new corrections (`core.analytics.retrain`), open an A/B test on
  a canary nobody tests yet.

Every number is the core's, copied, never recomputed here; the headline's
acceptance across agents is the mean over all drafts (each agent's mean
weighted by its drafts, every draft carrying an acceptance).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core import analytics, registry
from core.analytics.costs import CostSummary, cost_summary
from core.errors import NotFound
from core.evaluation import ExperimentReport, experiment_report, list_experiments
from core.platform import approvals
from core.platform.timeutil import iso
from core.services import Services
from core.training.jobs import list_jobs
from core.vocabulary import FINAL_JOB_STATES, AlertKind, AliasMove, ExperimentState, JobState
from reports.weeks import IsoWeek, parse_week, week_name

HISTORY_WEEKS = 8  # weeks of acceptance and spend the charts show, ending with the digest's week
PATTERNS_PER_AGENT = 2
MAX_PATTERNS = 8
MIN_PATTERN_FREQUENCY = 0.05  # a phrase in fewer of an agent's edited drafts is not a habit worth a line
MAX_ACTIONS = 6
JOBS_READ = 500  # newest jobs of each final state looked at for the week's finished ones
MOVES_READ = 1000  # newest ledger rows looked at for the week's alias moves
MAX_COST_ROWS = 8
SHOWN_MOVES = (AliasMove.DEPLOY, AliasMove.CANARY, AliasMove.PROMOTE, AliasMove.ROLLBACK)
MAX_RETRAINS = 3
ActionKind = Literal["rollback", "retrain", "ab"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class AgentWeek(_Frozen):
    """One agent's drafts over the week, against the week before."""

    agent: str
    events: int
    previous_events: int
    acceptance: float | None = Field(description="Mean share of each draft kept in the final text.")
    acceptance_low: float | None = Field(description="Student's t interval (95%), low end.")
    acceptance_high: float | None
    previous_acceptance: float | None
    change: float | None = Field(description="This week's acceptance minus the week before's (a fraction).")
    unedited_share: float | None = Field(description="Drafts sent without any edit.")
    rating: float | None = Field(description="Mean rating, 1-5.")
    thumbs_up: int
    thumbs_down: int
    cost_usd: float = Field(description="Inference cost the drafts reported.")


class AcceptanceHistory(_Frozen):
    weeks: list[str] = Field(description="YYYY-Www, oldest first, ending with the digest's week.")
    series: dict[str, list[float | None]] = Field(description="Per agent, its acceptance in each of `weeks`.")


class PatternLine(_Frozen):
    agent: str
    phrase: str
    kind: str = Field(description="deleted or added.")
    category: str
    support: int = Field(description="Edited drafts where users deleted (or added) it.")
    frequency: float = Field(description="Support over the agent's edited drafts.")
    suggestion: str


class AlertLine(_Frozen):
    id: int
    kind: AlertKind
    agent: str
    severity: str
    message: str
    created_at: str


class JobLine(_Frozen):
    id: str
    status: JobState
    provider: str
    base_model: str
    dataset_version: str
    model_id: str | None
    estimated_cost_usd: float | None
    finished_at: str
    requested_by: str
    error: str | None


class MoveLine(_Frozen):
    model: str
    alias: str
    move: AliasMove
    from_version: str | None
    to_version: str
    canary_version: str | None
    canary_share: int
    actor: str
    approval_id: str | None
    reason: str | None
    at: str


class ApprovalLine(_Frozen):
    id: str
    action: str
    subject: str | None
    description: str
    requested_by: str
    created_at: str
    expires_at: str | None
    progress: str | None = Field(description="`1 of 2 approvals` where several approvers are needed.")


class ExperimentLine(_Frozen):
    id: str
    title: str
    status: ExperimentState
    verdict: str = Field(description="winner, loser or inconclusive, as the analysis stands.")
    reason: str
    metric: str
    control_value: float | None
    treatment_value: float | None
    control_n: int
    treatment_n: int
    difference: float | None = Field(description="Treatment minus control on the primary metric.")
    rate: bool = Field(description="The metric is a share (shown in percent) rather than a mean.")


class CostLine(_Frozen):
    kind: str = Field(description="training or inference.")
    model: str
    version: str | None
    provider: str | None
    usd: float
    estimated: bool
    events: int = Field(description="Jobs (training) or drafts (inference).")


class CostWeek(_Frozen):
    week: str
    training_usd: float
    inference_usd: float

    @property
    def total_usd(self) -> float:
        return self.training_usd + self.inference_usd


class Costs(_Frozen):
    total_usd: float
    training_usd: float
    inference_usd: float
    previous_total_usd: float | None = Field(description="The week before's spend, when the history covers it.")
    training_estimated: bool = Field(description="Some training cost is the catalog's estimate.")
    unpriced_events: int = Field(description="Drafts whose cost is unknown, left out of the totals.")
    rows: list[CostLine] = Field(description="The largest lines of the week's ledger.")
    history: list[CostWeek] = Field(description="Spend per week, oldest first, ending with the digest's week.")
    notes: list[str]


class NextAction(_Frozen):
    """Something the numbers point at, offered as a button in Slack and as a command elsewhere."""

    kind: ActionKind
    model: str = Field(description="The registered model (rollback, A/B) or the agent (retrain).")
    alias: str | None = Field(description="The alias a rollback or an A/B test is about.")
    label: str = Field(description="What the button says.")
    reason: str
    command: str = Field(description="The same from a terminal.")

    @property
    def value(self) -> str:
        """What the button carries: `model@alias`, or the agent to retrain."""
        return self.model if self.alias is None else f"{self.model}@{self.alias}"


class Headline(_Frozen):
    events: int
    previous_events: int
    acceptance: float | None = Field(description="Mean acceptance over every draft of the week, all agents.")
    previous_acceptance: float | None
    open_alerts: int
    jobs_succeeded: int
    jobs_failed: int
    deployments: int
    rollbacks: int
    pending_approvals: int
    spend_usd: float | None
    previous_spend_usd: float | None


class Digest(_Frozen):
    """What happened in one ISO week, and what to do next."""

    week: IsoWeek
    generated_at: str
    headline: Headline
    agents: list[AgentWeek] = Field(description="Most drafts first.")
    history: AcceptanceHistory
    patterns: list[PatternLine]
    alerts: list[AlertLine] = Field(description="Open now.")
    jobs: list[JobLine] = Field(description="Finished in the week, oldest first.")
    moves: list[MoveLine] = Field(description="Deployments, canaries, promotions and rollbacks, oldest first.")
    approvals: list[ApprovalLine] = Field(description="Pending now, oldest first.")
    experiments: list[ExperimentLine] = Field(description="Running now or ended in the week.")
    costs: Costs | None
    actions: list[NextAction]
    notes: list[str]

    def summary(self) -> str:
        """`2026-W03: 4,210 drafts, acceptance 71.2% (-3.4 points), 1 open alert, $412.30 spent`."""
        head = self.headline
        parts = [f"{head.events:,} drafts"]
        if head.acceptance is not None:
            change = ""
            if head.previous_acceptance is not None:
                change = f" ({(head.acceptance - head.previous_acceptance) * 100:+.1f} points)"
            parts.append(f"acceptance {head.acceptance:.1%}{change}")
        parts.append(f"{head.open_alerts} open alert{'s' if head.open_alerts != 1 else ''}")
        if head.spend_usd is not None:
            parts.append(f"${head.spend_usd:,.2f} spent")
        return f"{self.week.week}: " + ", ".join(parts)


# Building ------------------------------------------------------------------------------------------------------


def build_digest(svc: Services, *, week: str | None = None) -> Digest:
    """The digest of ISO week `week` (YYYY-Www; default: the last full week in FINETUNE_TIMEZONE)."""
    settings, store = svc.settings, svc.store
    today = analytics.today(svc.clock(), settings.timezone)
    span = parse_week(week, today=today, timezone=settings.timezone)
    analytics.roll_up(store, timezone=settings.timezone)  # acceptance reads the rollups: bring them up to date
    analytics.mine_patterns(store)
    agents = _agents(svc, span)
    alerts = [_alert(alert) for alert in analytics.open_alerts(store)]
    jobs = _jobs(svc, span)
    moves = _moves(svc, span)
    pending = [_approval(approval) for approval in approvals.pending(store).approvals]
    experiments = _experiments(svc, span)
    costs = _costs(svc, span)
    notes = [] if span.complete else [f"{span.week} is still running: its numbers are those so far ({today})."]
    return Digest(
        week=span,
        generated_at=iso(svc.clock()),
        headline=_headline(agents, alerts, jobs, moves, pending, costs),
        agents=agents,
        history=_history(svc, span, [agent.agent for agent in agents]),
        patterns=_patterns(svc, [agent.agent for agent in agents]),
        alerts=alerts,
        jobs=jobs,
        moves=moves,
        approvals=pending,
        experiments=experiments,
        costs=costs,
        actions=(_rollbacks(svc, alerts) + _retrains(svc, agents, alerts) + _ab_tests(svc))[:MAX_ACTIONS],
        notes=notes,
    )


def _agents(svc: Services, span: IsoWeek) -> list[AgentWeek]:
    report = analytics.acceptance_report(svc.store, window=analytics.Window.DAYS_7, as_of=span.end)
    rows = []
    for row in report.rows:
        trend = row.trend
        interval = row.acceptance_interval
        rows.append(
            AgentWeek(
                agent=row.agent, events=row.events, previous_events=trend.previous_events if trend else 0,
                acceptance=row.acceptance, acceptance_low=interval.low if interval else None,
                acceptance_high=interval.high if interval else None,
                previous_acceptance=trend.previous_acceptance if trend else None,
                change=trend.change if trend else None, unedited_share=row.unedited_share, rating=row.rating,
                thumbs_up=row.thumbs_up, thumbs_down=row.thumbs_down, cost_usd=row.cost_usd,
            )
        )  # fmt: skip
    return rows


def _history(svc: Services, span: IsoWeek, agents: list[str]) -> AcceptanceHistory:
    weeks = [span.before(back) for back in reversed(range(HISTORY_WEEKS))]
    series: dict[str, list[float | None]] = {agent: [] for agent in agents}
    for week in weeks:
        report = analytics.acceptance_report(svc.store, window=analytics.Window.DAYS_7, as_of=week.end)
        found = {row.agent: row.acceptance for row in report.rows}
        for agent in agents:
            series[agent].append(found.get(agent))
    return AcceptanceHistory(weeks=[week.week for week in weeks], series=series)


def _patterns(svc: Services, agents: list[str]) -> list[PatternLine]:
    lines: list[PatternLine] = []
    for agent in agents:
        try:
            report = analytics.pattern_report(svc.store, agent=agent, limit=PATTERNS_PER_AGENT)
        except NotFound:
            continue  # nothing of this agent mined yet: no edits
        lines += [
            PatternLine(
                agent=agent, phrase=p.phrase, kind=p.kind, category=p.category, support=p.support,
                frequency=p.frequency, suggestion=p.suggestion,
            )
            for p in report.patterns
            if p.frequency >= MIN_PATTERN_FREQUENCY
        ]  # fmt: skip
    lines.sort(key=lambda line: (-line.frequency, -line.support, line.agent, line.phrase))
    return lines[:MAX_PATTERNS]


def _alert(alert: analytics.Alert) -> AlertLine:
    return AlertLine(
        id=alert.id, kind=alert.kind, agent=alert.agent, severity=alert.severity, message=alert.message,
        created_at=alert.created_at,
    )  # fmt: skip


def _jobs(svc: Services, span: IsoWeek) -> list[JobLine]:
    found = []
    for state in sorted(FINAL_JOB_STATES):
        for job in list_jobs(svc.store, status=state, limit=JOBS_READ).jobs:
            if job.finished_at is not None and span.contains(job.finished_at):
                found.append(
                    JobLine(
                        id=job.id, status=job.status, provider=job.provider, base_model=job.base_model,
                        dataset_version=job.dataset_version, model_id=job.model_id,
                        estimated_cost_usd=job.estimated_cost_usd, finished_at=job.finished_at,
                        requested_by=job.requested_by, error=job.error,
                    )
                )  # fmt: skip
    return sorted(found, key=lambda line: (line.finished_at, line.id))


def _moves(svc: Services, span: IsoWeek) -> list[MoveLine]:
    moves = [
        MoveLine(
            model=m.model_name, alias=m.alias, move=m.move, from_version=m.from_version_id, to_version=m.to_version_id,
            canary_version=m.canary_version_id, canary_share=m.canary_share, actor=m.actor, approval_id=m.approval_id,
            reason=m.reason, at=m.at,
        )
        for m in registry.recent_moves(svc.store, limit=MOVES_READ)
        if m.move in SHOWN_MOVES and span.contains(m.at)
    ]  # fmt: skip
    return sorted(moves, key=lambda move: move.at)


def _approval(approval: approvals.Approval) -> ApprovalLine:
    return ApprovalLine(
        id=approval.id, action=approval.action, subject=approval.subject_id,
        description=approval.description or f"{approval.action} {approval.subject_id}",
        requested_by=f"{approval.requested_via}:{approval.requested_by}", created_at=approval.created_at,
        expires_at=approval.expires_at, progress=approval.progress(),
    )  # fmt: skip


def _experiments(svc: Services, span: IsoWeek) -> list[ExperimentLine]:
    lines = []
    for experiment in list_experiments(svc.store).experiments:
        running = experiment.status is ExperimentState.RUNNING
        if running or span.contains(experiment.ended_at):
            lines.append(_experiment(experiment_report(svc, experiment.id)))
    return lines


def _experiment(report: ExperimentReport) -> ExperimentLine:
    experiment, analysis = report.experiment, report.analysis
    primary = analysis.metrics[0] if analysis.metrics else None
    return ExperimentLine(
        id=experiment.id, title=experiment.title, status=experiment.status, verdict=analysis.verdict,
        reason=analysis.reason, metric=experiment.metric,
        control_value=primary.control.value if primary else None,
        treatment_value=primary.treatment.value if primary else None,
        control_n=analysis.control_n, treatment_n=analysis.treatment_n,
        difference=primary.difference if primary else None, rate=primary.rate if primary else True,
    )  # fmt: skip


def _costs(svc: Services, span: IsoWeek) -> Costs:
    week = cost_summary(svc, span=analytics.Span(start=span.start, end=span.end))
    first = span.before(HISTORY_WEEKS - 1)
    history = _cost_history(cost_summary(svc, span=analytics.Span(start=first.start, end=span.end)), first.start)
    previous = history[-2].total_usd if len(history) >= 2 else None
    rows = [
        CostLine(
            kind=row.kind, model=row.model, version=row.version, provider=row.provider, usd=row.usd,
            estimated=row.estimated, events=row.events,
        )
        for row in sorted(week.rows, key=lambda r: -r.usd)[:MAX_COST_ROWS]
        if row.usd > 0
    ]  # fmt: skip
    return Costs(
        total_usd=week.total_usd, training_usd=week.training_usd, inference_usd=week.inference_usd,
        previous_total_usd=previous, training_estimated=week.training_estimated,
        unpriced_events=week.unpriced_events, rows=rows, history=history, notes=list(week.notes),
    )  # fmt: skip


def _cost_history(summary: CostSummary, first_monday: date) -> list[CostWeek]:
    by_monday = {point.start: point for point in summary.weekly}
    weeks = []
    for back in range(HISTORY_WEEKS):
        monday = first_monday + timedelta(weeks=back)
        point = by_monday.get(monday)
        weeks.append(
            CostWeek(
                week=week_name(monday), training_usd=point.training_usd if point else 0.0,
                inference_usd=point.inference_usd if point else 0.0,
            )
        )  # fmt: skip
    return weeks


def _headline(
    agents: list[AgentWeek], alerts: list[AlertLine], jobs: list[JobLine], moves: list[MoveLine],
    pending: list[ApprovalLine], costs: Costs | None,
) -> Headline:  # fmt: skip
    return Headline(
        events=sum(agent.events for agent in agents),
        previous_events=sum(agent.previous_events for agent in agents),
        acceptance=_weighted([(agent.acceptance, agent.events) for agent in agents]),
        previous_acceptance=_weighted([(agent.previous_acceptance, agent.previous_events) for agent in agents]),
        open_alerts=len(alerts),
        jobs_succeeded=sum(job.status is JobState.SUCCEEDED for job in jobs),
        jobs_failed=sum(job.status is JobState.FAILED for job in jobs),
        deployments=sum(move.move is not AliasMove.ROLLBACK for move in moves),
        rollbacks=sum(move.move is AliasMove.ROLLBACK for move in moves),
        pending_approvals=len(pending),
        spend_usd=costs.total_usd if costs else None,
        previous_spend_usd=costs.previous_total_usd if costs else None,
    )


def _weighted(pairs: list[tuple[float | None, int]]) -> float | None:
    counted = [(value, weight) for value, weight in pairs if value is not None and weight > 0]
    total = sum(weight for _, weight in counted)
    return sum(value * weight for value, weight in counted) / total if total else None


# Next actions --------------------------------------------------------------------------------------------------


def _rollbacks(svc: Services, alerts: list[AlertLine]) -> list[NextAction]:
    """For each agent whose acceptance dropped, its registered model's production alias, if it can go back."""
    models = set(registry.list_models(svc.store))
    actions = []
    for alert in alerts:
        if alert.kind is not AlertKind.ACCEPTANCE_DROP or alert.agent not in models:
            continue
        alias = registry.PRODUCTION
        if not _can_roll_back(svc, alert.agent, alias):
            continue
        actions.append(
            NextAction(
                kind="rollback", model=alert.agent, alias=alias, label=f"Roll back {alert.agent}@{alias}",
                reason=f"{alert.agent}'s acceptance dropped (alert {alert.id}, {alert.severity}).",
                command=f"finetune rollback {alert.agent} --alias {alias}",
            )
        )  # fmt: skip
    return actions


def _can_roll_back(svc: Services, model: str, alias: str) -> bool:
    """Whether `model@alias` has a canary to end or an earlier version to go back to."""
    state = next((a for a in registry.list_aliases(svc.store, model) if a.alias == alias), None)
    if state is None:
        return False
    if state.canary_version_id:
        return True
    served = {move.to_version_id for move in registry.history(svc.store, model).moves if move.alias == alias}
    return len(served) > 1


def _retrains(svc: Services, agents: list[AgentWeek], alerts: list[AlertLine]) -> list[NextAction]:
    """Agents with new corrections to train on and no retraining in flight: those with an open alert first, then
    those whose drafts users edited most this week."""
    alerted = {alert.agent for alert in alerts}
    ranked = sorted(agents, key=lambda a: (a.agent not in alerted, -(a.events * (1 - (a.unedited_share or 1)))))
    actions: list[NextAction] = []
    for agent in ranked:
        if len(actions) == MAX_RETRAINS or agent.unedited_share in (None, 1.0):
            continue
        corrections = _new_corrections(svc, agent.agent)
        if corrections:
            actions.append(
                NextAction(
                    kind="retrain", model=agent.agent, alias=None, label=f"Retrain {agent.agent}",
                    reason=(
                        f"{corrections:,} new corrections of {agent.agent} since its last dataset version; "
                        f"acceptance {_shown(agent.acceptance)} this week."
                    ),
                    command=f"finetune retrain {agent.agent}",
                )
            )  # fmt: skip
    return actions


def _new_corrections(svc: Services, agent: str) -> int:
    """Corrections a retraining of `agent` would train on; 0 without a dataset or with one in flight."""
    from core.analytics import retrain

    if retrain.open_proposal(svc.store, agent) is not None:
        return 0
    try:
        version = retrain.agent_dataset_version(svc.store, agent)
    except NotFound:
        return 0
    return retrain.count_corrections(
        svc.store, agent=agent, version=version, min_quality=svc.settings.retrain_min_quality
    )


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ab_tests(svc: Services) -> list[NextAction]:
    """Every canary that no running experiment tests yet."""
    tested = {(e.name, e.alias) for e in list_experiments(svc.store).experiments if e.status is ExperimentState.RUNNING}
    actions = []
    for model in registry.models_overview(svc.store).models:
        for state in model.aliases:
            if state.canary_version_id is None or (model.name, state.alias) in tested:
                continue
            actions.append(
                NextAction(
                    kind="ab", model=model.name, alias=state.alias, label=f"Open A/B on {model.name}@{state.alias}",
                    reason=(
                        f"{state.canary_version_id} serves {state.canary_share}% of {model.name}@{state.alias}"
                        f" beside {state.version_id}, and no experiment measures it."
                    ),
                    command=f"finetune ab create {model.name} --alias {state.alias}",
                )
            )  # fmt: skip
    return actions

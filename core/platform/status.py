"""One picture of the whole system, the same in every face.

Every fact costs the same whatever the data's size: totals of large tables
are counters kept with the writes (`core.platform.counters`), and everything
else is an indexed lookup whose cost follows small tables (datasets, jobs,
aliases) or the undelivered part of the outbox, never the feedback.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from core.platform import approvals, counters, outbox, webhooks
from core.platform.settings import Settings
from core.platform.spend import SpendReport, month_report
from core.platform.store import Store
from core.platform.timeutil import parse_iso, utcnow
from core.vocabulary import JobState, values

STALE_AFTER_BEATS = 3  # missed heartbeats before the scheduler counts as stopped
SchedulerHealth = Literal["ok", "stale", "missing"]


class StatusReport(BaseModel):
    """Counts and pointers that tell an operator where things stand."""

    database: str = Field(description="Path of the SQLite database these facts come from.")
    feedback_events: int = Field(description="Feedback events ingested.")
    datasets: int = Field(description="Datasets defined.")
    dataset_versions: int = Field(description="Immutable dataset versions built.")
    jobs_by_state: dict[str, int] = Field(description="Fine-tuning jobs per unified state (every state listed).")
    models_by_alias: dict[str, str] = Field(
        description="Alias (`model@alias`, e.g. `support@production`) -> model version it points to."
    )
    pending_approvals: int = Field(description="Approval requests waiting for a decision.")
    outbox_pending: int = Field(description="Notifications not yet delivered to Slack.")
    outbox_dead: int = Field(description="Notifications given up on after bounded attempts (see `finetune outbox`).")
    dead_letters: list[outbox.OutboxEntry] = Field(description="The newest dead letters, with their last error.")
    webhooks_pending: int = Field(default=0, description="Webhook deliveries to applications not yet made.")
    webhooks_dead: int = Field(default=0, description="Webhook deliveries given up on (see `finetune webhooks`).")
    scheduler_heartbeat: str | None = Field(
        description="UTC time of the scheduler's last heartbeat, or null if it never ran."
    )
    scheduler_health: SchedulerHealth = Field(
        description="ok; stale when the last heartbeat is older than three heartbeat intervals (is `finetune serve` "
        "running?); missing when the scheduler never ran."
    )
    spend: SpendReport | None = Field(
        default=None, description="Estimated cost launched this month against FINETUNE_MONTHLY_BUDGET_USD."
    )


def get_status(store: Store, *, now: datetime | None = None, settings: Settings | None = None) -> StatusReport:
    """The report; with `settings`, it includes this month's spend against the budget."""
    jobs = dict.fromkeys(values(JobState), 0)  # every state, so a face can show the zeros too
    jobs.update(dict(store.db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()))
    aliases = store.query(
        "SELECT a.model_name, a.alias, v.version FROM model_aliases a"
        " JOIN model_versions v ON v.id = a.model_version_id ORDER BY a.model_name, a.alias"
    )
    undelivered = outbox.stats(store)
    hooks = webhooks.stats(store)
    heartbeat = store.query(
        "SELECT last_run_at, interval_seconds FROM scheduler_runs WHERE job_id = 'heartbeat'"
    )  # fmt: skip
    last_beat = heartbeat[0] if heartbeat else None
    return StatusReport(
        database=str(store.path),
        feedback_events=counters.value(store, counters.FEEDBACK_EVENTS),
        datasets=store.scalar("SELECT count(*) FROM datasets"),
        dataset_versions=store.scalar("SELECT count(*) FROM dataset_versions"),
        jobs_by_state=jobs,
        models_by_alias={f"{a['model_name']}@{a['alias']}": f"{a['model_name']} v{a['version']}" for a in aliases},
        pending_approvals=approvals.pending_count(store),
        outbox_pending=undelivered.pending,
        outbox_dead=undelivered.dead,
        dead_letters=outbox.dead_letters(store) if undelivered.dead else [],
        webhooks_pending=hooks.pending,
        webhooks_dead=hooks.dead,
        scheduler_heartbeat=last_beat["last_run_at"] if last_beat else None,
        scheduler_health=scheduler_health(
            last_beat["last_run_at"] if last_beat else None,
            last_beat["interval_seconds"] if last_beat else None,
            now=now or utcnow(),
        ),
        spend=month_report(store, settings, now=now or utcnow()) if settings is not None else None,
    )


def scheduler_health(last_run_at: str | None, interval_seconds: float | None, *, now: datetime) -> SchedulerHealth:
    """Whether the scheduler beat recently enough, judged by the interval it beats at (recorded with each beat).

    A beat without a recorded interval predates this finetune-ops: no serve of this version has beaten since.
    """
    if last_run_at is None:
        return "missing"
    if interval_seconds is None:
        return "stale"
    overdue = now - parse_iso(last_run_at) > timedelta(seconds=STALE_AFTER_BEATS * interval_seconds)
    return "stale" if overdue else "ok"

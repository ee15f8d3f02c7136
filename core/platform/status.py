"""One picture of the whole system, the same in every face."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.platform import approvals, outbox
from core.platform.store import Store
from core.vocabulary import JobState, values


class StatusReport(BaseModel):
    """Counts and pointers that tell an operator where things stand."""

    feedback_events: int = Field(description="Feedback events ingested.")
    datasets: int = Field(description="Datasets defined.")
    dataset_versions: int = Field(description="Immutable dataset versions built.")
    jobs_by_state: dict[str, int] = Field(description="Fine-tuning jobs per unified state (every state listed).")
    models_by_alias: dict[str, str] = Field(
        description="Alias (`model@alias`, e.g. `support@production`) -> model version it points to."
    )
    pending_approvals: int = Field(description="Approval requests waiting for a decision.")
    outbox_pending: int = Field(description="Notifications not yet delivered to Slack.")
    scheduler_heartbeat: str | None = Field(
        description="UTC time of the scheduler's last heartbeat, or null if it never ran."
    )


def get_status(store: Store) -> StatusReport:
    jobs = dict.fromkeys(values(JobState), 0)  # every state, so a face can show the zeros too
    jobs.update(dict(store.db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()))
    aliases = store.query(
        "SELECT a.model_name, a.alias, v.version FROM model_aliases a"
        " JOIN model_versions v ON v.id = a.model_version_id ORDER BY a.model_name, a.alias"
    )
    return StatusReport(
        feedback_events=store.scalar("SELECT count(*) FROM feedback"),
        datasets=store.scalar("SELECT count(*) FROM datasets"),
        dataset_versions=store.scalar("SELECT count(*) FROM dataset_versions"),
        jobs_by_state=jobs,
        models_by_alias={f"{a['model_name']}@{a['alias']}": f"{a['model_name']} v{a['version']}" for a in aliases},
        pending_approvals=approvals.pending_count(store),
        outbox_pending=outbox.stats(store).pending,
        scheduler_heartbeat=store.scalar("SELECT last_run_at FROM scheduler_runs WHERE job_id = 'heartbeat'"),
    )

"""The SQL of the cost ledger and the retraining trigger: jobs as spend, registry versions, new corrections.

Acceptance and inference cost come from the rollups (`core.analytics.db`);
what this module reads beside them is the training side (jobs and the versions
they registered) and, for the retraining trigger, the feedback that arrived
since an agent's last dataset version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from core.platform.store import Store
from core.vocabulary import JobState

# A job counts as spend once it reached (or is reaching) its provider: the rule of `core.platform.spend`.
_BILLED = (
    "j.status != ? AND NOT (j.status IN (?, ?) AND j.provider_job_id IS NULL)",
    (JobState.PENDING_APPROVAL.value, JobState.CANCELLED.value, JobState.FAILED.value),
)


def billed_jobs(store: Store, *, since: str | None, before: str) -> list[dict[str, Any]]:
    """Jobs created in [since, before) (UTC ISO times) that count as spend, with the version each registered."""
    clause, params = _BILLED
    where = [clause, "j.created_at < ?"]
    values: list[Any] = [*params, before]
    if since is not None:
        where.append("j.created_at >= ?")
        values.append(since)
    return store.query(
        "SELECT j.id, j.provider, j.base_model, j.dataset_version_id, j.status, j.estimated_cost_usd,"
        " j.actual_cost_usd, j.created_at, v.id AS version_id, v.name AS model_name"
        " FROM jobs j LEFT JOIN model_versions v ON v.job_id = j.id"
        f" WHERE {' AND '.join(where)} ORDER BY j.created_at",
        tuple(values),
    )


def versions(store: Store, version_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Registry versions by id, with the training cost of the job that made each (actual and estimated)."""
    if not version_ids:
        return {}
    marks = ", ".join("?" * len(version_ids))
    rows = store.query(
        "SELECT v.id, v.name, v.provider, v.provider_model_id, v.base_model, v.job_id, v.cost_usd, v.created_at,"
        " j.estimated_cost_usd, j.actual_cost_usd"
        f" FROM model_versions v LEFT JOIN jobs j ON j.id = v.job_id WHERE v.id IN ({marks})",
        tuple(version_ids),
    )
    return {row["id"]: row for row in rows}


# ---------------------------------------------------------------- retraining


def last_dataset_version(store: Store, dataset: str) -> dict[str, Any] | None:
    """The newest version of dataset `dataset` (by number), or None."""
    rows = store.query(
        "SELECT v.id, v.version, v.filters, v.created_at FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
        " WHERE d.name = ? ORDER BY v.version DESC LIMIT 1",
        (dataset,),
    )
    return rows[0] if rows else None


def last_job_for_dataset(store: Store, dataset: str) -> dict[str, Any] | None:
    """The newest job trained on any version of dataset `dataset`, or None."""
    rows = store.query(
        "SELECT id, provider, base_model, method, hyperparameters FROM jobs WHERE dataset_version_id LIKE ? ESCAPE '\\'"
        " ORDER BY created_at DESC LIMIT 1",
        (_escape_like(dataset) + "@%",),
    )
    return rows[0] if rows else None


def corrections_since(store: Store, *, agent: str, since: str) -> list[dict[str, Any]]:
    """Ids of `agent`'s feedback ingested after `since` (UTC ISO) whose final text exists and differs from the draft."""
    return store.query(
        "SELECT id FROM feedback WHERE agent = ? AND ingested_at > ? AND final_output IS NOT NULL"
        " AND final_output != ai_output",
        (agent, since),
    )


def latest_versions(store: Store) -> list[dict[str, Any]]:
    """The last version of every dataset, newest first, with its examples per agent (`by_agent`)."""
    rows = store.query(
        "SELECT v.id, v.counts FROM dataset_versions v WHERE v.version ="
        " (SELECT max(o.version) FROM dataset_versions o WHERE o.dataset_id = v.dataset_id)"
        " ORDER BY v.created_at DESC"
    )
    return [{"id": row["id"], "by_agent": json.loads(row["counts"] or "{}").get("by_agent")} for row in rows]


def retrain_approvals(store: Store, agent: str, *, statuses: Sequence[str]) -> list[dict[str, Any]]:
    """Ids of the retraining approvals for `agent` in `statuses`, newest first."""
    marks = ", ".join("?" * len(statuses))
    return store.query(
        f"SELECT id FROM approvals WHERE action = 'retrain' AND subject_id = ? AND status IN ({marks})"
        " ORDER BY created_at DESC",
        (agent, *statuses),
    )


def add_to_payload(store: Store, approval_id: str, fields: dict[str, Any]) -> None:
    """Record what an approved retraining did (its dataset version and job, or its error) in the approval's payload.

    The proposal's own record is its approval: the closed loop and the dedupe both read these fields there.
    """
    with store.write() as db:
        row = db.execute("SELECT payload FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        payload = {**json.loads(row[0] or "{}"), **fields} if row else dict(fields)
        db.execute("UPDATE approvals SET payload = ? WHERE id = ?", (json.dumps(payload), approval_id))


def job_status(store: Store, job_id: str) -> str | None:
    status = store.scalar("SELECT status FROM jobs WHERE id = ?", (job_id,))
    return None if status is None else str(status)


def agents_with_feedback(store: Store) -> list[str]:
    return [row["agent"] for row in store.query("SELECT DISTINCT agent FROM feedback ORDER BY agent")]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

"""Every statement on the `experiments` table and `canary_guard_actions`, and the outcome reads they analyse.

Outcomes are feedback events (`core.data`) that name the version or template
that served them; this module reads only the columns an analysis needs, oldest
first, through the `feedback_outcomes` index (versions) or `feedback_agent`
(templates). Writes run inside the caller's `store.write()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.platform.store import Store
from core.vocabulary import Arm, ExperimentState

# What an analysis reads of each outcome: `unedited` says the final text is the draft itself (or absent).
_OUTCOME = "created_at, acceptance, rating, latency_ms, (final_output IS NULL OR final_output = ai_output) AS unedited"
_TEXTS = ", ai_output, final_output"  # only when a metric needs the texts themselves (edit distance)


# Experiments ---------------------------------------------------------------------------------------------


def insert_experiment(store: Store, row: dict[str, Any]) -> None:
    """A new experiment row. Inside the caller's transaction."""
    columns = ", ".join(row)
    store.db.execute(f"INSERT INTO experiments ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def experiment(store: Store, experiment_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM experiments WHERE id = ?", (experiment_id,))
    return rows[0] if rows else None


def recent_experiments(store: Store, *, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` experiments, running ones first."""
    return store.query(
        "SELECT * FROM experiments ORDER BY status = ? DESC, created_at DESC, rowid DESC LIMIT ?",
        (ExperimentState.RUNNING, limit),
    )


def running_canary_experiment(store: Store, model_name: str, alias: str) -> dict[str, Any] | None:
    rows = store.query(
        "SELECT * FROM experiments WHERE kind = 'canary' AND model_name = ? AND alias = ? AND status = ?",
        (model_name, alias, ExperimentState.RUNNING),
    )
    return rows[0] if rows else None


def running_template_experiment(store: Store, agent: str, control: str, treatment: str) -> dict[str, Any] | None:
    rows = store.query(
        "SELECT * FROM experiments WHERE kind = 'template' AND name = ? AND control_template = ?"
        " AND treatment_template = ? AND status = ?",
        (agent, control, treatment, ExperimentState.RUNNING),
    )
    return rows[0] if rows else None


def end_experiment(
    store: Store, experiment_id: str, *, status: ExperimentState, verdict: str | None, reason: str, result: str,
    ended_by: str, now: str,
) -> bool:  # fmt: skip
    """Stop or conclude a running experiment, keeping its last analysis; False when it was no longer running."""
    cursor = store.db.execute(
        "UPDATE experiments SET status = ?, verdict = ?, reason = ?, result = ?, ended_by = ?, ended_at = ?"
        " WHERE id = ? AND status = ?",
        (status, verdict, reason, result, ended_by, now, experiment_id, ExperimentState.RUNNING),
    )
    return cursor.rowcount == 1


# Outcomes -----------------------------------------------------------------------------------------------


def version_outcomes(
    store: Store, *, control: str, treatment: str, since: str, until: str | None, texts: bool
) -> list[dict[str, Any]]:
    """Outcomes served by `control` on the stable arm and `treatment` on the canary arm (or on no arm named),
    created in [since, until], oldest first; `treatment` says which version served each."""
    where, params = _window(since, until)
    return store.query(
        f"SELECT {_OUTCOME}{_TEXTS if texts else ''}, model_version = ? AS treatment FROM feedback"
        " WHERE model_version IS NOT NULL AND ((model_version = ? AND (arm IS NULL OR arm = ?))"
        f" OR (model_version = ? AND (arm IS NULL OR arm = ?))) {where} ORDER BY created_at, id",
        (treatment, control, Arm.STABLE, treatment, Arm.CANARY, *params),
    )


def template_outcomes(
    store: Store, *, agent: str, control: str, treatment: str, since: str, until: str | None, texts: bool
) -> list[dict[str, Any]]:
    """Outcomes of `agent`'s drafts written with template `control` or `treatment`, in [since, until], oldest first."""
    where, params = _window(since, until)
    return store.query(
        f"SELECT {_OUTCOME}{_TEXTS if texts else ''}, template = ? AS treatment FROM feedback"
        f" WHERE agent = ? AND template IN (?, ?) {where} ORDER BY created_at, id",
        (treatment, agent, control, treatment, *params),
    )


def _window(since: str, until: str | None) -> tuple[str, Sequence[str]]:
    if until is None:
        return "AND created_at >= ?", (since,)
    return "AND created_at >= ? AND created_at <= ?", (since, until)


# What the canary guard did ------------------------------------------------------------------------------


def guard_action(store: Store, *, model_name: str, alias: str, canary: str, since: str) -> dict[str, Any] | None:
    """What the guard already did about this run of `canary` behind `model_name@alias`, if anything."""
    rows = store.query(
        "SELECT * FROM canary_guard_actions WHERE model_name = ? AND alias = ? AND canary_version_id = ? AND since = ?",
        (model_name, alias, canary, since),
    )
    return rows[0] if rows else None


def latest_guard_action(store: Store, *, model_name: str, alias: str, canary: str) -> dict[str, Any] | None:
    """The guard's latest action on `canary` behind `model_name@alias`, whichever canary run it was in."""
    rows = store.query(
        "SELECT * FROM canary_guard_actions WHERE model_name = ? AND alias = ? AND canary_version_id = ?"
        " ORDER BY at DESC LIMIT 1",
        (model_name, alias, canary),
    )
    return rows[0] if rows else None


def record_guard_action(
    store: Store, *, model_name: str, alias: str, canary: str, since: str, action: str, approval_id: str | None,
    evidence: str, now: str,
) -> None:  # fmt: skip
    """Remember what the guard did about this run of the canary. Inside the caller's transaction."""
    store.db.execute(
        "INSERT INTO canary_guard_actions (model_name, alias, canary_version_id, since, action, approval_id,"
        " evidence, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (model_name, alias, canary, since, action, approval_id, evidence, now),
    )

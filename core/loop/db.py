"""The loop's storage: every statement on `loop_runs` and `loop_steps`.

Write functions open no transaction of their own: they run inside the
caller's `store.write()` block, so a run's move, the request it makes, its
notifications and its audit row commit together (see `core.loop.runs`).
"""

from __future__ import annotations

from typing import Any

from core.platform.store import Store

RUN_COLUMNS = (
    "retrain_approval_id", "dataset_version_id", "job_id", "version_id", "evaluation_id", "canary_approval_id",
    "rollout_id", "rollback_approval_id",
)  # fmt: skip


def insert_run(store: Store, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    store.db.execute(f"INSERT INTO loop_runs ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def run(store: Store, run_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM loop_runs WHERE id = ?", (run_id,))
    return rows[0] if rows else None


def runs(store: Store, *, active_only: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    where = "WHERE outcome IS NULL" if active_only else ""
    return store.query(f"SELECT * FROM loop_runs {where} ORDER BY created_at DESC, id DESC LIMIT ?", (limit,))


def active_run_of(store: Store, model_name: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM loop_runs WHERE model_name = ? AND outcome IS NULL", (model_name,))
    return rows[0] if rows else None


def run_with_retrain_approval(store: Store, approval_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM loop_runs WHERE retrain_approval_id = ?", (approval_id,))
    return rows[0] if rows else None


def move_run(store: Store, run_id: str, *, expected_revision: int, changes: dict[str, Any]) -> bool:
    """Apply `changes` if the run is still at `expected_revision` (another process may have moved it)."""
    assignments = ", ".join(f"{column} = ?" for column in changes)
    cursor = store.db.execute(
        f"UPDATE loop_runs SET {assignments}, revision = revision + 1 WHERE id = ? AND revision = ?",
        (*changes.values(), run_id, expected_revision),
    )
    return cursor.rowcount == 1


def add_step(store: Store, *, run_id: str, step: str, text: str, at: str) -> int:
    seq = int(
        store.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM loop_steps WHERE run_id = ?", (run_id,)).fetchone()[0]
    )
    store.db.execute(
        "INSERT INTO loop_steps (run_id, seq, step, text, at) VALUES (?, ?, ?, ?, ?)", (run_id, seq, step, text, at)
    )
    return seq


def steps(store: Store, run_id: str) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM loop_steps WHERE run_id = ? ORDER BY seq", (run_id,))


def pending_retrain_approvals(store: Store) -> list[dict[str, Any]]:
    """Retraining requests still open or just approved that no run has taken up yet."""
    return store.query(
        "SELECT id FROM approvals WHERE action = 'retrain' AND status IN ('pending', 'approved')"
        " AND id NOT IN (SELECT retrain_approval_id FROM loop_runs WHERE retrain_approval_id IS NOT NULL)"
        " ORDER BY created_at"
    )

"""Evaluation's storage: every statement on `evaluations` and `eval_results`.

Functions take the store and plain values and return plain rows. The write
functions open no transaction of their own: they run inside the caller's
`store.write()`, so an example's rows commit together with the evaluation's
progress and spend, and an evaluation's end with its notification.

`eval_results` holds one row per example, kind of row (`metric`) and `arm`:
`output` rows per arm (candidate, baseline) with the text, tokens, latency,
cost and scores; `judgment` rows per order (baseline_first, candidate_first)
and `calibration` rows per order (final_first, draft_first) with the judge's
answer and its pick. A unique index keeps an example from being stored twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.platform.store import Store
from core.vocabulary import EvaluationState

KIND = "offline"  # evaluations.kind of a candidate against a baseline on a dataset version


@dataclass(frozen=True)
class ResultRow:
    """One row of `eval_results`, as written."""

    feedback_id: str
    ordinal: int
    metric: str
    arm: str
    value: float | None
    output: str | None
    detail: Mapping[str, Any]
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None


# Evaluations ---------------------------------------------------------------------------------------


def insert_evaluation(store: Store, row: Mapping[str, Any]) -> None:
    columns = ", ".join(row)
    store.db.execute(
        f"INSERT INTO evaluations (kind, {columns}) VALUES (?, {', '.join('?' * len(row))})", (KIND, *row.values())
    )


def evaluation(store: Store, evaluation_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM evaluations WHERE id = ? AND kind = ?", (evaluation_id, KIND))
    return rows[0] if rows else None


def evaluation_with_key(store: Store, key: str) -> dict[str, Any] | None:
    """The evaluation requested with idempotency key `key`, if any."""
    rows = store.query("SELECT * FROM evaluations WHERE idempotency_key = ?", (key,))
    return rows[0] if rows else None


def recent_evaluations(store: Store, *, limit: int) -> list[dict[str, Any]]:
    return store.query(
        "SELECT * FROM evaluations WHERE kind = ? ORDER BY created_at DESC, rowid DESC LIMIT ?", (KIND, limit)
    )


def recent_ids(store: Store, *, limit: int = 5) -> list[str]:
    return [row["id"] for row in recent_evaluations(store, limit=limit)]


def claimable(store: Store, *, stale_before: str) -> list[dict[str, Any]]:
    """Queued evaluations, oldest first, then running ones whose runner has not been heard of since `stale_before`."""
    return store.query(
        "SELECT * FROM evaluations WHERE kind = :kind AND (status = :queued"
        " OR (status = :running AND coalesce(updated_at, created_at) < :stale)) ORDER BY created_at, rowid",
        {"kind": KIND, "queued": EvaluationState.QUEUED, "running": EvaluationState.RUNNING, "stale": stale_before},
    )


def running(store: Store) -> list[dict[str, Any]]:
    return store.query(
        "SELECT * FROM evaluations WHERE kind = ? AND status = ? ORDER BY created_at", (KIND, EvaluationState.RUNNING)
    )


def claim(store: Store, evaluation_id: str, *, runner: str, expected: Mapping[str, Any], now: str) -> bool:
    """Take the evaluation for `runner` unless someone else changed it since it was read as `expected`."""
    cursor = store.db.execute(
        "UPDATE evaluations SET status = ?, runner = ?, started_at = coalesce(started_at, ?), updated_at = ?,"
        " status_reason = NULL WHERE id = ? AND status = ? AND coalesce(runner, '') = ?"
        " AND coalesce(updated_at, '') = ?",
        (
            EvaluationState.RUNNING, runner, now, now, evaluation_id, expected["status"], expected["runner"] or "",
            expected["updated_at"] or "",
        ),
    )  # fmt: skip
    return cursor.rowcount == 1


def start(store: Store, evaluation_id: str, *, total: int, split: str, now: str) -> None:
    store.db.execute(
        "UPDATE evaluations SET total = ?, split = ?, updated_at = ? WHERE id = ?", (total, split, now, evaluation_id)
    )


def progress(store: Store, evaluation_id: str, *, done: int, cost_usd: float, unpriced: int, now: str) -> None:
    store.db.execute(
        "UPDATE evaluations SET done = ?, cost_usd = ?, unpriced = ?, updated_at = ? WHERE id = ?",
        (done, cost_usd, unpriced, now, evaluation_id),
    )


def finish(
    store: Store, evaluation_id: str, *, status: EvaluationState, reason: str | None, summary: str | None, now: str
) -> None:
    store.db.execute(
        "UPDATE evaluations SET status = ?, status_reason = ?, summary = coalesce(?, summary), finished_at = ?,"
        " updated_at = ?, runner = NULL WHERE id = ?",
        (status, reason, summary, now, now, evaluation_id),
    )


# Per-example results ------------------------------------------------------------------------------------


def insert_results(store: Store, evaluation_id: str, rows: Iterable[ResultRow]) -> None:
    store.db.conn.executemany(
        "INSERT INTO eval_results (evaluation_id, feedback_id, ordinal, metric, arm, value, output, detail,"
        " input_tokens, output_tokens, latency_ms, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                evaluation_id, row.feedback_id, row.ordinal, row.metric, row.arm, row.value, row.output,
                json.dumps(row.detail, sort_keys=True), row.input_tokens, row.output_tokens, row.latency_ms,
                row.cost_usd,
            )
            for row in rows
        ],
    )  # fmt: skip


def results(store: Store, evaluation_id: str, *, metric: str | None = None) -> list[ResultRow]:
    """The evaluation's rows in example order (`metric` alone when given)."""
    where, params = "evaluation_id = ?", [evaluation_id]
    if metric is not None:
        where += " AND metric = ?"
        params.append(metric)
    found = store.query(
        "SELECT feedback_id, ordinal, metric, arm, value, output, detail, input_tokens, output_tokens, latency_ms,"
        f" cost_usd FROM eval_results WHERE {where} ORDER BY ordinal, metric, arm",
        params,
    )
    return [ResultRow(**{**row, "detail": json.loads(row["detail"] or "{}")}) for row in found]


def measured_feedback_ids(store: Store, evaluation_id: str, *, metric: str) -> set[str]:
    """Examples already stored whole (they have rows of `metric`, written last with the rest)."""
    rows = store.query(
        "SELECT DISTINCT feedback_id FROM eval_results WHERE evaluation_id = ? AND metric = ?", (evaluation_id, metric)
    )
    return {row["feedback_id"] for row in rows}

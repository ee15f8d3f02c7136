"""All of the analytics capability's SQL: the rollups, the phrase counts, their watermarks, the alerts.

Analytics reads `feedback` incrementally: each reader (`rollups`, `patterns`)
keeps the last feedback rowid it has folded in, in `analytics_watermarks`, and
moves it in the same transaction as the results it wrote, so a crash or a
second run never counts a row twice. Feedback rows are only ever appended
(ingest publishes them; nothing updates or deletes them), and a writer holds
SQLite's one write lock while it inserts, so every row at or below the largest
committed rowid is already there when a reader looks.

Empty identifiers (no model version, intent or template) are stored in the
rollups as '' so they can be part of the primary key; readers turn them back
into None.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from core.platform.store import Store

# ---------------------------------------------------------------- watermarks


@dataclass(frozen=True)
class Watermark:
    last_rowid: int
    detail: str | None


def watermark(store: Store, name: str) -> Watermark:
    rows = store.query("SELECT last_rowid, detail FROM analytics_watermarks WHERE name = ?", (name,))
    return Watermark(rows[0]["last_rowid"], rows[0]["detail"]) if rows else Watermark(0, None)


def move_watermark(store: Store, name: str, *, expected: int, last_rowid: int, detail: str | None) -> bool:
    """Move `name` from `expected` to `last_rowid` (inside the writer's transaction); False if another run moved it."""
    with store.write() as db:
        if watermark(store, name).last_rowid != expected:
            return False
        db.execute(
            "INSERT INTO analytics_watermarks (name, last_rowid, detail) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET last_rowid = excluded.last_rowid, detail = excluded.detail",
            (name, last_rowid, detail),
        )
        return True


def last_feedback_rowid(store: Store) -> int:
    """The rowid of the newest feedback row (0 when there is none): one step down the table's b-tree."""
    return int(store.scalar("SELECT max(rowid) FROM feedback") or 0)


# ---------------------------------------------------------------- rollups

DIMENSIONS = ("agent", "day", "model_version", "intent", "template")
MEASURES = (
    "events", "acceptance_n", "acceptance_sum", "acceptance_sumsq", "unedited", "rated", "rating_sum",
    "thumbs_up", "thumbs_down", "latency_n", "latency_sum", "cost_n", "cost_sum",
)  # fmt: skip

# Each measure over a group of feedback rows. Unedited: kept whole, with no edit operation at all (no final
# text, or one equal to the draft up to whitespace). Thumbs: ratings of 4-5 are up, 1-2 down (up is stored as
# 5 and down as 1, so both scales fold together).
_AGGREGATES = (
    "count(*)",
    "count(acceptance)",
    "total(acceptance)",
    "total(acceptance * acceptance)",
    "count(CASE WHEN acceptance >= 1 AND coalesce(edit_ops, '[]') = '[]' THEN 1 END)",
    "count(rating)",
    "total(rating)",
    "count(CASE WHEN rating >= 4 THEN 1 END)",
    "count(CASE WHEN rating <= 2 THEN 1 END)",
    "count(latency_ms)",
    "total(latency_ms)",
    "count(cost_usd)",
    "total(cost_usd)",
)


def aggregate_feedback(store: Store, *, after: int, upto: int, day_sql: str) -> list[tuple[Any, ...]]:
    """Rollup rows (DIMENSIONS then MEASURES) of the feedback rows with rowid in (after, upto].

    `day_sql` is the SQL expression of an event's local day (built by `rollups.day_sql` from a time zone).
    """
    sql = (
        f"SELECT agent, {day_sql}, coalesce(model_version, ''), coalesce(intent, ''), coalesce(template, ''),"
        f" {', '.join(_AGGREGATES)} FROM feedback WHERE rowid > ? AND rowid <= ? GROUP BY 1, 2, 3, 4, 5"
    )
    return [tuple(row) for row in store.db.execute(sql, (after, upto))]


def fold_into_rollups(store: Store, rows: Sequence[tuple[Any, ...]]) -> None:
    """Add aggregated rows to the rollups (inside the writer's transaction)."""
    columns = (*DIMENSIONS, *MEASURES)
    added = ", ".join(f"{m} = {m} + excluded.{m}" for m in MEASURES)
    sql = (
        f"INSERT INTO analytics_rollups ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT ({', '.join(DIMENSIONS)}) DO UPDATE SET {added}"
    )
    with store.write() as db:
        db.conn.executemany(sql, rows)


def clear_rollups(store: Store) -> None:
    with store.write() as db:
        db.execute("DELETE FROM analytics_rollups")


def rollup_totals(
    store: Store,
    *,
    group_by: Sequence[str],
    agent: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> list[dict[str, Any]]:
    """Sums of every measure per combination of `group_by` dimensions, over days in [start, end] (ISO dates)."""
    unknown = [name for name in group_by if name not in DIMENSIONS]
    if unknown:
        raise ValueError(f"not a rollup dimension: {unknown}")
    where, params = _rollup_where(agent=agent, start=start, end=end)
    keys = ", ".join(group_by)
    sums = ", ".join(f"total({m}) AS {m}" for m in MEASURES)
    select = f"{keys}, {sums}" if group_by else sums
    group = f" GROUP BY {keys}" if group_by else ""
    rows = store.query(f"SELECT {select} FROM analytics_rollups{where}{group}", params)
    return [row for row in rows if row["events"]]  # an empty selection sums to one row of zeros


def _rollup_where(*, agent: str | None, start: str | None, end: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for clause, value in (("agent = ?", agent), ("day >= ?", start), ("day <= ?", end)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def rollup_snapshot(store: Store) -> list[dict[str, Any]]:
    """Every rollup row, in key order (tests and rebuild checks compare these)."""
    return store.query(f"SELECT * FROM analytics_rollups ORDER BY {', '.join(DIMENSIONS)}")


def agents_with_rollups(store: Store, *, start: str | None = None, end: str | None = None) -> list[str]:
    where, params = _rollup_where(agent=None, start=start, end=end)
    return [row["agent"] for row in store.query(f"SELECT DISTINCT agent FROM analytics_rollups{where}", params)]


# ---------------------------------------------------------------- phrase counts


PHRASE_COLUMNS = (
    "phrase", "support", "slack", "present_edited", "present_unedited", "base_edited", "base_unedited", "example",
)  # fmt: skip
TOTAL_COLUMNS = ("edited", "unedited", "sampled_edited", "sampled_unedited")


def feedback_for_mining(store: Store, *, after: int, upto: int, sample_every: int) -> Iterator[tuple[Any, ...]]:
    """(rowid, id, agent, unedited, edit_ops JSON, draft) of feedback rows in (after, upto], by rowid.

    The draft is read only for the rows in the presence sample (rowid divisible by `sample_every`).
    """
    cursor = store.db.execute(
        "SELECT rowid, id, agent, acceptance >= 1 AND coalesce(edit_ops, '[]') = '[]',"
        " edit_ops, CASE WHEN rowid % ? = 0 THEN ai_output END"
        " FROM feedback WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
        (sample_every, after, upto),
    )
    yield from cursor


def phrase_totals(store: Store, agent: str) -> dict[str, int] | None:
    rows = store.query(f"SELECT {', '.join(TOTAL_COLUMNS)} FROM analytics_phrase_totals WHERE agent = ?", (agent,))
    return rows[0] if rows else None


def phrases(store: Store, agent: str, kind: str) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT {', '.join(PHRASE_COLUMNS)} FROM analytics_phrases WHERE agent = ? AND kind = ?", (agent, kind)
    )


def save_phrases(
    store: Store,
    *,
    agent: str,
    totals: dict[str, int],
    upserts: Sequence[tuple[Any, ...]],
    removed: Sequence[tuple[str, str]],
) -> None:
    """Write an agent's totals, changed phrases ((kind, *PHRASE_COLUMNS) each) and pruned ones (kind, phrase)."""
    with store.write() as db:
        db.execute(
            f"INSERT OR REPLACE INTO analytics_phrase_totals (agent, {', '.join(TOTAL_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
            (agent, *(totals[name] for name in TOTAL_COLUMNS)),
        )
        columns = ("agent", "kind", *PHRASE_COLUMNS)
        db.conn.executemany(
            f"INSERT OR REPLACE INTO analytics_phrases ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [(agent, *row) for row in upserts],
        )
        db.conn.executemany(
            "DELETE FROM analytics_phrases WHERE agent = ? AND kind = ? AND phrase = ?",
            [(agent, kind, phrase) for kind, phrase in removed],
        )


def top_phrases(store: Store, *, agent: str, min_support: int, limit: int) -> list[dict[str, Any]]:
    """An agent's phrases with at least `min_support` drafts, most frequent first."""
    return store.query(
        f"SELECT kind, {', '.join(PHRASE_COLUMNS)} FROM analytics_phrases"
        " WHERE agent = ? AND support >= ? ORDER BY support DESC, length(phrase) DESC LIMIT ?",
        (agent, min_support, limit),
    )


def mined_agents(store: Store) -> list[str]:
    return [row["agent"] for row in store.query("SELECT agent FROM analytics_phrase_totals ORDER BY agent")]


# ---------------------------------------------------------------- alerts

_ALERT_COLUMNS = "id, kind, subject, severity, message, dedupe_key, evidence, created_at, checked_at, resolved_at"


def open_alert(store: Store, dedupe_key: str) -> dict[str, Any] | None:
    rows = store.query(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE dedupe_key = ? AND resolved_at IS NULL", (dedupe_key,)
    )
    return rows[0] if rows else None


def insert_alert(
    store: Store, *, kind: str, subject: str, severity: str, message: str, dedupe_key: str, evidence: dict[str, Any],
    now: str,
) -> int:  # fmt: skip
    with store.write() as db:
        cursor = db.execute(
            "INSERT INTO alerts (kind, subject, severity, message, dedupe_key, evidence, created_at, checked_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, subject, severity, message, dedupe_key, json.dumps(evidence), now, now),
        )
        return int(cursor.lastrowid or 0)


def touch_alert(store: Store, alert_id: int, *, checked_at: str) -> None:
    with store.write() as db:
        db.execute("UPDATE alerts SET checked_at = ? WHERE id = ?", (checked_at, alert_id))


def resolve_alert(store: Store, alert_id: int, *, resolved_at: str, evidence: dict[str, Any]) -> None:
    with store.write() as db:
        db.execute(
            "UPDATE alerts SET resolved_at = ?, checked_at = ?, evidence = ? WHERE id = ? AND resolved_at IS NULL",
            (resolved_at, resolved_at, json.dumps(evidence), alert_id),
        )


def alerts(store: Store, *, open_only: bool, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """Alerts of `kinds`, newest first; only the unresolved ones when `open_only`."""
    marks = ", ".join("?" * len(kinds))
    where = f"kind IN ({marks})" + (" AND resolved_at IS NULL" if open_only else "")
    return store.query(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where} ORDER BY id DESC", tuple(kinds))

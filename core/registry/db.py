"""The registry's storage: every statement on `registered_models`, `model_versions`, `model_aliases` and `promotions`.

Functions take the store and plain values and return plain rows. The write
functions open no transactions of their own: they run inside the caller's
`store.write()` block, so an alias move, its ledger row, its notification and
its audit row commit together (see `core.registry.service`). Every write to
`model_aliases` bumps the `registry_aliases` counter in that same transaction:
resolution caches the alias table and rereads it only when that counter moved.
"""

from __future__ import annotations

import json
from typing import Any

from core.platform import counters
from core.platform.store import Store

ALIAS_COUNTER = "registry_aliases"  # bumped with every alias write: the resolution cache's generation
RETIRED = "retired"

# Models and versions -------------------------------------------------------------------------------------


def model_exists(store: Store, name: str) -> bool:
    return bool(store.scalar("SELECT 1 FROM registered_models WHERE name = ?", (name,)))


def ensure_model(store: Store, name: str, *, actor: str, now: str) -> None:
    """Register model `name` unless it is already registered."""
    store.db.execute(
        "INSERT INTO registered_models (name, created_by, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        (name, actor, now),
    )


def model_names(store: Store) -> list[str]:
    return [row["name"] for row in store.query("SELECT name FROM registered_models ORDER BY name")]


def insert_version(
    store: Store, *, name: str, provider: str, provider_model_id: str | None, job_id: str | None,
    dataset_version_id: str | None, base_model: str | None, metrics: dict[str, float], cost_usd: float | None,
    now: str,
) -> str:  # fmt: skip
    """Add the next version of model `name`; its id (`name:vN`)."""
    number = int(store.scalar("SELECT max(version) FROM model_versions WHERE name = ?", (name,)) or 0) + 1
    version_id = f"{name}:v{number}"
    store.db.execute(
        "INSERT INTO model_versions (id, name, version, provider, provider_model_id, job_id, dataset_version_id,"
        " base_model, status, metrics, cost_usd, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'registered', ?, ?, ?)",
        (version_id, name, number, provider, provider_model_id, job_id, dataset_version_id, base_model,
         json.dumps(metrics), cost_usd, now),
    )  # fmt: skip
    return version_id


def version(store: Store, version_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM model_versions WHERE id = ?", (version_id,))
    return rows[0] if rows else None


def latest_evaluation(store: Store, version_id: str) -> dict[str, Any] | None:
    """The version's newest finished evaluation (kind, summary JSON), if any."""
    rows = store.query(
        """SELECT kind, summary FROM evaluations
           WHERE model_version_id = ? AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1""",
        (version_id,),
    )
    return rows[0] if rows else None


def latest_evaluation_against(store: Store, version_id: str, baseline_version_id: str) -> dict[str, Any] | None:
    """The newest finished evaluation of `version_id` against `baseline_version_id` (id, summary JSON), if any."""
    rows = store.query(
        """SELECT id, summary, finished_at FROM evaluations
           WHERE model_version_id = ? AND baseline_version_id = ? AND status = 'succeeded'
           ORDER BY finished_at DESC, rowid DESC LIMIT 1""",
        (version_id, baseline_version_id),
    )
    return rows[0] if rows else None


def version_of_job(store: Store, job_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM model_versions WHERE job_id = ? ORDER BY version DESC LIMIT 1", (job_id,))
    return rows[0] if rows else None


def versions(store: Store, name: str) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM model_versions WHERE name = ? ORDER BY version", (name,))


def retire_version(store: Store, version_id: str, *, now: str) -> bool:
    """Mark a version retired; False when it already was."""
    cursor = store.db.execute(
        "UPDATE model_versions SET status = ?, retired_at = ? WHERE id = ? AND status != ?",
        (RETIRED, now, version_id, RETIRED),
    )
    return cursor.rowcount == 1


# Aliases -------------------------------------------------------------------------------------------------


def alias(store: Store, name: str, alias_name: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM model_aliases WHERE model_name = ? AND alias = ?", (name, alias_name))
    return rows[0] if rows else None


def aliases(store: Store, name: str) -> list[dict[str, Any]]:
    return store.query("SELECT * FROM model_aliases WHERE model_name = ? ORDER BY alias", (name,))


def aliases_serving(store: Store, version_id: str) -> list[str]:
    """The aliases (`name@alias`) whose stable or canary version is `version_id`."""
    rows = store.query(
        "SELECT model_name, alias FROM model_aliases WHERE model_version_id = ? OR canary_version_id = ?"
        " ORDER BY alias",
        (version_id, version_id),
    )
    return [f"{row['model_name']}@{row['alias']}" for row in rows]


def set_alias(
    store: Store, *, name: str, alias_name: str, version_id: str, canary_version_id: str | None, canary_share: int,
    now: str,
) -> None:  # fmt: skip
    """Point `name@alias_name` at `version_id` (and its canary, if any) and move the resolution cache's generation."""
    store.db.execute(
        "INSERT INTO model_aliases (model_name, alias, model_version_id, canary_version_id, canary_share, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (model_name, alias) DO UPDATE SET"
        " model_version_id = excluded.model_version_id, canary_version_id = excluded.canary_version_id,"
        " canary_share = excluded.canary_share, updated_at = excluded.updated_at",
        (name, alias_name, version_id, canary_version_id, canary_share, now),
    )
    counters.bump(store, ALIAS_COUNTER, 1)


def alias_generation(store: Store) -> int:
    """The alias counter, read straight off this thread's connection: resolution asks it on every call."""
    row = store.db.conn.execute("SELECT value FROM counters WHERE name = ?", (ALIAS_COUNTER,)).fetchone()
    return int(row[0]) if row else 0


def routes(store: Store) -> list[dict[str, Any]]:
    """Every alias with what its stable and canary versions are at their providers, for resolution."""
    return store.query(
        "SELECT a.model_name, a.alias, a.canary_share,"
        " s.id AS stable_id, s.provider AS stable_provider, s.provider_model_id AS stable_model,"
        " c.id AS canary_id, c.provider AS canary_provider, c.provider_model_id AS canary_model"
        " FROM model_aliases a JOIN model_versions s ON s.id = a.model_version_id"
        " LEFT JOIN model_versions c ON c.id = a.canary_version_id"
    )


# The promotions ledger -----------------------------------------------------------------------------------


def add_ledger_row(
    store: Store, *, name: str, alias_name: str, move: str, from_version_id: str | None, to_version_id: str,
    canary_version_id: str | None, canary_share: int, actor: str, face: str, approval_id: str | None,
    reason: str | None, now: str,
) -> None:  # fmt: skip
    store.db.execute(
        "INSERT INTO promotions (model_name, alias, move, from_version_id, to_version_id, canary_version_id,"
        " canary_share, actor, face, approval_id, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (name, alias_name, move, from_version_id, to_version_id, canary_version_id, canary_share, actor, face,
         approval_id, reason, now),
    )  # fmt: skip


# Ledger rows with who approved each: every approver of a request that needed several, else its decider.
_LEDGER_SELECT = """SELECT p.*, COALESCE(
        (SELECT group_concat(v.voter, ', ') FROM (SELECT voter FROM approval_votes WHERE approval_id = p.approval_id
                                                 ORDER BY at, rowid) v),
        ap.decided_by) AS approved_by
    FROM promotions p LEFT JOIN approvals ap ON ap.id = p.approval_id"""


def ledger(store: Store, name: str, *, until: str | None) -> list[dict[str, Any]]:
    """The ledger rows of model `name` up to `until` (all when None), oldest first, with who approved each."""
    where, params = ("AND p.at <= ?", (name, until)) if until else ("", (name,))
    return store.query(
        f"{_LEDGER_SELECT} WHERE p.model_name = ? {where} ORDER BY p.at, p.id",
        params,
    )


def recent_ledger(store: Store, *, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` ledger rows across every model, newest first, with who approved each."""
    return store.query(
        f"{_LEDGER_SELECT} ORDER BY p.at DESC, p.id DESC LIMIT ?",
        (limit,),
    )


def previous_version(store: Store, name: str, alias_name: str, current: str) -> str | None:
    """The version `name@alias_name` pointed at before `current` took it over, by the ledger."""
    found = store.scalar(
        "SELECT from_version_id FROM promotions WHERE model_name = ? AND alias = ? AND to_version_id = ?"
        " AND from_version_id IS NOT NULL AND from_version_id != to_version_id ORDER BY at DESC, id DESC LIMIT 1",
        (name, alias_name, current),
    )
    return str(found) if found is not None else None

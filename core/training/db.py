"""Training's storage: every statement on `jobs` and `job_events`.

Functions take the store and plain values and return plain rows. They open no
transactions: the write functions run inside the caller's `store.write()`
block, so a job's change commits together with its audit row and its
notification (see `core.training.jobs`).

A succeeded job registers its model through `core.registry`, in the same
transaction as the job's final state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from core.platform.store import Store
from core.providers.base import ProviderEvent
from core.vocabulary import ACTIVE_JOB_STATES, FINAL_JOB_STATES, JobState, Method, Provider

# Jobs --------------------------------------------------------------------------------------------------


def job(store: Store, job_id: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
    return rows[0] if rows else None


def job_with_key(store: Store, key: str) -> dict[str, Any] | None:
    """The job launched with idempotency key `key`, if any."""
    rows = store.query("SELECT * FROM jobs WHERE idempotency_key = ?", (key,))
    return rows[0] if rows else None


def jobs(store: Store, *, status: JobState | None, limit: int) -> list[dict[str, Any]]:
    """The latest jobs first, in one state or all."""
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    return store.query(f"SELECT * FROM jobs {where} ORDER BY created_at DESC LIMIT ?", (*params, limit))


def job_for_provider_job(store: Store, *, providers: Iterable[Provider], provider_job_id: str | None) -> str | None:
    """Our id of the job one of `providers` knows as `provider_job_id`."""
    names = sorted(providers)
    job_id = store.scalar(
        f"SELECT id FROM jobs WHERE provider IN ({', '.join('?' * len(names))}) AND provider_job_id = ?",
        (*names, provider_job_id),
    )
    return str(job_id) if job_id is not None else None


def due_job_ids(store: Store, *, now: str) -> list[str]:
    """Active jobs whose next poll is due, the most overdue first."""
    states = sorted(ACTIVE_JOB_STATES)
    rows = store.query(
        f"SELECT id FROM jobs WHERE status IN ({','.join('?' * len(states))})"
        " AND (next_poll_at IS NULL OR next_poll_at <= ?) ORDER BY next_poll_at",
        (*states, now),
    )
    return [r["id"] for r in rows]


def last_seen_event(store: Store, job_id: str) -> str | None:
    """The provider's id of the newest event stored for the job."""
    event_id = store.scalar("SELECT last_seen_event FROM jobs WHERE id = ?", (job_id,))
    return str(event_id) if event_id is not None else None


def release_submissions(store: Store, *, now: str) -> int:
    """Make every job still `submitting` due now (its submitter is gone); returns how many."""
    cursor = store.db.execute(
        "UPDATE jobs SET next_poll_at = ? WHERE status = ? AND next_poll_at > ?", (now, JobState.SUBMITTING, now)
    )
    return cursor.rowcount


def poll_failures(store: Store, job_id: str) -> int:
    """Transient provider errors in a row since the job was last heard from."""
    return int(store.scalar("SELECT poll_failures FROM jobs WHERE id = ?", (job_id,)) or 0)


def insert_job(
    store: Store, *, job_id: str, provider: Provider, dataset_version_id: str, base_model: str, method: Method,
    hyperparameters: dict[str, Any], status: JobState, estimated_cost_usd: float | None, idempotency_key: str,
    requested_by: str, requested_via: str, now: str, next_poll_at: str, requested_by_identity: str | None = None,
) -> None:  # fmt: skip
    """A new job; `requested_by_identity` (slack:U1, os:alice, ...) is what spend limits and ownership compare."""
    store.db.execute(
        "INSERT INTO jobs (id, provider, dataset_version_id, base_model, method, hyperparameters, status,"
        " estimated_cost_usd, idempotency_key, requested_by, requested_by_identity, requested_via, created_at,"
        " updated_at, next_poll_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (job_id, provider, dataset_version_id, base_model, method, json.dumps(hyperparameters), status,
         estimated_cost_usd, idempotency_key, requested_by, requested_by_identity, requested_via, now, now,
         next_poll_at),
    )  # fmt: skip


def set_approval(store: Store, job_id: str, approval_id: str) -> None:
    """Link the job to the approval request it waits on."""
    store.db.execute("UPDATE jobs SET approval_id = ? WHERE id = ?", (approval_id, job_id))


def leave_pending_approval(
    store: Store, job_id: str, *, status: JobState, error: str | None, now: str, next_poll_at: str
) -> bool:
    """Move a job out of `pending_approval` (approved: to `submitting`; otherwise to `cancelled`).

    False when the job was no longer waiting for approval.
    """
    finished_at = now if status in FINAL_JOB_STATES else None
    cursor = store.db.execute(
        "UPDATE jobs SET status = ?, error = ?, updated_at = ?, next_poll_at = ?, finished_at = ?"
        " WHERE id = ? AND status = ?",
        (status, error, now, next_poll_at, finished_at, job_id, JobState.PENDING_APPROVAL),
    )
    return cursor.rowcount == 1


def record_reply(
    store: Store, job_id: str, *, provider_job_id: str, status: JobState, provider_status: str, detail: str | None,
    model_id: str | None, error: str | None, trained_tokens: int | None, last_event: str | None, now: str,
) -> None:  # fmt: skip
    """What the provider said about the job; a final state stops its polling, any reply resets its backoff."""
    finished = status in FINAL_JOB_STATES
    store.db.execute(
        "UPDATE jobs SET provider_job_id = ?, status = ?, provider_status = ?, status_detail = ?, model_id = ?,"
        " error = ?, trained_tokens = coalesce(?, trained_tokens), updated_at = ?, poll_failures = 0,"
        " next_poll_at = ?, finished_at = ?, last_seen_event = coalesce(?, last_seen_event) WHERE id = ?",
        (provider_job_id, status, provider_status, detail, model_id, error, trained_tokens, now,
         None if finished else now, now if finished else None, last_event, job_id),
    )  # fmt: skip


def finish(store: Store, job_id: str, *, status: JobState, error: str, now: str) -> None:
    """End a job without the provider's word (a permanent error, a cancel before submission)."""
    store.db.execute(
        "UPDATE jobs SET status = ?, error = ?, updated_at = ?, finished_at = ?, next_poll_at = NULL WHERE id = ?",
        (status, error, now, now, job_id),
    )


def back_off(store: Store, job_id: str, *, failures: int, next_poll_at: str, detail: str) -> None:
    store.db.execute(
        "UPDATE jobs SET poll_failures = ?, next_poll_at = ?, status_detail = ? WHERE id = ?",
        (failures, next_poll_at, detail, job_id),
    )


# Job events ---------------------------------------------------------------------------------------------


def events(store: Store, job_id: str, *, limit: int) -> list[dict[str, Any]]:
    """The job's latest `limit` events, oldest first."""
    rows = store.query("SELECT * FROM job_events WHERE job_id = ? ORDER BY id DESC LIMIT ?", (job_id, limit))
    return list(reversed(rows))


def add_provider_events(store: Store, job_id: str, provider_events: Iterable[ProviderEvent]) -> None:
    """Store the provider's events; one seen before (same provider event id) is stored once."""
    for event in provider_events:
        store.db.execute(
            "INSERT OR IGNORE INTO job_events (job_id, at, kind, message, step, metrics, provider_event_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, event.at, event.kind, event.message, event.step,
             json.dumps(event.metrics) if event.metrics else None, event.id),
        )  # fmt: skip


def add_status_event(store: Store, job_id: str, *, message: str, at: str) -> None:
    store.db.execute(
        "INSERT INTO job_events (job_id, at, kind, message) VALUES (?, ?, 'status', ?)", (job_id, at, message)
    )

"""The digests' storage: every statement on `digests`, one row per ISO week whose digest was published.

Write functions open no transaction: they run inside the caller's
`store.write()`, so the row commits with the notification that posts it.
"""

from __future__ import annotations

from typing import Any

from core.platform.store import Store


def published(store: Store, week: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM digests WHERE week = ?", (week,))
    return rows[0] if rows else None


def claim(store: Store, *, week: str, headline: str, page: str | None, now: str) -> bool:
    """Record the week's digest as published; False when it already was (nothing written)."""
    cursor = store.db.execute(
        "INSERT INTO digests (week, headline, page, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (week) DO NOTHING",
        (week, headline, page, now),
    )
    return cursor.rowcount == 1


def link_notification(store: Store, *, week: str, outbox_id: int) -> None:
    store.db.execute("UPDATE digests SET outbox_id = ? WHERE week = ?", (outbox_id, week))

"""The outbox: notifications written in the same transaction as the change they announce.

The serve process delivers them (see `bot.outbox_dispatch`); a crash loses
none, and a delivery target being down only delays them. Rows that share a
`message_key` (say `job:42`) are one conversation: the first is posted, later
ones edit that same message.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from core.platform.events import Event, parse_event
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 900.0


class OutboxMessage(BaseModel):
    id: int
    kind: str
    message_key: str | None
    channel: str | None
    text: str = Field(description="A face-neutral summary of the event.")
    event: Event | None = Field(default=None, description="The typed event; faces render it.")
    attempts: int


class MessageRef(BaseModel):
    channel: str
    ts: str


def enqueue(store: Store, event: Event, *, channel: str | None = None) -> int:
    """Queue a notification. Call inside the caller's `store.write()` so it commits with the change."""
    now = iso()
    row = {
        "created_at": now,
        "kind": event.kind,
        "message_key": event.message_key,
        "channel": channel,
        "text": event.summary(),
        "event": event.model_dump_json(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
    }
    with store.write() as db:
        return int(
            db.execute(
                f"INSERT INTO outbox ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            ).lastrowid
            or 0
        )


def due(store: Store, *, now: datetime | None = None, limit: int = 50) -> list[OutboxMessage]:
    """Pending messages whose next attempt is due, oldest first."""
    rows = store.query(
        "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
        (iso(now), limit),
    )
    return [
        OutboxMessage(**{k: v for k, v in row.items() if k in OutboxMessage.model_fields} | {"event": _event(row)})
        for row in rows
    ]


def _event(row: dict[str, Any]) -> Event | None:
    return parse_event(row["event"]) if row.get("event") else None


def message_ref(store: Store, message_key: str | None) -> MessageRef | None:
    """Where an earlier message with this key was posted, so the next one edits it."""
    if not message_key:
        return None
    rows = store.query("SELECT channel, ts FROM slack_messages WHERE message_key = ?", (message_key,))
    return MessageRef(**rows[0]) if rows else None


def mark_delivered(store: Store, message: OutboxMessage, *, channel: str, ts: str) -> None:
    now = iso()
    with store.write() as db:
        db.execute(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, slack_channel = ?, slack_ts = ?,"
            " attempts = attempts + 1, last_error = NULL WHERE id = ?",
            (now, channel, ts, message.id),
        )
        if message.message_key:
            db.table("slack_messages").upsert(
                {"message_key": message.message_key, "channel": channel, "ts": ts, "updated_at": now},
                pk="message_key",
            )


def backoff_seconds(attempts: int) -> float:
    """Capped exponential backoff with full jitter."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(attempts, 20))
    return random.uniform(ceiling / 2, ceiling)


def mark_failed(store: Store, message: OutboxMessage, *, error: str, now: datetime | None = None) -> datetime:
    """Keep the message pending and schedule its next attempt. Nothing is ever dropped."""
    next_at = (now or utcnow()) + timedelta(seconds=backoff_seconds(message.attempts + 1))
    with store.write() as db:
        db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
            (error[:500], iso(next_at), message.id),
        )
    return next_at


class OutboxStats(BaseModel):
    pending: int
    delivered: int
    last_error: str | None


def stats(store: Store) -> OutboxStats:
    counts = dict(store.db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
    last_error = store.scalar(
        "SELECT last_error FROM outbox WHERE status = 'pending' AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1"
    )
    return OutboxStats(pending=counts.get("pending", 0), delivered=counts.get("delivered", 0), last_error=last_error)

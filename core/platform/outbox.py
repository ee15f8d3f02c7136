"""The outbox: notifications written in the same transaction as the change they announce.

The serve process delivers them (see `bot.slack.delivery`); a crash loses
none, and a delivery target being down only delays them. Rows that share a
`message_key` (say `job:42`) are one conversation: the first is posted, later
ones edit that same message, and when several wait at once only the newest
goes out (the older ones are `superseded`).

Delivery is effectively exactly-once. `mark_sending` records the attempt
(`sending_at`, and the channel) before a post leaves; a row that still carries
it afterwards (serve was killed, or marking it delivered failed) may already be
in Slack, so the dispatcher looks for it there before posting again. Each row
fails on its own: it backs off alone and becomes a dead letter after a bounded
number of attempts, visible in `status` and `finetune outbox`, where an admin
retries or discards it.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from core.errors import Conflict, NotFound
from core.platform import audit
from core.platform.actors import Actor
from core.platform.events import Event, parse_event
from core.platform.policy import authorize
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow
from core.vocabulary import Operation

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 900.0
MAX_ATTEMPTS = 5  # failures that will not go away by themselves: refused by Slack, unrenderable, unreadable
MAX_TRANSIENT_ATTEMPTS = 100  # Slack unreachable or throttling: about a day at the capped backoff
LIST_LIMIT = 50


class OutboxState(StrEnum):
    """Where an outbox row stands."""

    PENDING = "pending"  # waiting for (another) delivery attempt
    DELIVERED = "delivered"
    SUPERSEDED = "superseded"  # a newer row of the same message key carried its news
    DEAD = "dead"  # gave up after bounded attempts; an admin retries or discards it
    DISCARDED = "discarded"  # an admin dropped it


class OutboxMessage(BaseModel):
    id: int
    kind: str
    message_key: str | None
    channel: str | None
    text: str = Field(description="A face-neutral summary of the event.")
    event: Event | None = Field(default=None, description="The typed event; faces render it.")
    attempts: int
    created_at: str
    sending_at: str | None = Field(default=None, description="When a post left without being confirmed, if one did.")
    slack_channel: str | None = Field(default=None, description="Where that unconfirmed post went.")
    problem: str | None = Field(default=None, description="Why the stored event cannot be read, if it cannot.")


class MessageRef(BaseModel):
    channel: str
    ts: str
    thread_ts: str | None = None  # a new post that replies in this thread


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
        "status": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
    }
    with store.write() as db:
        outbox_id = int(
            db.execute(
                f"INSERT INTO outbox ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            ).lastrowid
            or 0
        )
        from core.platform import webhooks  # imported here: webhooks builds on this module

        webhooks.enqueue(store, event)  # what applications hear of, one row per endpoint, in this same transaction
        return outbox_id


# Choosing what to deliver ---------------------------------------------------------------------------


def collapse(store: Store, *, now: datetime | None = None) -> int:
    """Supersede every pending row that a newer pending row of the same message key replaces.

    A row whose post may already be in Slack (`sending_at` set) is kept: the
    dispatcher must find that post first, so the newer rows can edit it.
    """
    replaced = (
        " WHERE status = :pending AND message_key IS NOT NULL AND sending_at IS NULL"
        " AND EXISTS (SELECT 1 FROM outbox newer WHERE newer.message_key = outbox.message_key"
        "             AND newer.status = :pending AND newer.id > outbox.id)"
    )
    names = {"superseded": OutboxState.SUPERSEDED, "pending": OutboxState.PENDING, "now": iso(now)}
    if not store.scalar(f"SELECT 1 FROM outbox{replaced} LIMIT 1", names):
        return 0  # the usual case: no write lock taken every run
    with store.write() as db:
        return db.execute(f"UPDATE outbox SET status = :superseded, delivered_at = :now{replaced}", names).rowcount


def due(store: Store, *, now: datetime | None = None, limit: int = 50) -> list[OutboxMessage]:
    """Pending messages whose next attempt is due, oldest first; per message key only the oldest pending one."""
    rows = store.query(
        "SELECT * FROM outbox o WHERE status = :pending AND next_attempt_at <= :now"
        " AND (message_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox older WHERE older.message_key = o.message_key"
        "      AND older.status = :pending AND older.id < o.id))"
        " ORDER BY id LIMIT :limit",
        {"pending": OutboxState.PENDING, "now": iso(now), "limit": limit},
    )
    return [_message(row) for row in rows]


def _message(row: dict[str, Any]) -> OutboxMessage:
    """A row as a message; an unreadable stored event becomes a `problem`, never an exception for the batch."""
    event, problem = None, None
    if row.get("event"):
        try:
            event = parse_event(row["event"])
        except ValidationError as exc:
            problem = f"the stored event is not valid ({exc.error_count()} errors, first: {exc.errors()[0]['msg']})"
    fields = {k: v for k, v in row.items() if k in OutboxMessage.model_fields}
    return OutboxMessage(**fields | {"event": event, "problem": problem})


def queued_after(store: Store, after_id: int, *, limit: int = 200) -> list[OutboxMessage]:
    """Messages queued after row `after_id`, oldest first, whatever their state: what a terminal shows of them."""
    rows = store.query("SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
    return [_message(row) for row in rows]


def message_ref(store: Store, message_key: str | None) -> MessageRef | None:
    """Where an earlier message with this key was posted, so the next one edits it."""
    if not message_key:
        return None
    rows = store.query("SELECT channel, ts FROM slack_messages WHERE message_key = ?", (message_key,))
    return MessageRef(**rows[0]) if rows else None


def thread(store: Store, *, message_key: str, thread_key: str) -> None:
    """Post the message keyed `message_key` as a reply in the thread of the message keyed `thread_key`.

    Call inside the transaction that enqueues the message, so it is never posted outside its thread.
    """
    with store.write() as db:
        db.execute(
            "INSERT INTO message_threads (message_key, thread_key) VALUES (?, ?) ON CONFLICT (message_key) DO NOTHING",
            (message_key, thread_key),
        )


def thread_of(store: Store, message: OutboxMessage) -> str | None:
    """The key of the message whose thread `message` replies in, if it replies in one."""
    own = getattr(message.event, "thread_key", None)
    if own:
        return str(own)
    if not message.message_key:
        return None
    found = store.scalar("SELECT thread_key FROM message_threads WHERE message_key = ?", (message.message_key,))
    return str(found) if found else None


# Recording attempts ------------------------------------------------------------------------------------


def mark_sending(store: Store, message: OutboxMessage, *, channel: str, now: datetime | None = None) -> str:
    """Record that a post of `message` to `channel` is about to leave; returns the attempt time."""
    at = iso(now)
    with store.write() as db:
        db.execute("UPDATE outbox SET sending_at = ?, slack_channel = ? WHERE id = ?", (at, channel, message.id))
    return at


def mark_delivered(store: Store, message: OutboxMessage, *, channel: str, ts: str) -> None:
    now = iso()
    with store.write() as db:
        db.execute(
            "UPDATE outbox SET status = ?, delivered_at = ?, slack_channel = ?, slack_ts = ?,"
            " attempts = attempts + 1, last_error = NULL WHERE id = ?",
            (OutboxState.DELIVERED, now, channel, ts, message.id),
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


def mark_failed(
    store: Store,
    message: OutboxMessage,
    *,
    error: str,
    transient: bool = True,
    posted_maybe: bool = False,
    not_before: datetime | None = None,
    now: datetime | None = None,
) -> datetime | None:
    """Back this row off alone, or make it a dead letter once its attempts are spent.

    `transient`: the target was unreachable or throttling (the row may retry for
    about a day); otherwise it was refused or could not be rendered (a few
    attempts). `posted_maybe`: the post may have reached Slack (no answer came),
    so the next attempt looks for it before posting. `not_before`: the target
    asked to wait until then (Retry-After). Returns the next attempt's time, or
    None for a dead letter. Nothing is ever deleted.
    """
    attempts = message.attempts + 1
    if attempts >= (MAX_TRANSIENT_ATTEMPTS if transient else MAX_ATTEMPTS):
        with store.write() as db:
            db.execute(
                "UPDATE outbox SET status = ?, attempts = ?, last_error = ? WHERE id = ?",
                (OutboxState.DEAD, attempts, error[:500], message.id),
            )
        return None
    next_at = (now or utcnow()) + timedelta(seconds=backoff_seconds(attempts))
    if not_before is not None and next_at < not_before:
        next_at = not_before
    with store.write() as db:
        db.execute(
            "UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = ?,"
            " sending_at = CASE WHEN ? THEN sending_at END WHERE id = ?",
            (attempts, error[:500], iso(next_at), posted_maybe, message.id),
        )
    return next_at


# What an operator sees and does -------------------------------------------------------------------------


class OutboxStats(BaseModel):
    pending: int
    dead: int
    last_error: str | None


def stats(store: Store) -> OutboxStats:
    """Counts through the `(status, next_attempt_at)` index: the cost follows the undelivered rows, not the table."""
    count = "SELECT count(*) FROM outbox WHERE status = ?"
    last_error = store.scalar(
        "SELECT last_error FROM outbox WHERE status = ? AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1",
        (OutboxState.PENDING,),
    )
    return OutboxStats(
        pending=int(store.scalar(count, (OutboxState.PENDING,))),
        dead=int(store.scalar(count, (OutboxState.DEAD,))),
        last_error=last_error,
    )


class OutboxEntry(BaseModel):
    """One undelivered notification."""

    id: int
    kind: str
    state: str = Field(description="pending, sending (a post left unconfirmed; checked before posting again) or dead.")
    summary: str
    attempts: int
    last_error: str | None
    created_at: str
    next_attempt_at: str


class OutboxList(BaseModel):
    entries: list[OutboxEntry]
    pending: int
    dead: int


class OutboxChange(BaseModel):
    """An admin's retry or discard of one notification."""

    id: int
    action: str
    state: str
    summary: str


def _entry(row: dict[str, Any]) -> OutboxEntry:
    state = "sending" if row["status"] == OutboxState.PENDING and row["sending_at"] else row["status"]
    return OutboxEntry(
        id=row["id"], kind=row["kind"], state=state, summary=row["text"], attempts=row["attempts"],
        last_error=row["last_error"], created_at=row["created_at"], next_attempt_at=row["next_attempt_at"],
    )  # fmt: skip


def dead_letters(store: Store, *, limit: int = 10) -> list[OutboxEntry]:
    """The newest dead letters."""
    rows = store.query("SELECT * FROM outbox WHERE status = ? ORDER BY id DESC LIMIT ?", (OutboxState.DEAD, limit))
    return [_entry(row) for row in rows]


def listing(store: Store, *, actor: Actor, limit: int = LIST_LIMIT) -> OutboxList:
    """Undelivered notifications (pending and dead), oldest first, with their last error. The policy: admins."""
    authorize(actor, Operation.OUTBOX)
    rows = store.query(
        "SELECT * FROM outbox WHERE status IN (?, ?) ORDER BY id LIMIT ?",
        (OutboxState.PENDING, OutboxState.DEAD, limit),
    )
    counts = stats(store)
    return OutboxList(entries=[_entry(row) for row in rows], pending=counts.pending, dead=counts.dead)


def retry(store: Store, *, actor: Actor, outbox_id: int) -> OutboxChange:
    """Give a dead (or backing-off) notification a fresh set of attempts, starting now. The policy: admins."""
    return _change(store, actor=actor, outbox_id=outbox_id, action="retry", to=OutboxState.PENDING)


def discard(store: Store, *, actor: Actor, outbox_id: int) -> OutboxChange:
    """Stop trying to deliver a notification; the row stays, marked discarded. The policy: admins."""
    return _change(store, actor=actor, outbox_id=outbox_id, action="discard", to=OutboxState.DISCARDED)


PAST = {"retry": "retried", "discard": "discarded"}


def _change(store: Store, *, actor: Actor, outbox_id: int, action: str, to: OutboxState) -> OutboxChange:
    authorize(actor, Operation.OUTBOX)
    with store.write() as db:
        rows = store.query("SELECT * FROM outbox WHERE id = ?", (outbox_id,))
        if not rows:
            raise NotFound(
                f"no notification #{outbox_id} in the outbox.",
                hint="List undelivered ones with `finetune outbox`.",
                outbox=outbox_id,
            )
        status = rows[0]["status"]
        if status not in (OutboxState.PENDING, OutboxState.DEAD):
            raise Conflict(
                f"notification #{outbox_id} is already {status}; only pending or dead ones can be {PAST[action]}.",
                hint="List undelivered ones with `finetune outbox`.",
                outbox=outbox_id,
            )
        db.execute(
            "UPDATE outbox SET status = ?, attempts = CASE WHEN ? THEN 0 ELSE attempts END,"
            " next_attempt_at = CASE WHEN ? THEN ? ELSE next_attempt_at END WHERE id = ?",
            (to, to == OutboxState.PENDING, to == OutboxState.PENDING, iso(), outbox_id),
        )
        audit.record(store, actor, f"outbox_{action}", {"outbox": outbox_id}, detail=f"was {status}")
    return OutboxChange(id=outbox_id, action=action, state=to, summary=rows[0]["text"])

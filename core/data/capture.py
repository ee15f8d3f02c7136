"""One feedback event captured where people work (a chat message and its correction): checked, then stored once.

A face that captures an event (Slack's "Add to training data" message shortcut)
names it by where it came from, so capturing the same message again, or
retrying a submission, still makes one event: `capture_event` stores an event
whose id is new and leaves a stored one as it is, whatever was edited since.
It goes through the same ingest as every other path (validation, PII
redaction, acceptance and edit operations, the audit row in the publishing
transaction). `check_event` is that validation alone, pure and fast, for a
form that shows a problem beside its field before anything is stored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.data import db, feedback
from core.data.fields import MAX_ID_CHARS
from core.data.pii import RedactionReport, Redactor
from core.data.sources import LineError
from core.errors import InvalidInput
from core.platform.actors import Actor
from core.platform.policy import authorize
from core.platform.store import Store
from core.platform.timeutil import iso
from core.vocabulary import Operation

__all__ = ["MAX_AGENTS", "MAX_ID_CHARS", "CaptureResult", "capture_event", "check_event", "known_agents"]

MAX_AGENTS = 100  # agents a form offers to choose from (a Slack select holds at most 100 options)


class CaptureResult(BaseModel):
    """What became of one captured event."""

    event_id: str
    created: bool = Field(description="False when the event was already stored: nothing changed.")
    agent: str | None = Field(default=None, description="The agent it was stored under (redacted), when created.")
    acceptance: float | None = Field(default=None, description="Share of the draft kept in the final text.")
    edited: bool = Field(default=False, description="Whether the final text differs from the draft.")
    redactions: RedactionReport = Field(default_factory=RedactionReport)


def check_event(event: dict[str, Any]) -> LineError | None:
    """Why `event` would be refused at ingest (the field, what is wrong, the fix), or None when it would be stored."""
    _, prepared = feedback.prepare((1, event), {}, None, iso())
    return prepared if isinstance(prepared, LineError) else None


def known_agents(store: Store, *, limit: int = MAX_AGENTS) -> list[str]:
    """The agents stored feedback names, alphabetically, at most `limit`."""
    return db.known_agents(store, limit)


def capture_event(store: Store, event: dict[str, Any], *, actor: Actor, source: str, redact: bool) -> CaptureResult:
    """Store `event` (which must carry its own `id`) unless an event with that id is already stored."""
    authorize(actor, Operation.INGEST)
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise InvalidInput(
            "a captured event needs its own `id`.", hint="Name the event by where it came from (channel and message)."
        )
    if db.feedback_stored(store, event_id):
        return CaptureResult(event_id=event_id, created=False)
    try:
        report = feedback.ingest_batch(store, [event], actor=actor, source=source, redact=redact)
    except feedback.IngestRejected:
        if db.feedback_stored(store, event_id):  # captured by another worker meanwhile, with other edits
            return CaptureResult(event_id=event_id, created=False)
        raise
    if report.ingested == 0:  # the same content is already stored under another id
        return CaptureResult(event_id=event_id, created=False)
    _, row = feedback.prepare((1, event), {}, Redactor() if redact else None, iso())
    if not isinstance(row, dict):  # ingest accepted the very same event: it cannot be refused now
        return CaptureResult(event_id=event_id, created=True, redactions=report.redactions)
    return CaptureResult(
        event_id=event_id, created=True, agent=row["agent"], acceptance=row["acceptance"],
        edited=row["final_output"] is not None and row["final_output"] != row["ai_output"],
        redactions=report.redactions,
    )  # fmt: skip

"""Operator notices: a message an admin sends to the team's Slack channel through the outbox."""

from __future__ import annotations

from pydantic import BaseModel

from core.errors import InvalidInput
from core.platform import audit, events, outbox
from core.platform.actors import Actor
from core.platform.policy import authorize
from core.platform.store import Store
from core.vocabulary import Operation

MAX_TEXT = 3000  # Slack's limit for a section block's text


class Notice(BaseModel):
    outbox_id: int
    text: str
    channel: str | None


def notify(store: Store, *, actor: Actor, text: str, channel: str | None = None) -> Notice:
    """Queue `text` for delivery to Slack. The policy keeps it to admins."""
    authorize(actor, Operation.NOTIFY)
    text = text.strip()
    if not text:
        raise InvalidInput("`text` is empty.", hint='Give the message to send, e.g. notify "Deploy at 5pm".')
    if len(text) > MAX_TEXT:
        raise InvalidInput(
            f"`text` is {len(text)} characters; Slack accepts at most {MAX_TEXT}.",
            hint="Shorten the message.",
        )
    with store.write():
        outbox_id = outbox.enqueue(store, events.Notice(text=text, sent_by=str(actor)), channel=channel)
        audit.record(store, actor, "notify", {"text": text, "channel": channel}, detail=f"outbox #{outbox_id}")
    return Notice(outbox_id=outbox_id, text=text, channel=channel)

"""Remembering which Slack deliveries were handled, so redeliveries do nothing twice.

Slack redelivers events it thinks were not acked (up to 3 times) and users
double-click buttons. Each delivery has a stable key; the first INSERT wins.
"""

from __future__ import annotations

from typing import Any

from core.platform.store import Store
from core.platform.timeutil import iso


def delivery_key(body: dict[str, Any]) -> str | None:
    """A key that is the same for every redelivery of one user action, or None."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    actions = body.get("actions") or []
    if actions and actions[0].get("action_ts"):
        user = (body.get("user") or {}).get("id", "")
        return f"action:{user}:{actions[0].get('action_id', '')}:{actions[0]['action_ts']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def first_delivery(store: Store, key: str) -> bool:
    """Record `key`; True the first time it is seen, False for every redelivery."""
    with store.write() as db:
        cursor = db.execute(
            "INSERT OR IGNORE INTO slack_deliveries (delivery_key, seen_at) VALUES (?, ?)", (key, iso())
        )
        return cursor.rowcount == 1

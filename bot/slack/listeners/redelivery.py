"""Redeliveries act once: Slack retries what it thinks was not acked (up to 3 times), users double-click.

Each delivery has a key that is the same for every redelivery of one user action.
The ack never waits for the database: every delivery is acked at once, and the
lazy worker that answers it first records the key (`core.platform.deliveries`);
the first worker to record it acts, the others stop.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from core.errors import StoreError
from core.platform import deliveries
from core.services import Services

log = logging.getLogger(__name__)


def delivery_key(body: dict[str, Any]) -> str | None:
    """A key that is the same for every redelivery of one user action, or None."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    if action.get("action_ts"):
        user = body.get("user")
        user_id = user.get("id", "") if isinstance(user, dict) else ""
        return f"action:{user_id}:{action.get('action_id', '')}:{action['action_ts']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def first_delivery(services: Services, body: dict[str, Any]) -> bool:
    """Whether this worker is the first to answer its user action (always, for an action without a key).

    When the key cannot be recorded (the database stayed locked past its busy timeout), the worker answers
    anyway: the person gets a reply, and what must not run twice (a launch) has an idempotency key of its own.
    """
    key = delivery_key(body)
    if key is None:
        return True
    try:
        first = deliveries.first_delivery(services.store, key)
    except (StoreError, sqlite3.OperationalError):
        log.warning("could not record delivery %s (the database is unavailable); answering it anyway", key)
        return True
    if not first:
        log.info("ignoring a redelivery of %s", key)
    return first

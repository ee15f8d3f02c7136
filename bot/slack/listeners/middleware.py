"""Redeliveries run once: Slack retries what it thinks was not acked (up to 3 times), users double-click.

Each delivery has a key that is the same for every redelivery of one user
action; the first one recorded wins (`core.platform.deliveries` keeps them) and
the others are answered 200 before any listener runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse

from core.platform import deliveries
from core.services import Services

log = logging.getLogger(__name__)


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


def register(app: App, services: Services) -> None:
    @app.middleware
    def drop_redeliveries(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse | None:
        key = delivery_key(body)
        if key is not None and not deliveries.first_delivery(services.store, key):
            log.info("ignoring a redelivery of %s", key)
            return BoltResponse(status=200, body="")
        return next()

"""The reject modal's submission: the reason is checked in the ack, the rejection decided by a lazy worker.

A missing, too long or unreadable reason keeps the modal open with the problem
under the field (checking it touches nothing, so the ack stays fast). The
worker rejects as the submitting Slack user and edits the request's message,
whose channel and ts the modal kept in its private_metadata.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.slack.blocks.notifications import REASON_BLOCK, REASON_INPUT, REASON_MAX, REJECT_VIEW
from bot.slack.listeners.actions import approval_id_from, decide_in_slack
from bot.slack.listeners.redelivery import first_delivery
from core.platform import lone_surrogate
from core.platform.outbox import MessageRef
from core.services import Services

log = logging.getLogger(__name__)


def register(app: App, services: Services) -> None:
    def check_reason(ack: Callable[..., None], body: dict[str, Any]) -> None:
        _, problem = reason_of(body)
        if problem:
            ack(response_action="errors", errors={REASON_BLOCK: problem})
        else:
            ack()

    def reject_submitted(body: dict[str, Any], client: WebClient) -> None:
        reason, problem = reason_of(body)
        submission = _submission(body)
        if problem or submission is None or not first_delivery(services, body):
            return
        decide_in_slack(services, client, approve=False, reason=reason, **submission)

    app.view(REJECT_VIEW)(ack=check_reason, lazy=[reject_submitted])


def reason_of(body: dict[str, Any]) -> tuple[str, str | None]:
    """The reason typed into the modal, stripped, and what is wrong with it (None when nothing is)."""
    value = _dig(body, "view", "state", "values", REASON_BLOCK, REASON_INPUT, "value")
    reason = value.strip() if isinstance(value, str) else ""
    if not reason:
        return "", "Say why the request is rejected; the requester reads it."
    if len(reason) > REASON_MAX:
        return "", f"The reason is {len(reason)} characters long; shorten it to {REASON_MAX} at most."
    if (found := lone_surrogate(reason)) is not None:
        return "", f"The reason contains U+{ord(found.group()):04X}, which is not text; type it again."
    return reason, None


def _submission(body: dict[str, Any]) -> dict[str, Any] | None:
    """Who rejects which request, and where its message is; None (logged) when the payload says too little."""
    user_id = _dig(body, "user", "id")
    try:
        metadata = json.loads(str(_dig(body, "view", "private_metadata") or ""))
    except ValueError:
        metadata = None
    metadata = metadata if isinstance(metadata, dict) else {}
    approval_id = approval_id_from(metadata.get("approval"))
    if not isinstance(user_id, str) or not user_id or approval_id is None:
        log.warning("ignoring a reject submission without a user or an approval id")
        return None
    channel, ts = metadata.get("channel"), metadata.get("ts")
    channel = channel if isinstance(channel, str) and channel else None
    message = MessageRef(channel=channel, ts=ts) if channel and isinstance(ts, str) and ts else None
    return {"user_id": user_id, "approval_id": approval_id, "channel": channel, "message": message}


def _dig(value: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value

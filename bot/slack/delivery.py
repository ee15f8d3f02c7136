"""Delivers outbox rows to Slack. Runs as a scheduler job inside `finetune serve`.

Each row is posted once; a row whose `message_key` was posted before edits
that message instead (one Slack message per job, updated in place). Failures
keep the row pending with capped exponential backoff: Slack being down delays
delivery and loses nothing.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.blocks import render_message
from core.platform import Store, outbox
from core.platform.scheduler import record_run
from core.services import Services

log = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """This attempt failed; the row stays pending for a later attempt."""


def deliver_due(store: Store, client: WebClient, *, default_channel: str | None, limit: int = 50) -> int:
    """Deliver what is due; returns how many were delivered."""
    delivered = 0
    for message in outbox.due(store, limit=limit):
        try:
            channel, ts = _send(store, client, message, default_channel)
        except DeliveryFailed as exc:
            next_at = outbox.mark_failed(store, message, error=str(exc))
            log.warning("outbox #%s not delivered (%s); next attempt at %s", message.id, exc, next_at.isoformat())
            continue
        outbox.mark_delivered(store, message, channel=channel, ts=ts)
        delivered += 1
    return delivered


def _send(
    store: Store, client: WebClient, message: outbox.OutboxMessage, default_channel: str | None
) -> tuple[str, str]:
    existing = outbox.message_ref(store, message.message_key)
    rendered = render_message(message)
    text, blocks = rendered.text, rendered.blocks
    try:
        if existing is not None:
            response = client.chat_update(channel=existing.channel, ts=existing.ts, text=text, blocks=blocks)
        else:
            channel = message.channel or default_channel
            if not channel:
                raise DeliveryFailed("no channel: set FINETUNE_SLACK_CHANNEL (a channel id such as C0123456789)")
            response = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        request_id = exc.response.headers.get("x-slack-req-id") if exc.response is not None else None
        status = exc.response.status_code if exc.response is not None else None
        raise DeliveryFailed(f"Slack answered {error or status} (request {request_id})") from exc
    except (SlackClientError, OSError) as exc:  # connection refused, timeouts, DNS
        raise DeliveryFailed(f"Slack unreachable: {exc.__class__.__name__}: {exc}") from exc
    return response["channel"], response["ts"]


def deliver_outbox_job(svc: Services, client: WebClient) -> None:
    """Scheduler entry point (module-level so APScheduler can name it)."""
    delivered = deliver_due(svc.store, client, default_channel=svc.settings.slack_channel)
    record_run(svc.store, "outbox", detail=f"delivered {delivered}")

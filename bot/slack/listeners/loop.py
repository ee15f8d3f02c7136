"""The Retry button of a failed loop run: acked at once, retried by a lazy worker as the Slack user who clicked.

The retry goes through `bot.invoke.invoke` (policy, audit) like `loop retry ID`
does; a redelivered click acts once; a refusal (their role, a run that is not
failed any more) is told to the clicker alone. The run's thread then tells
everyone what happened, through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.invoke import Failure, invoke, slack_actor
from bot.slack.blocks.loop import RETRY_ACTION
from bot.slack.listeners.actions import tell
from bot.slack.listeners.redelivery import first_delivery
from core.loop import RUN_ID_PREFIX, retry_run
from core.services import Services

log = logging.getLogger(__name__)

MAX_RUN_ID = 40


def register(app: App, services: Services) -> None:
    def ack_at_once(ack: Callable[[], None]) -> None:
        ack()

    def retry_clicked(body: dict[str, Any], client: WebClient) -> None:
        click = _click(body)
        if click is None or not first_delivery(services, body):
            return
        user_id, run_id, channel = click
        actor = slack_actor(services.settings, user_id)
        result = invoke(
            services, actor, "loop retry", {"run": run_id},
            lambda: retry_run(services, run_id=run_id, actor=actor),
        )  # fmt: skip
        if isinstance(result, Failure):
            tell(client, channel=channel, user_id=user_id, text=f":warning: {result}")

    app.action(RETRY_ACTION)(ack=ack_at_once, lazy=[retry_clicked])


def _click(body: dict[str, Any]) -> tuple[str, str, str | None] | None:
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    clicked = body.get("actions")
    action = clicked[0] if isinstance(clicked, list) and clicked and isinstance(clicked[0], dict) else {}
    run_id = action.get("value")
    if not isinstance(user_id, str) or not user_id or not _is_run_id(run_id):
        log.warning("ignoring a loop retry click without a user or a run id")
        return None
    container = body.get("container")
    channel = container.get("channel_id") if isinstance(container, dict) else None
    return user_id, str(run_id), channel if isinstance(channel, str) and channel else None


def _is_run_id(value: object) -> bool:
    return (
        isinstance(value, str) and value.startswith(RUN_ID_PREFIX) and len(value) <= MAX_RUN_ID
        and value.isascii() and value.isprintable()
    )  # fmt: skip

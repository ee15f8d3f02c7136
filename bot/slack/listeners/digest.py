"""The weekly digest's buttons (roll back, retrain, open an A/B): acked at once, acted on by a lazy worker.

A click runs through `bot.invoke.invoke` as the Slack user who clicked, under
the policy of the command the button stands for (`rollback`, `retrain`,
`ab create`), and does what `reports.actions.run_action` says; what happened,
or why it could not, is told to the clicker alone. A redelivered click acts
once (`first_delivery`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, cast

from slack_bolt import App
from slack_sdk import WebClient

from bot.invoke import Failure, invoke, slack_actor
from bot.slack.listeners.actions import tell
from bot.slack.listeners.redelivery import first_delivery
from core.services import Services
from reports.actions import COMMANDS, run_action
from reports.digest import ActionKind
from reports.render_blocks import ACTION_PREFIX

log = logging.getLogger(__name__)

ACTION = re.compile(rf"^{ACTION_PREFIX}({'|'.join(COMMANDS)}):\d+$")


def register(app: App, services: Services) -> None:
    def ack_at_once(ack: Callable[[], None]) -> None:
        ack()

    def clicked(body: dict[str, Any], client: WebClient) -> None:
        click = _click(body)
        if click is None or not first_delivery(services, body):
            return
        user_id, channel, kind, value = click
        answer = act(services, user_id=user_id, kind=kind, value=value)
        tell(client, channel=channel, user_id=user_id, text=answer)

    app.action(ACTION)(ack=ack_at_once, lazy=[clicked])


def act(services: Services, *, user_id: str, kind: ActionKind, value: str) -> str:
    """Do what the button asks as Slack user `user_id`; the sentence to tell them."""
    actor = slack_actor(services.settings, user_id)
    done = invoke(
        services, actor, COMMANDS[kind], {"value": value, "from": "weekly digest"},
        lambda: run_action(services, actor=actor, kind=kind, value=value),
    )  # fmt: skip
    return f":warning: {done}" if isinstance(done, Failure) else f":white_check_mark: {done}"


def _click(body: dict[str, Any]) -> tuple[str, str | None, ActionKind, str] | None:
    """(user, channel, kind, value) of a digest button's block_actions payload; None (logged) when it says too little."""
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    clicked = body.get("actions")
    action = clicked[0] if isinstance(clicked, list) and clicked and isinstance(clicked[0], dict) else {}
    matched = ACTION.fullmatch(str(action.get("action_id", "")))
    value = action.get("value")
    if not isinstance(user_id, str) or not user_id or matched is None or not isinstance(value, str):
        log.warning("ignoring a digest click without a user, a known action or a value")
        return None
    container = body.get("container")
    channel = container.get("channel_id") if isinstance(container, dict) else None
    return user_id, channel if isinstance(channel, str) and channel else None, cast(ActionKind, matched.group(1)), value

"""The buttons of an edit pattern (`/finetune patterns AGENT`): acked at once, acted on by a lazy worker.

"Add to DPO pairs" runs `analytics dpo-pairs AGENT PHRASE` and "Open a prompt
experiment" runs `analytics prompt-experiment AGENT PHRASE`, as the Slack user
who clicked, through the same grammar as typing them (policy, audit, errors in
words they can act on). The answer goes to the clicker alone, in place of the
ephemeral message or beside the channel message; a redelivered click acts once.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.slack.blocks import render_outcome
from bot.slack.blocks.analytics import EXPERIMENT_ACTION, PAIRS_ACTION
from bot.slack.listeners.commands import run_slack_text, upload
from bot.slack.listeners.redelivery import first_delivery
from core.services import Services

log = logging.getLogger(__name__)

COMMANDS = {PAIRS_ACTION: "dpo-pairs", EXPERIMENT_ACTION: "prompt-experiment"}
MAX_VALUE = 2000  # Slack's limit on a button's value


def register(app: App, services: Services) -> None:
    def ack_at_once(ack: Callable[[], None]) -> None:
        ack()

    def pattern_clicked(body: dict[str, Any], respond: Callable[..., Any], client: WebClient) -> None:
        click = pattern_click(body)
        if click is None or not first_delivery(services, body):
            return
        user_id, text, channel = click
        outcome = run_slack_text(services, user_id=user_id, text=text)
        message = render_outcome(outcome)
        respond(text=message.text, blocks=message.blocks, response_type="ephemeral", replace_original=False)
        upload(client, channel, message.files)

    for action_id in COMMANDS:
        app.action(action_id)(ack=ack_at_once, lazy=[pattern_clicked])


def pattern_click(body: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(user id, the command the button stands for, channel) of a click; None (logged) when it says too little."""
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    clicked = body.get("actions")
    action = clicked[0] if isinstance(clicked, list) and clicked and isinstance(clicked[0], dict) else {}
    command = COMMANDS.get(str(action.get("action_id")))
    pattern = _pattern(action.get("value"))
    if not isinstance(user_id, str) or not user_id or command is None or pattern is None:
        log.warning("ignoring a pattern button click without a user, a known action or a pattern")
        return None
    container = body.get("container")
    channel = container.get("channel_id") if isinstance(container, dict) else None
    text = shlex.join(["analytics", command, *pattern])
    return user_id, text, channel if isinstance(channel, str) and channel else None


def _pattern(value: object) -> tuple[str, str] | None:
    """(agent, phrase) a button's value names; None for anything else."""
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        return None
    try:
        named = json.loads(value)
    except ValueError:
        return None
    if not isinstance(named, dict):
        return None
    agent, phrase = named.get("agent"), named.get("phrase")
    if not (isinstance(agent, str) and agent and isinstance(phrase, str) and phrase):
        return None
    return agent, phrase

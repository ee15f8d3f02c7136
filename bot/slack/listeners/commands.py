"""`/finetune TEXT`: acked at once, then run through the shared grammar by a lazy listener.

Slack wants an answer within 3 seconds, so the ack comes first (it touches
nothing, not even the database) and the work answers later through the
command's response_url (ephemeral), then uploads any files the rendered result
carries to the channel the command came from. Only the first worker of a
redelivered command acts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.commands import Invocation, Outcome, run_text
from bot.commands.groups import SLACK
from bot.invoke import slack_actor
from bot.slack.blocks import Attachment, render_outcome
from bot.slack.listeners import launch_wizard
from bot.slack.listeners.redelivery import first_delivery
from core.services import Services

log = logging.getLogger(__name__)

SLASH = "/finetune"


def run_slack_text(services: Services, *, user_id: str, text: str, request_key: str | None = None) -> Outcome:
    """Run `/finetune TEXT` as Slack user `user_id`, through the same grammar as the CLI."""
    inv = Invocation(services=services, actor=slack_actor(services.settings, user_id), request_key=request_key)
    return run_text(SLACK, text, inv, prog=SLASH)


def register(app: App, services: Services) -> None:
    def ack_at_once(ack: Callable[[], None]) -> None:
        ack()

    def run_slash_command(body: dict[str, Any], respond: Callable[..., Any], client: WebClient) -> None:
        user_id, text, trigger = body.get("user_id"), body.get("text", ""), body.get("trigger_id")
        if not isinstance(user_id, str) or not user_id or not isinstance(text, str):
            log.warning("ignoring a /finetune request without a user id or text")
            return
        if not first_delivery(services, body):
            return
        if launch_wizard.opens_wizard(text) and isinstance(trigger, str) and trigger:
            launch_wizard.open_wizard(
                services, client, user_id=user_id, trigger_id=trigger, channel=body.get("channel_id"),
                response_url=body.get("response_url"),
            )  # fmt: skip
            return
        outcome = run_slack_text(
            services, user_id=user_id, text=text, request_key=f"slack:{trigger}" if trigger else None
        )
        message = render_outcome(outcome)
        respond(text=message.text, blocks=message.blocks, response_type="ephemeral")
        upload(client, body.get("channel_id"), message.files)

    app.command(SLASH)(ack=ack_at_once, lazy=[run_slash_command])


def upload(client: WebClient, channel: str | None, files: list[Attachment]) -> None:
    """Upload a reply's attachments (a chart) to the channel the command came from."""
    if not channel:
        return
    for file in files:
        try:
            client.files_upload_v2(channel=channel, content=file.content, filename=file.filename, title=file.title)
        except SlackApiError:
            log.exception("could not upload %s", file.filename)

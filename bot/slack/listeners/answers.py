"""Answering one person privately after a modal closes: through the response_url their request came with,
else an ephemeral message in its channel, else their direct messages.

A modal's submission carries no response_url of its own, so the listener that
opened it keeps the one of the request that opened it (a slash command's, a
shortcut's) in the modal's private_metadata. That URL reaches the person
wherever they asked, in channels the app is not a member of too; it expires
(30 minutes, five answers), and then the answer takes the other ways.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.slack.blocks import SlackMessage

log = logging.getLogger(__name__)

MAX_URL = 500  # characters of a response_url kept in a modal's private_metadata
RESPONSE_TIMEOUT = 10  # seconds


def answer(
    client: WebClient, message: SlackMessage, *, user_id: str, channel: str | None, response_url: str | None
) -> None:
    """Show `message` to `user_id` alone: by `response_url` when it still answers, else in `channel`, else by DM."""
    if response_url and _by_response_url(response_url, message):
        return
    if channel:
        try:
            client.chat_postEphemeral(channel=channel, user=user_id, text=message.text, blocks=message.blocks)
            return
        except SlackClientError as exc:
            log.warning("could not answer %s in %s (%s); answering in direct messages", user_id, channel, exc)
    _by_direct_message(client, user_id, message)


def response_url_of(value: object) -> str | None:
    """A response_url a payload carries, or None for anything that cannot be one."""
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= MAX_URL:
        return value
    return None


def _by_response_url(url: str, message: SlackMessage) -> bool:
    try:
        reply = WebhookClient(url, timeout=RESPONSE_TIMEOUT).send(
            text=message.text, blocks=message.blocks, response_type="ephemeral"
        )
    except (SlackClientError, OSError, ValueError) as exc:
        log.warning("could not answer through the response_url (%s)", exc)
        return False
    if reply.status_code != 200:
        log.warning("the response_url answered %s (%s)", reply.status_code, reply.body[:200])
        return False
    return True


def _by_direct_message(client: WebClient, user_id: str, message: SlackMessage) -> None:
    try:
        opened = client.conversations_open(users=user_id)
        channel = opened.get("channel")
        channel_id = channel.get("id") if isinstance(channel, dict) else None
        if not isinstance(channel_id, str) or not channel_id:
            log.warning("Slack opened no direct message channel with %s; could not answer them", user_id)
            return
        client.chat_postMessage(channel=channel_id, text=message.text, blocks=message.blocks)
    except SlackClientError:
        log.exception("could not answer %s in direct messages", user_id)

"""The Slack face: the real slack-bolt app behind `/finetune`.

Signature verification is always on in HTTP mode. The listeners (one module
per kind in `bot.slack.listeners`) register on the app; `GRAMMAR` is what
`/finetune` understands, the shared commands of every capability.
"""

from __future__ import annotations

import logging

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

from bot.commands.groups import SLACK as GRAMMAR
from bot.slack import listeners
from core.platform import Settings
from core.services import Services

__all__ = ["GRAMMAR", "SlackOff", "build_slack_app", "web_client"]


class SlackOff(Exception):
    """Slack is not configured well enough to run; the message says what is missing."""


def web_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url)


def build_slack_app(services: Services) -> App:
    settings = services.settings
    if settings.slack_bot_token is None:
        raise SlackOff("SLACK_BOT_TOKEN is not set")
    if settings.slack_signing_secret is None and not settings.socket_mode:
        raise SlackOff("SLACK_SIGNING_SECRET is not set (needed to verify requests in HTTP mode)")
    app = App(
        client=web_client(settings),
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        # auth.test runs on the first request, not here: serve must start while Slack is unreachable.
        token_verification_enabled=False,
        request_verification_enabled=not settings.socket_mode,
        logger=logging.getLogger("slack_bolt"),
    )
    app.error(refuse_malformed_payloads)
    listeners.register(app, services)
    return app


_SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError)


def refuse_malformed_payloads(error: Exception, logger: logging.Logger) -> BoltResponse | None:
    """A signed payload whose shape bolt cannot read is the sender's problem (400), not a server error (500).

    Anything else (Slack unreachable during authorization, a bug) keeps bolt's own answer.
    """
    if isinstance(error, _SHAPE_ERRORS):
        logger.warning("refused a Slack payload bolt cannot read: %r", error)
        return BoltResponse(status=400, body="the request is not a Slack payload finetune-ops understands")
    logger.error("could not handle a Slack request", exc_info=error)
    return None

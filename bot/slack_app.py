"""The Slack face: the real slack-bolt app behind `/finetune`.

Slack wants an answer within 3 seconds, so the command is acked at once and
the work runs in a lazy listener that answers through the command's
response_url. Signature verification is always on in HTTP mode. A middleware
drops redeliveries (Slack retries, double clicks) by their delivery key before
any listener runs.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks import render_outcome
from bot.data_commands import SHARED_DATA_COMMANDS
from bot.grammar import SHARED_COMMANDS, Invocation, Outcome, make_grammar, run_text
from bot.job_commands import SHARED_JOB_COMMANDS
from core.platform import deliveries
from core.platform.actors import Actor
from core.platform.settings import Settings
from core.platform.store import Store
from core.services import build_services
from core.training.jobs import JobDetail
from reports.charts import loss_curve_png

log = logging.getLogger(__name__)

SLASH = "/finetune"
GRAMMAR = make_grammar(
    *SHARED_COMMANDS, *SHARED_DATA_COMMANDS, *SHARED_JOB_COMMANDS, help_text="finetune-ops in Slack."
)


class SlackOff(Exception):
    """Slack is not configured well enough to run; the message says what is missing."""


def web_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url)


def build_slack_app(settings: Settings, store: Store) -> App:
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

    @app.middleware
    def drop_redeliveries(body: dict[str, Any], next):
        key = deliveries.delivery_key(body)
        if key is not None and not deliveries.first_delivery(store, key):
            log.info("ignoring a redelivery of %s", key)
            return BoltResponse(status=200, body="")
        return next()

    def ack_at_once(ack) -> None:
        ack()

    def run_slash_command(body: dict[str, Any], respond, client: WebClient) -> None:
        outcome = run_slack_text(
            settings,
            store,
            user_id=body["user_id"],
            text=body.get("text", ""),
            request_key=f"slack:{body.get('trigger_id')}",
        )
        text, blocks = render_outcome(outcome)
        respond(text=text, blocks=blocks, response_type="ephemeral")
        if isinstance(outcome.result, JobDetail):
            post_loss_chart(client, body.get("channel_id"), outcome.result)

    app.command(SLASH)(ack=ack_at_once, lazy=[run_slash_command])
    return app


def post_loss_chart(client: WebClient, channel: str | None, detail: JobDetail) -> None:
    """Upload the job's loss curve to the channel the command came from (when it has step metrics)."""
    png = loss_curve_png(detail.events.loss_series(), title=f"{detail.job.id}: {detail.job.base_model}")
    if png is None or not channel:
        return
    try:
        client.files_upload_v2(
            channel=channel, content=png, filename=f"{detail.job.id}-loss.png", title=f"Loss curve of {detail.job.id}"
        )
    except SlackApiError:
        log.exception("could not upload the loss curve of %s", detail.job.id)


def run_slack_text(
    settings: Settings, store: Store, *, user_id: str, text: str, request_key: str | None = None
) -> Outcome:
    """Run `/finetune TEXT` as Slack user `user_id`, through the same grammar as the CLI."""
    actor = Actor(id=user_id, face="slack", is_admin=user_id in settings.admins)
    inv = Invocation(services=build_services(settings, store=store), actor=actor, request_key=request_key)
    return run_text(GRAMMAR, text, inv, prog=SLASH)

"""Approve and Reject buttons on approval requests: acked at once, decided by a lazy worker.

Approve decides through `bot.invoke.invoke` as the Slack user who clicked, then
edits the clicked message to show the decision (buttons gone), or, for a
request that needs more approvers, "1 of 2 approvals" with its buttons kept. Reject opens a
modal asking why (`bot.slack.listeners.views` decides on its submission). A
refusal (not an approver, their own request, expired, already decided) is told
to the clicker alone, and the message then shows the request as it stands. A
redelivered click acts once; a second click finds the request already decided.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.invoke import Failure, invoke, slack_actor
from bot.slack.blocks import render
from bot.slack.blocks.notifications import APPROVE_ACTION, REJECT_ACTION, reject_modal
from bot.slack.listeners import home
from bot.slack.listeners.redelivery import first_delivery
from core import actions
from core.errors import FinetuneError
from core.platform import Approval, approvals, events
from core.platform.outbox import MessageRef
from core.services import Services
from core.vocabulary import ApprovalState

log = logging.getLogger(__name__)

MAX_APPROVAL_ID = 64


def register(app: App, services: Services) -> None:
    def ack_at_once(ack: Callable[[], None]) -> None:
        ack()

    def approve_clicked(body: dict[str, Any], client: WebClient) -> None:
        click = _click(body)
        if click is not None and first_delivery(services, body):
            decide_in_slack(services, client, approve=True, reason=None, **click)

    def reject_clicked(body: dict[str, Any], client: WebClient) -> None:
        click = _click(body)
        if click is None or not first_delivery(services, body):
            return
        message = click["message"]
        metadata = {"approval": click["approval_id"], "channel": click["channel"]}
        if message is not None:
            metadata["ts"] = message.ts
        view = reject_modal(click["approval_id"], private_metadata=json.dumps(metadata))
        try:
            client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
        except SlackClientError:
            log.exception("could not open the reject modal for %s", click["approval_id"])

    app.action(APPROVE_ACTION)(ack=ack_at_once, lazy=[approve_clicked])
    app.action(REJECT_ACTION)(ack=ack_at_once, lazy=[reject_clicked])


def decide_in_slack(
    services: Services,
    client: WebClient,
    *,
    user_id: str,
    approval_id: str,
    channel: str | None,
    message: MessageRef | None,
    approve: bool,
    reason: str | None,
) -> None:
    """Decide as Slack user `user_id`, then show the outcome: the message edited, or the refusal to them alone."""
    actor = slack_actor(services.settings, user_id)
    result = invoke(
        services, actor, "approve" if approve else "reject", {"approval": approval_id, "reason": reason},
        lambda: actions.decide(services, approval_id=approval_id, actor=actor, approve=approve, reason=reason),
    )  # fmt: skip
    if isinstance(result, Failure):
        tell(client, channel=channel, user_id=user_id, text=f":warning: {result}")
        current = _current(services, approval_id)  # decided or expired meanwhile: the message catches up
        if current is not None and current.status == ApprovalState.PENDING:
            current = None  # nothing changed: the message stays as it is
    else:
        current = result
    if message is not None and current is not None:
        show_decision(client, message, current)
    home.refresh_after_decision(services, client, user_id=user_id, channel=channel)


def show_decision(client: WebClient, message: MessageRef, approval: Approval) -> None:
    """Edit the request's message to show where it stands: decided (its buttons go), or its approvals so far."""
    shown: events.Event
    if approval.status == ApprovalState.PENDING:
        shown = approvals.request_event(approval)  # "1 of 2 approvals", buttons kept
    else:
        shown = events.ApprovalDecided(
            approval_id=approval.id, action=approval.action, subject_id=approval.subject_id, status=approval.status,
            decided_by=approval.decided_by, reason=approval.reason, approved_by=approval.approved_by,
        )  # fmt: skip
    rendered = render(shown)
    try:
        client.chat_update(channel=message.channel, ts=message.ts, text=rendered.text, blocks=rendered.blocks)
    except SlackClientError:
        log.exception("could not edit the message of approval %s", approval.id)


def tell(client: WebClient, *, channel: str | None, user_id: str, text: str) -> None:
    """A message only `user_id` sees, in `channel` (their direct messages when none is known)."""
    if channel is None:  # a click on the Home tab has no channel to answer in
        home.tell_directly(client, user_id=user_id, text=text)
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user_id, text=text)
    except SlackClientError:
        log.exception("could not answer %s", user_id)


def approval_id_from(value: object) -> str | None:
    """The approval id a button or modal carries; None for anything that cannot be one."""
    if isinstance(value, str) and 0 < len(value) <= MAX_APPROVAL_ID and value.isascii() and value.isprintable():
        return value
    return None


def _current(services: Services, approval_id: str) -> Approval | None:
    try:
        return approvals.get(services.store, approval_id)
    except FinetuneError:
        return None


def _click(body: dict[str, Any]) -> dict[str, Any] | None:
    """Who clicked which request where, from a block_actions payload; None (logged) when it says too little."""
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    clicked = body.get("actions")
    action = clicked[0] if isinstance(clicked, list) and clicked and isinstance(clicked[0], dict) else {}
    approval_id = approval_id_from(action.get("value"))
    if not isinstance(user_id, str) or not user_id or approval_id is None:
        log.warning("ignoring an approval click without a user or an approval id")
        return None
    container = body.get("container")
    container = container if isinstance(container, dict) else {}
    channel, ts = container.get("channel_id"), container.get("message_ts")
    channel = channel if isinstance(channel, str) and channel else None
    message = None
    if channel and isinstance(ts, str) and ts and not container.get("is_ephemeral"):
        message = MessageRef(channel=channel, ts=ts)
    return {"user_id": user_id, "approval_id": approval_id, "channel": channel, "message": message}

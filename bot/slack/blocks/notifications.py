"""Typed notification events from the outbox, in Slack."""

from __future__ import annotations

from bot.slack.blocks.kit import SlackMessage, render, section
from core.platform import events, outbox
from core.vocabulary import ApprovalState

APPROVAL_VERBS = {
    ApprovalState.APPROVED: ":white_check_mark: approved",
    ApprovalState.REJECTED: ":no_entry: rejected",
    ApprovalState.EXPIRED: ":hourglass: expired",
    ApprovalState.CANCELLED: ":no_entry_sign: withdrawn",
}
JOB_ICONS = {
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":no_entry_sign:",
    "pending_approval": ":raised_hand:",
}


def render_message(message: outbox.OutboxMessage) -> SlackMessage:
    """An outbox row as a Slack message; rows written before typed events keep their stored text."""
    if message.event is None:
        return SlackMessage(message.text)
    return render(message.event)


@render.register
def _(event: events.Notice) -> SlackMessage:
    text = f":loudspeaker: {event.text}"
    return SlackMessage(text, [section(text)])


@render.register
def _(event: events.JobChanged) -> SlackMessage:
    icon = JOB_ICONS.get(event.status, ":hourglass_flowing_sand:")
    text = f"{icon} Job {event.job_id}: {event.base_model} on {event.dataset_version} via {event.provider}: *{event.status}*"
    if event.detail:
        text += f" ({event.detail})"
    if event.model_id:
        text += f"\nModel: `{event.model_id}`"
    if event.error:
        text += f"\nError: {event.error}"
    return SlackMessage(text, [section(text)])


@render.register
def _(event: events.ApprovalRequested) -> SlackMessage:
    text = (
        f":raised_hand: Approval needed ({event.approval_id}): {event.description}. Requested by {event.requested_by}. "
        f"Approve with `/finetune approve {event.approval_id}` or `finetune approve {event.approval_id}`."
    )
    return SlackMessage(text, [section(text)])


@render.register
def _(event: events.ApprovalDecided) -> SlackMessage:
    verb = APPROVAL_VERBS.get(event.status, event.status)
    who = f" by {event.decided_by}" if event.decided_by else ""
    text = f"{verb}{who}: {event.action} {event.subject_id}" + (f" ({event.reason})" if event.reason else "")
    if event.status == ApprovalState.EXPIRED:
        text += f". Nobody decided {event.approval_id} in time; request the action again if it is still wanted."
    return SlackMessage(text, [section(text)])

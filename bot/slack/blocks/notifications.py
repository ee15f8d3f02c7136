"""Typed notification events from the outbox, in Slack, and the approval buttons and modal.

An approval request carries Approve and Reject buttons (`bot.slack.listeners.actions`
answers them); its decision edits the same message, without buttons.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from bot.slack.blocks.kit import Block, SlackMessage, context, fields, header, render, section
from core.platform import events, outbox
from core.platform.timeutil import parse_iso
from core.vocabulary import ApprovalState, Face, RolloutState

APPROVE_ACTION = "approval_approve"
REJECT_ACTION = "approval_reject"
REJECT_VIEW = "approval_reject_reason"  # the modal's callback_id
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"
REASON_MAX = 500  # characters of a rejection reason
FACE_NAMES: dict[str, str] = {
    Face.SLACK: "Slack",
    Face.CLI: "the terminal",
    Face.MCP: "an agent (MCP)",
    Face.SCHEDULER: "the scheduler",
}

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
    requester = f"{mention(event.requested_by)} via {face_of(event.requested_by)}"
    text = f":raised_hand: Approval needed ({event.approval_id}): {event.description}. Requested by {requester}."
    progress = event.progress()
    if progress:
        text += f" {progress}."
    facts = [
        ("Action", str(event.action)),
        ("Subject", f"`{event.subject_id}`" if event.subject_id else "none"),
        *event.facts.items(),
        ("Estimated cost", f"${event.cost_usd:,.2f}" if event.cost_usd is not None else "unknown"),
        ("Requested by", requester),
        ("Expires", slack_date(event.expires_at) if event.expires_at else "never"),
    ]
    if progress:
        voters = ", ".join(mention(voter) for voter in event.approved_by) or "nobody yet"
        facts.append(("Approvals", f"{progress}: {voters}"))
    blocks = [
        header(f"Approval needed: {event.action} {event.subject_id or ''}".strip()),
        section(event.description),
        *fields(facts),
        decision_buttons(event.approval_id),
        context(
            f"`{event.approval_id}` · from a terminal: `finetune approve {event.approval_id}`"
            f" or `finetune reject {event.approval_id} --reason TEXT`"
        ),
    ]
    return SlackMessage(text, blocks)


@render.register
def _(event: events.ApprovalDecided) -> SlackMessage:
    text = decision_text(event)
    if event.status == ApprovalState.EXPIRED:
        text += f". Nobody decided {event.approval_id} in time; request the action again if it is still wanted."
    return SlackMessage(text, [section(text)])  # no buttons: nothing is left to decide


@render.register
def _(event: events.ApprovalAnswered) -> SlackMessage:
    text = f"Your request `{event.approval_id}` was {decision_text(event)}"
    return SlackMessage(text, [section(text)])


def decision_text(event: events.ApprovalDecided | events.ApprovalAnswered) -> str:
    verb = APPROVAL_VERBS.get(event.status, event.status)
    deciders = event.approved_by if event.status == ApprovalState.APPROVED and event.approved_by else []
    deciders = deciders or ([event.decided_by] if event.decided_by else [])
    who = f" by {_and(mention(d) for d in deciders)}" if deciders else ""
    return f"{verb}{who}: {event.action} {event.subject_id}" + (f" ({event.reason})" if event.reason else "")


def _and(names: Iterable[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def decision_buttons(approval_id: str) -> Block:
    """Approve (primary) and Reject (danger); each button's value is the approval id."""
    return {
        "type": "actions",
        "block_id": f"decide:{approval_id}"[:255],
        "elements": [
            _button("Approve", APPROVE_ACTION, approval_id, style="primary"),
            _button("Reject", REJECT_ACTION, approval_id, style="danger"),
        ],
    }


@render.register
def _(event: events.AliasMoved) -> SlackMessage:
    where = f"`{event.model_name}@{event.alias}`"
    moved = f"{event.from_version_id or 'nothing'} → *{event.to_version_id}*"
    text = f":twisted_rightwards_arrows: {where} ({event.move}): {moved}"
    if event.canary_version_id:
        text += f", canary *{event.canary_version_id}* at {event.canary_share}%"
    by = f"By {mention(event.actor)}" + (f" (approval `{event.approval_id}`)" if event.approval_id else "")
    step = event.rollout_step()
    if step:
        text += f" ({step})"
        by += f" · {step}"
    return SlackMessage(text, [section(text), context(by)])


ROLLOUT_ICONS = {
    RolloutState.COMPLETED: ":white_check_mark:",
    RolloutState.HALTED: ":octagonal_sign:",
    RolloutState.CANCELLED: ":no_entry_sign:",
    RolloutState.SUPERSEDED: ":leftwards_arrow_with_hook:",
    RolloutState.PAUSED: ":double_vertical_bar:",
    RolloutState.WAITING_APPROVAL: ":raised_hand:",
}


@render.register
def _(event: events.RolloutChanged) -> SlackMessage:
    icon = ROLLOUT_ICONS.get(event.status, ":vertical_traffic_light:")
    text = (
        f"{icon} Rollout `{event.rollout_id}` of *{event.version_id}* on `{event.model_name}@{event.alias}`:"
        f" *{event.status}*, stage {event.stage} of {event.stages} ({event.share}%)"
    )
    if event.reason:
        text += f": {event.reason}"
    notes = [f"By {mention(event.actor)}"]
    if event.next_at:
        notes.append(f"next stage {slack_date(event.next_at)}")
    if event.approval_id:
        notes.append(f"waiting for approval `{event.approval_id}`")
    return SlackMessage(text, [section(text), context(" · ".join(notes))])


@render.register
def _(event: events.RegressionAlert) -> SlackMessage:
    from bot.slack.blocks.analytics import daily_chart  # analytics' blocks are loaded after these

    icon = ":white_check_mark: Resolved" if event.resolved else ":chart_with_downwards_trend: Regression"
    text = f"{icon} ({event.alert}, `{event.agent}`): {event.headline}"
    blocks = [section(text), *fields(list(event.facts.items()))]
    start = event.recent_start or ""
    series = {
        "baseline": [(date.fromisoformat(day), value) for day, value in event.daily if day < start],
        "recent": [(date.fromisoformat(day), value) for day, value in event.daily if day >= start],
    }
    metric = event.metric or str(event.alert)
    chart = daily_chart(
        series, title=f"{event.agent}: daily {metric}", ylabel=metric + (" (%)" if metric == "acceptance" else ""),
        filename=f"alert-{event.alert_id}.png", percent=metric == "acceptance",
    )  # fmt: skip
    if chart:
        blocks.append(context(f"Daily {metric}, baseline and recent windows, attached."))
    blocks.append(context(f"Alert #{event.alert_id} · `/finetune alerts` lists the open ones"))
    return SlackMessage(text, blocks, files=chart)


def _button(label: str, action_id: str, value: str, *, style: str) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value[:2000],
        "style": style,
    }


def reject_modal(approval_id: str, *, private_metadata: str) -> Block:
    """The modal that asks why an approval is rejected; its submission carries `private_metadata` back."""
    return {
        "type": "modal",
        "callback_id": REJECT_VIEW,
        "private_metadata": private_metadata[:3000],
        "title": {"type": "plain_text", "text": "Reject request"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Rejecting `{approval_id}`. The requester sees your reason."),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "min_length": 1,
                    "max_length": REASON_MAX,
                },
            },
        ],
    }


def mention(actor: str) -> str:
    """`slack:U123` (how an actor is written) as a Slack mention; any other actor as it is written."""
    face, _, user_id = actor.partition(":")
    return f"<@{user_id}>" if face == Face.SLACK and user_id else f"`{actor}`"


def face_of(actor: str) -> str:
    face = actor.partition(":")[0]
    return FACE_NAMES.get(face, face)


def slack_date(iso_time: str) -> str:
    """A UTC ISO time that each reader's Slack shows in their own time zone (the ISO text as fallback)."""
    try:
        epoch = int(parse_iso(iso_time).timestamp())
    except ValueError:
        return iso_time
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{iso_time}>"

"""Closed-loop runs in Slack: the thread's summary message (edited in place), its step replies, and listings.

The summary carries a Retry button when a run failed (`bot.slack.listeners.loop`
answers it); every other decision is an approval message posted in the same
thread with its own Approve and Reject buttons.
"""

from __future__ import annotations

import re

from bot.commands.loop import OUTCOME_ICONS, linked, run_line
from bot.slack.blocks.kit import Block, SlackMessage, context, fields, header, render, section
from bot.slack.blocks.notifications import mention
from core.loop import LoopRun, LoopRunList
from core.platform import events
from core.vocabulary import Face

RETRY_ACTION = "loop_retry"
STEP_ICON = ":arrows_counterclockwise:"


def retry_button(run_id: str) -> Block:
    return {
        "type": "actions",
        "block_id": f"loop:{run_id}"[:255],
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Retry"},
                "action_id": RETRY_ACTION,
                "value": run_id,
                "style": "primary",
            }
        ],
    }


def _state(outcome: str | None, waiting_for: str) -> str:
    if outcome:
        return f"{OUTCOME_ICONS.get(outcome, '')} *ended {outcome}*".strip()
    return f"{STEP_ICON} waits for {waiting_for}"


@render.register
def _(event: events.LoopChanged) -> SlackMessage:
    title = f"Loop run {event.run_id}: {event.model_name}@{event.alias}"
    state = _state(event.outcome, event.waiting_for)
    latest = with_mentions(event.latest)
    text = f"{title}: {state}. {latest}"
    facts = [(label, f"`{value}`") for label, value in (
        ("Job", event.job_id), ("Candidate", event.version_id), ("Evaluation", event.evaluation_id),
    ) if value]  # fmt: skip
    blocks: list[Block] = [header(title[:150]), section(state), section(f"Latest: {latest}")]
    if facts:
        blocks.extend(fields(facts))
    if event.retry:
        blocks.append(retry_button(event.run_id))
    blocks.append(context(f"Steps in this thread · `finetune loop show {event.run_id}`"))
    return SlackMessage(text, blocks)


_SLACK_ACTOR = re.compile(r"\bslack:([UW][A-Z0-9]{1,30})\b")


def with_mentions(text: str) -> str:
    """`approved by slack:U2` as Slack shows people: `approved by <@U2>`."""
    return _SLACK_ACTOR.sub(r"<@\1>", text)


def _who(actor: str) -> str:
    return "the scheduler" if actor.partition(":")[0] == Face.SCHEDULER else mention(actor)


@render.register
def _(event: events.LoopStepPosted) -> SlackMessage:
    text = with_mentions(f"{event.seq}. {event.text}")
    return SlackMessage(text, [section(text), context(f"{event.step} · by {_who(event.by)}")])


@render.register
def _(result: LoopRunList) -> SlackMessage:
    if not result.runs:
        text = "No loop runs yet: `/finetune loop start AGENT` requests an agent's retraining as one."
        return SlackMessage(text, [section(text)])
    lines = [f"• {run_line(run)}" for run in result.runs[:40]]
    text = "\n".join(lines)
    return SlackMessage(text, [section(text[:2900])])


@render.register
def _(run: LoopRun) -> SlackMessage:
    title = f"Loop run {run.id}: {run.model_name}@{run.alias}"
    state = _state(run.outcome, run.waiting_for())
    blocks: list[Block] = [header(title[:150]), section(state + (f"\n{run.reason}" if run.reason else ""))]
    pairs = [(label, f"`{value}`") for label, value in linked(run)]
    if pairs:
        blocks.extend(fields(pairs))
    steps = with_mentions("\n".join(f"{step.seq}. {step.text}" for step in run.steps[-15:]))
    if steps:
        blocks.append(section(steps[:2900]))
    if run.outcome == "failed":
        blocks.append(retry_button(run.id))
    return SlackMessage(f"{title}: {state}", blocks)

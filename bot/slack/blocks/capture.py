"""The "Add to training data" form: a Slack message (an AI draft) and its correction as one feedback event.

Pure builders: the modal while the thread is read, the form itself (prefilled,
every field editable), a modal that says why there is no form, and the
answer once the event is stored. Block and action ids are the contract with
`bot.slack.listeners.shortcuts`, which reads the submitted values back.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.slack.blocks.kit import Block, SlackMessage, context, render, section
from core.data.capture import MAX_ID_CHARS, CaptureResult

CAPTURE_SHORTCUT = "add_to_training_data"  # the message shortcut's callback_id (bot/manifest.yml)
CAPTURE_VIEW = "add_to_training_data_form"  # the modal's callback_id
TITLE = "Add to training data"

AGENT_BLOCK = "capture_agent"  # a known agent, chosen
NEW_AGENT_BLOCK = "capture_new_agent"  # or a new one, typed
INTENT_BLOCK = "capture_intent"
RATING_BLOCK = "capture_rating"
REQUEST_BLOCK = "capture_request"  # what the AI was asked
DRAFT_BLOCK = "capture_draft"  # the AI's draft: the message
FINAL_BLOCK = "capture_final"  # what the person made of it
INPUT = "value"  # every input's action_id: the block says which field it is

MAX_TEXT_FIELD = 3000  # characters a Slack text input holds
MAX_OPTION_TEXT = 75  # characters of a select option's text
RATINGS: tuple[tuple[str, str], ...] = (
    ("up", ":+1: thumbs up"),
    ("down", ":-1: thumbs down"),
    ("5", "5: excellent"),
    ("4", "4: good"),
    ("3", "3: fair"),
    ("2", "2: poor"),
    ("1", "1: unusable"),
)


@dataclass(frozen=True)
class CaptureForm:
    """What the form shows, prefilled from the message, its thread and the feedback store."""

    draft: str
    final: str = ""
    request: str = ""
    agents: tuple[str, ...] = ()  # known agents to choose from
    agent: str | None = None  # the one chosen at first (one of `agents`)
    new_agent: str = ""
    intent: str = ""
    rating: str | None = None  # one of RATINGS' values
    notes: tuple[str, ...] = ()  # where the prefilled texts came from, or why one is missing


def _modal(blocks: list[Block], *, private_metadata: str = "", submit: str | None = None) -> Block:
    view: Block = {
        "type": "modal",
        "callback_id": CAPTURE_VIEW,
        "private_metadata": private_metadata[:3000],
        "title": {"type": "plain_text", "text": TITLE},
        "close": {"type": "plain_text", "text": "Cancel" if submit else "Close"},
        "blocks": blocks,
    }
    if submit:
        view["submit"] = {"type": "plain_text", "text": submit}
    return view


def loading_view() -> Block:
    """Shown at once (a trigger expires in 3 seconds) while the thread and the agents are read."""
    return _modal([section(":hourglass_flowing_sand: Reading the message and its thread...")])


def problem_view(text: str) -> Block:
    """No form: why, and what to do instead."""
    return _modal([section(text)])


def _option(value: str, text: str) -> Block:
    return {"text": {"type": "plain_text", "text": text[:MAX_OPTION_TEXT], "emoji": True}, "value": value}


def _plain(text: str) -> Block:
    return {"type": "plain_text", "text": text}


def _text_input(
    block_id: str, label: str, *, value: str, optional: bool, multiline: bool, max_length: int, hint: str | None = None,
    placeholder: str | None = None,
) -> Block:  # fmt: skip
    element: Block = {"type": "plain_text_input", "action_id": INPUT, "multiline": multiline, "max_length": max_length}
    if value:
        element["initial_value"] = value[:max_length]
    if placeholder:
        element["placeholder"] = _plain(placeholder)
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": _plain(label),
        "element": element,
    }
    if hint:
        block["hint"] = _plain(hint)
    return block


def _agent_blocks(form: CaptureForm) -> list[Block]:
    choosable = [agent for agent in form.agents if len(agent) <= MAX_OPTION_TEXT]
    if not choosable:
        return [
            _text_input(NEW_AGENT_BLOCK, "Agent", value=form.new_agent, optional=False, multiline=False,
                        max_length=MAX_ID_CHARS, hint="The AI agent that wrote the draft, e.g. support.")
        ]  # fmt: skip
    select: Block = {"type": "static_select", "action_id": INPUT, "options": [_option(a, a) for a in choosable[:100]]}
    select["placeholder"] = _plain("Choose an agent")
    if form.agent in choosable:
        select["initial_option"] = _option(form.agent, form.agent)
    return [
        {"type": "input", "block_id": AGENT_BLOCK, "optional": True, "label": _plain("Agent"), "element": select,
         "hint": _plain("The AI agent that wrote the draft.")},
        _text_input(NEW_AGENT_BLOCK, "Or a new agent", value=form.new_agent, optional=True, multiline=False,
                    max_length=MAX_ID_CHARS, hint="When typed, used instead of the choice above."),
    ]  # fmt: skip


def _rating_block(form: CaptureForm) -> Block:
    select: Block = {"type": "static_select", "action_id": INPUT, "options": [_option(v, t) for v, t in RATINGS]}
    select["placeholder"] = _plain("No rating")
    chosen = next((option for option in RATINGS if option[0] == form.rating), None)
    if chosen is not None:
        select["initial_option"] = _option(*chosen)
    return {"type": "input", "block_id": RATING_BLOCK, "optional": True, "label": _plain("Rating"), "element": select}


def capture_view(form: CaptureForm, *, private_metadata: str) -> Block:
    """The form: agent, intent, rating, the request, the draft and the final text, each editable."""
    blocks: list[Block] = [context(note) for note in form.notes]
    blocks += _agent_blocks(form)
    blocks += [
        _text_input(INTENT_BLOCK, "Intent", value=form.intent, optional=True, multiline=False, max_length=MAX_ID_CHARS,
                    placeholder="e.g. refund"),
        _rating_block(form),
        _text_input(REQUEST_BLOCK, "Request", value=form.request, optional=False, multiline=True,
                    max_length=MAX_TEXT_FIELD, hint="What the AI was asked: the message its draft answered."),
        _text_input(DRAFT_BLOCK, "AI draft", value=form.draft, optional=False, multiline=True,
                    max_length=MAX_TEXT_FIELD),
        _text_input(FINAL_BLOCK, "Final text", value=form.final, optional=True, multiline=True,
                    max_length=MAX_TEXT_FIELD, hint="What was sent in the end. Empty: the draft was not corrected."),
    ]  # fmt: skip
    return _modal(blocks, private_metadata=private_metadata, submit="Add")


@render.register
def _(result: CaptureResult) -> SlackMessage:
    if not result.created:
        text = f"This message is already in the training data (`{result.event_id}`); nothing changed."
        return SlackMessage(text, [section(f":information_source: {text}")])
    kept = f"{result.acceptance:.0%}" if result.acceptance is not None else "all"
    what = f"the final text keeps {kept} of the draft" if result.edited else "the draft was kept as it is"
    text = f"Added to the training data as `{result.event_id}`: agent *{result.agent}*, {what}."
    blocks = [section(f":white_check_mark: {text}")]
    if result.redactions.total:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(result.redactions.by_type.items()))
        blocks.append(context(f"Redacted before it was stored: {found}."))
    return SlackMessage(text, blocks)

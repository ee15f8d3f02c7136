"""Block Kit building blocks, the `render` dispatcher, and the grammar's own results in Slack.

Renderers are pure functions from a result to a `SlackMessage`: `text` is the
notification and screen-reader fallback Slack requires beside blocks, and
`files` are attachments (a chart) that the listener uploads after answering.
No I/O, no core calls.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from bot.commands import ErrorResult, HelpResult, Message, Outcome, UsageProblem

Block = dict[str, Any]
Blocks = list[Block]
MAX_TEXT = 3000


@dataclass(frozen=True)
class Attachment:
    """A file to upload beside the message, in the channel the request came from."""

    filename: str
    title: str
    content: bytes


@dataclass
class SlackMessage:
    text: str
    blocks: Blocks | None = None
    files: list[Attachment] = field(default_factory=list)


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_TEXT]}}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def fields(pairs: list[tuple[str, str]]) -> Blocks:
    """Two-column facts; Slack allows ten fields per section."""
    items = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in pairs]
    return [{"type": "section", "fields": items[i : i + 10]} for i in range(0, len(items), 10)]


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:MAX_TEXT]}]}


def code(text: str) -> str:
    return "```" + text.replace("```", "'''") + "```"


def _as_json(payload: str) -> SlackMessage:
    return SlackMessage(payload[:MAX_TEXT], [section(code(payload[: MAX_TEXT - 6]))])


def render_outcome(outcome: Outcome) -> SlackMessage:
    if outcome.result is None:
        return SlackMessage("Done.", [section("Done.")])
    rendered = render(outcome.result)
    if outcome.as_json:  # the JSON instead of the blocks; attachments (a chart) still go along
        return replace(_as_json(outcome.result.model_dump_json(indent=2)), files=rendered.files)
    return rendered


@functools.singledispatch
def render(result: BaseModel) -> SlackMessage:
    return _as_json(json.dumps(result.model_dump(mode="json"), indent=2))


@render.register
def _(result: HelpResult) -> SlackMessage:
    if result.topic:
        entry = result.commands[0]
        body = f"*Usage:* `{entry.usage}`\n{entry.description or entry.summary}"
        return SlackMessage(f"Usage: {entry.usage}", [section(body)])
    lines = "\n".join(f"`{result.prog} {entry.name}`: {entry.summary}" for entry in result.commands)
    return SlackMessage(
        f"{result.prog} commands",
        [section(f"*{result.prog} commands*\n{lines}"), context(f"`{result.prog} help COMMAND` shows how to use one.")],
    )


@render.register
def _(result: UsageProblem) -> SlackMessage:
    body = f":warning: {result.message}"
    if result.usage:
        body += f"\n*Usage:* `{result.usage}`"
    return SlackMessage(result.message, [section(body), context(f"`{result.prog} help` lists every command.")])


@render.register
def _(result: ErrorResult) -> SlackMessage:
    body = f":x: {result.message}"
    if result.hint:
        body += f"\n*Fix:* {result.hint}"
    return SlackMessage(result.message, [section(body)])


@render.register
def _(result: Message) -> SlackMessage:
    return SlackMessage(result.text, [section(result.text)])

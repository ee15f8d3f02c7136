"""The row builders: an `Example` as the JSONL row each export target trains on.

One converter per target; the target registry (`core.data.targets`) names which
is whose, and `core.data.formats.to_row` is the way to call them:

- ``openai``: chat supervised fine-tuning, ``{"messages": [...]}``; the system
  prompt first, the conversation as it was, the trained answer last.
- ``openai-dpo``: OpenAI preference format; the user's edit is preferred over
  what the AI wrote. Only edited examples have a row.
- ``bedrock-nova``: ``bedrock-conversation-2024`` records for Amazon Nova.
- ``bedrock-claude``: Claude 3 Haiku on Bedrock, ``{"system", "messages"}``.
- ``bedrock-llama``: ``{"prompt", "completion"}`` for Llama on Bedrock. The
  conversation is rendered into `prompt` with the Llama 3 chat template (the
  layout Bedrock's Converse API gives Llama at inference, so a tuned model sees
  what it was trained on), ending with the assistant header; `completion` is
  the answer's plain text.
- ``hf-chat``: ``{"messages": [...]}`` for local LoRA training through a
  tokenizer's chat template (system role allowed).

Bedrock and hf-chat rows alternate user/assistant starting with user (Bedrock
requires it, and many chat templates refuse anything else): consecutive turns of
one role are merged, separated by a blank line, and assistant turns before the
first user turn are dropped. Messages with empty (or only white-space) content are
left out everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.data.examples import Example
from core.errors import InvalidInput

Row = dict[str, Any]
"""One JSONL line of a training file, as parsed JSON."""

Converter = Callable[[Example], "Row | None"]
"""Builds an example's row for one target, or None when the target cannot express it."""

NOVA_SCHEMA_VERSION = "bedrock-conversation-2024"
TURN_SEPARATOR = "\n\n"
CONVERSATION_ROLES = ("user", "assistant")


def _conversation(example: Example) -> list[tuple[str, str]]:
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(example.messages):
        role, content = message.get("role"), message.get("content")
        if role not in CONVERSATION_ROLES:
            raise InvalidInput(
                f"example {example.id} has a message with role {role!r} at messages[{index}].",
                hint="Conversation messages take role 'user' or 'assistant'; put instructions in `system`.",
                example=example.id,
            )
        if content and content.strip():
            turns.append((role, content))
    return turns


def _alternating(example: Example) -> list[tuple[str, str]] | None:
    turns = [*_conversation(example), ("assistant", example.completion)]
    while turns and turns[0][0] != "user":
        turns.pop(0)
    if not turns:
        return None
    merged = [turns[0]]
    for role, content in turns[1:]:
        if role == merged[-1][0]:
            merged[-1] = (role, merged[-1][1] + TURN_SEPARATOR + content)
        else:
            merged.append((role, content))
    return merged


def _chat_messages(example: Example, turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    system = [{"role": "system", "content": example.system}] if example.system else []
    return system + [{"role": role, "content": content} for role, content in turns]


def openai_row(example: Example) -> Row | None:
    turns = [*_conversation(example), ("assistant", example.completion)]
    return {"messages": _chat_messages(example, turns)}


def openai_dpo_row(example: Example) -> Row | None:
    if not example.edited:
        return None
    return {
        "input": {"messages": _chat_messages(example, _conversation(example))},
        "preferred_output": [{"role": "assistant", "content": example.final}],
        "non_preferred_output": [{"role": "assistant", "content": example.output}],
    }


def bedrock_nova_row(example: Example) -> Row | None:
    turns = _alternating(example)
    if turns is None:
        return None
    row: Row = {"schemaVersion": NOVA_SCHEMA_VERSION}
    if example.system:
        row["system"] = [{"text": example.system}]
    row["messages"] = [{"role": role, "content": [{"text": content}]} for role, content in turns]
    return row


def bedrock_claude_row(example: Example) -> Row | None:
    turns = _alternating(example)
    if turns is None:
        return None
    row: Row = {"system": example.system} if example.system else {}
    row["messages"] = [{"role": role, "content": content} for role, content in turns]
    return row


def bedrock_llama_row(example: Example) -> Row | None:
    turns = _alternating(example)
    if turns is None:
        return None
    *context, (_, answer) = turns
    return {"prompt": render_llama3_prompt(example.system, context), "completion": answer}


def render_llama3_prompt(system: str | None, turns: list[tuple[str, str]]) -> str:
    """The Llama 3 chat template up to and including the header of the assistant's reply."""
    parts = ["<|begin_of_text|>"]
    if system:
        parts.append(_llama3_turn("system", system))
    parts.extend(_llama3_turn(role, content) for role, content in turns)
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _llama3_turn(role: str, content: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"


def hf_chat_row(example: Example) -> Row | None:
    turns = _alternating(example)
    if turns is None:
        return None
    return {"messages": _chat_messages(example, turns)}

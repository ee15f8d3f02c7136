"""The documented rules of each export target's training rows.

A `TargetRules` object checks one parsed row (`check`, adding an `Issue` for
every rule it breaks), counts the tokens of a row that passed (`count`, with the
model's `Tokenizer`), and checks the number of examples in a training file
(`dataset_issues`). The target registry (`core.data.targets`) holds one per
target; `core.data.validation` runs them over files.

- ``openai``: a ``messages`` list; roles system, user, assistant, tool and
  function; each role takes only its documented keys (``name``; ``weight`` 0 or
  1 on assistant messages; ``tool_calls``/``function_call`` on assistant
  messages, which may then omit content; ``tool_call_id`` on tool messages);
  content a string or a list of content parts (text; image_url in user
  messages); at least one assistant message; top-level keys only ``messages``,
  ``tools``, ``parallel_tool_calls`` and ``functions``; at most the model's
  ``max_example_tokens``; at least 10 examples in the file.
- ``openai-dpo``: ``input`` with a ``messages`` list (checked as above) and
  optional ``tools``/``parallel_tool_calls``; ``preferred_output`` and
  ``non_preferred_output`` each a list of exactly one assistant message
  (text content); nothing else; token limit; at least 10 examples.
- ``bedrock-nova``: ``schemaVersion`` a string (the documentation allows any
  value; exports write ``bedrock-conversation-2024``); optional ``system``, a
  list of ``{"text"}``; ``messages`` of at least two turns, starting with user,
  alternating, ending with assistant; content a non-empty list of blocks, each
  exactly one of ``text``, ``image``, ``video`` (media only in user turns, never
  for Nova Micro, at most 10 images or 1 video per record, not both, an S3 URI);
  no text may contain the reserved terms (`NOVA_RESERVED_TERMS`); token limit
  when the catalog gives one; 8 to 20,000 examples.
- ``bedrock-claude``: only ``system`` (a string) and ``messages``; at least two
  messages, each only ``role`` and non-empty string ``content``, starting with
  user, alternating, ending with assistant; token limit when the catalog gives one.
- ``bedrock-llama``: exactly ``prompt`` and ``completion``, non-empty strings.
- ``hf-chat``: as ``openai`` with top-level keys ``messages`` and ``tools``, no
  minimum example count, and a token limit only when a model is given.

For every target, an answer the model trains on must hold text: an assistant
message (unless it carries tool calls), a DPO output, a Nova or Claude turn or
a Llama completion that is empty or only white space is an ``empty_content``
error, since it would teach the model to answer with nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from core.data.converters import Row
from core.data.tokens import Tokenizer

Issue = tuple[str, str | None, str, str]
"""A problem with a row: (kind, field, message, hint)."""

MessageCheck = Callable[[object, str], "str | None"]
"""Checks one message at a field path; returns its role, or None when it is invalid."""

# Terms Amazon documents as reserved for Nova fine-tuning, plus the capitalised
# and `Thought:` forms AWS's own Nova dataset validator also rejects.
NOVA_RESERVED_TERMS = (
    "User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]",
    "USER:", "BOT:", "ASSISTANT:", "SYSTEM:", "Thought:",
)  # fmt: skip
NOVA_MIN_EXAMPLES, NOVA_MAX_EXAMPLES = 8, 20_000
NOVA_IMAGE_FORMATS = ("jpeg", "png", "gif", "webp")
NOVA_VIDEO_FORMATS = ("mov", "mkv", "mp4", "webm")
NOVA_MAX_IMAGES = 10
OPENAI_MIN_EXAMPLES = 10


class Issues(list[Issue]):
    """Issues found in one row, as (kind, field, message, hint)."""

    def add(self, kind: str, field: str | None, message: str, hint: str) -> None:
        self.append((kind, field, message, hint))

    def missing(self, field: str, hint: str) -> None:
        self.add("missing_field", field, f"`{field}` is missing.", hint)

    def wrong_type(self, field: str, value: object, expected: str, hint: str | None = None) -> None:
        self.add(
            "wrong_type",
            field,
            f"`{field}` must be {expected}, not a {json_type(value)}.",
            hint or f"Make `{field}` {expected}.",
        )

    def unknown(self, field: str, allowed: Iterable[str], where: str) -> None:
        keys = ", ".join(f"`{key}`" for key in allowed)
        self.add("unknown_field", field, f"`{field}` is not a field {where} takes.", f"Remove it; allowed: {keys}.")

    def too_many_tokens(self, n: int, *, model: str | None, limit: int, exact: bool) -> None:
        counted = f"{n} tokens" if exact else f"about {n} tokens (estimated)"
        self.add(
            "too_many_tokens",
            None,
            f"the example has {counted}; {model} accepts at most {limit} per example.",
            "Shorten the conversation (drop early turns or trim long messages) or split it into several examples.",
        )


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _check_keys(row: Row, allowed: frozenset[str], prefix: str, where: str, issues: Issues) -> None:
    for key in row:
        if key not in allowed:
            issues.unknown(f"{prefix}{key}", sorted(allowed), where)


def _required_list(row: Row, key: str, field: str, what: str, issues: Issues) -> list[Any] | None:
    if key not in row:
        issues.missing(field, f"Add `{field}`: {what}.")
        return None
    value = row[key]
    if type(value) is not list:
        issues.wrong_type(field, value, "a list", f"Make `{field}` a list: {what}.")
        return None
    return value


def _check_conversation(row: Row, issues: Issues, unit: str, check_message: MessageCheck) -> None:
    """A Bedrock conversation: `messages` is a list of at least two turns, each valid (`check_message`
    returns its role, or None when invalid), starting with user, alternating, ending with assistant."""
    messages = _required_list(row, "messages", "messages", "user and assistant turns", issues)
    if messages is None:
        return
    if len(messages) < 2:
        issues.add(
            "too_few_messages",
            "messages",
            f"`messages` has {len(messages)} {unit}; a record needs a user turn and the assistant's answer.",
            "Give every record at least one user turn followed by the assistant's answer.",
        )
    roles = [check_message(m, f"messages[{i}]") for i, m in enumerate(messages)]
    if len(roles) >= 2 and all(roles):
        _check_turn_order(roles, "messages", issues)


def _check_turn_order(roles: list[str | None], field: str, issues: Issues) -> None:
    """User first, then strictly alternating, assistant last (Bedrock's conversation rule)."""
    if roles[0] != "user":
        issues.add(
            "must_start_with_user",
            f"{field}[0].role",
            f"`{field}[0].role` is {roles[0]!r}; the first message must come from the user.",
            "Start the conversation with a user turn (move instructions into `system`).",
        )
        return
    for index in range(1, len(roles)):
        if roles[index] == roles[index - 1]:
            issues.add(
                "roles_not_alternating",
                f"{field}[{index}].role",
                f"`{field}[{index}].role` is {roles[index]!r} again; roles must alternate.",
                "Alternate user and assistant turns; merge consecutive turns of one role into one.",
            )
            return
    if roles[-1] != "assistant":
        issues.add(
            "must_end_with_assistant",
            f"{field}[{len(roles) - 1}].role",
            f"`{field}[{len(roles) - 1}].role` is {roles[-1]!r}; the last message must be the assistant's answer.",
            "End each example with the assistant turn the model should learn.",
        )


# ---------------------------------------------------------------- rules per target


class TargetRules:
    """The documented rules of one export target."""

    min_examples: int | None = None
    max_examples: int | None = None
    provider = ""

    def check(self, row: Row, issues: Issues, model: str | None) -> None:
        """Add an issue for every rule `row` breaks."""
        raise NotImplementedError

    def count(self, row: Row, tokenizer: Tokenizer) -> int:
        """Tokens of a row that passed `check`."""
        raise NotImplementedError

    def dataset_issues(self, examples: int) -> list[Issue]:
        """Issues with a training file of `examples` examples as a whole."""
        if examples == 0:
            return [("empty_file", None, "the file has no examples.", "Export at least one example into it.")]
        if self.min_examples is not None and examples < self.min_examples:
            return [
                (
                    "too_few_examples",
                    None,
                    f"the file has {examples} examples; {self.provider} requires at least {self.min_examples}.",
                    f"Add examples until there are at least {self.min_examples}.",
                )
            ]
        if self.max_examples is not None and examples > self.max_examples:
            return [
                (
                    "too_many_examples",
                    None,
                    f"the file has {examples} examples; {self.provider} accepts at most {self.max_examples}.",
                    f"Keep at most {self.max_examples} examples (split training and validation files).",
                )
            ]
        return []


_OPENAI_MESSAGE_KEYS = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "weight", "tool_calls", "function_call"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
_OPENAI_ROLES = tuple(_OPENAI_MESSAGE_KEYS)
_IMAGE_DETAILS = ("auto", "low", "high")


def _check_openai_message(
    message: object, field: str, issues: Issues, roles: tuple[str, ...] = _OPENAI_ROLES
) -> str | None:
    """Check one chat message in OpenAI's format; returns its role when known."""
    if type(message) is not dict:
        issues.wrong_type(field, message, "an object", 'Write each message as {"role": ..., "content": ...}.')
        return None
    if "role" not in message:
        issues.missing(f"{field}.role", f"Give the message a role: one of {', '.join(roles)}.")
        return None
    role = message["role"]
    if type(role) is not str or role not in roles:
        issues.add(
            "invalid_role",
            f"{field}.role",
            f"`{field}.role` is {role!r}; expected one of {', '.join(roles)}.",
            f"Use one of {', '.join(roles)}.",
        )
        return None
    allowed = _OPENAI_MESSAGE_KEYS[role]
    _check_keys(message, allowed, f"{field}.", f"a {role} message", issues)
    calls = role == "assistant" and bool(message.get("tool_calls") or message.get("function_call"))
    if "content" not in message:
        if not calls:
            issues.missing(f"{field}.content", "Give the message its text as `content`.")
    else:
        _check_openai_content(message["content"], role, calls, f"{field}.content", issues)
    weight = message.get("weight")
    if "weight" in message and role == "assistant" and (type(weight) is not int or weight not in (0, 1)):
        issues.add(
            "invalid_weight",
            f"{field}.weight",
            f"`{field}.weight` is {weight!r}; it must be 0 or 1.",
            "Use 1 to train on this assistant message, 0 to skip it.",
        )
    if "name" in message and type(message["name"]) is not str:
        issues.wrong_type(f"{field}.name", message["name"], "a string")
    if role == "tool" and type(message.get("tool_call_id")) is not str:
        issues.missing(f"{field}.tool_call_id", "Give a tool message the `tool_call_id` of the call it answers.")
    if role == "function" and type(message.get("name")) is not str:
        issues.missing(f"{field}.name", "Give a function message the `name` of the function that answered.")
    if "tool_calls" in message and role == "assistant" and type(message["tool_calls"]) is not list:
        issues.wrong_type(f"{field}.tool_calls", message["tool_calls"], "a list")
    return role


def _check_openai_content(content: object, role: str, calls: bool, field: str, issues: Issues) -> None:
    if type(content) is str:
        if role == "assistant" and not calls and not content.strip():
            _empty_answer(field, issues)
        return
    if content is None:
        if not calls:
            issues.wrong_type(field, content, "a string", "Give the text; null is allowed only beside tool_calls.")
        return
    if type(content) is not list:
        issues.wrong_type(field, content, "a string or a list of content parts")
        return
    if not content:
        issues.add("empty_content", field, f"`{field}` is an empty list.", "Give the message at least one text part.")
    types = ("text", "image_url") if role == "user" else ("text",)
    for index, part in enumerate(content):
        part_field = f"{field}[{index}]"
        if type(part) is not dict:
            issues.wrong_type(part_field, part, "an object", 'Write parts as {"type": "text", "text": ...}.')
        elif part.get("type") not in types:
            issues.add(
                "invalid_content_part",
                f"{part_field}.type",
                f"`{part_field}.type` is {part.get('type')!r}; a {role} message takes {', '.join(types)} parts.",
                "Use text parts (and image_url parts only in user messages).",
            )
        elif part["type"] == "text" and type(part.get("text")) is not str:
            issues.missing(f"{part_field}.text", "Give a text part its string as `text`.")
        elif part["type"] == "image_url":
            image = part.get("image_url")
            if type(image) is not dict or type(image.get("url")) is not str:
                shape = '{"type": "image_url", "image_url": {"url": ...}}'
                issues.missing(f"{part_field}.image_url.url", f"Write image parts as {shape}.")
            elif "detail" in image and image["detail"] not in _IMAGE_DETAILS:
                issues.add(
                    "invalid_content_part",
                    f"{part_field}.image_url.detail",
                    f"`{part_field}.image_url.detail` is {image['detail']!r}.",
                    f"Use one of {', '.join(_IMAGE_DETAILS)}, or leave it out.",
                )

    texts = [part.get("text") for part in content if type(part) is dict and part.get("type") == "text"]
    only_text = bool(texts) and len(texts) == len(content)
    if role == "assistant" and not calls and only_text and all(type(t) is str and not t.strip() for t in texts):
        _empty_answer(field, issues)


def _empty_answer(field: str, issues: Issues) -> None:
    issues.add(
        "empty_content",
        field,
        f"`{field}` is empty or only white space: the model would learn to answer with nothing.",
        "Give the assistant's answer text, or leave the example out.",
    )


def _check_openai_tools(row: Row, prefix: str, issues: Issues) -> None:
    for key in ("tools", "functions"):
        if key in row and type(row[key]) is not list:
            issues.wrong_type(f"{prefix}{key}", row[key], "a list of definitions")
    if "parallel_tool_calls" in row and type(row["parallel_tool_calls"]) is not bool:
        issues.wrong_type(f"{prefix}parallel_tool_calls", row["parallel_tool_calls"], "true or false")


class ChatRules(TargetRules):
    """OpenAI chat fine-tuning rows: {"messages": [...]} (also the base of hf-chat)."""

    top_keys = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
    min_examples: int | None = OPENAI_MIN_EXAMPLES
    provider = "OpenAI"

    def check(self, row: Row, issues: Issues, model: str | None) -> None:
        _check_keys(row, self.top_keys, "", "an example", issues)
        _check_openai_tools(row, "", issues)
        conversation = "the conversation, ending with the assistant's answer"
        messages = _required_list(row, "messages", "messages", conversation, issues)
        if messages is None:
            return
        if not messages:
            issues.add("too_few_messages", "messages", "`messages` is empty.", f"Add {conversation}.")
            return
        roles = [_check_openai_message(m, f"messages[{i}]", issues) for i, m in enumerate(messages)]
        if "assistant" not in roles and all(roles):
            issues.add(
                "no_assistant_message",
                "messages",
                "`messages` has no assistant message, so there is nothing to train on.",
                "Add the assistant's answer as the last message.",
            )

    def count(self, row: Row, tokenizer: Tokenizer) -> int:
        return tokenizer.count_messages(row["messages"])


class HfChatRules(ChatRules):
    """Rows for local training through a chat template: {"messages": [...]}, optional tools."""

    top_keys = frozenset({"messages", "tools"})
    min_examples = None
    provider = "local training"


class OpenAIDpoRules(TargetRules):
    """OpenAI preference rows: input.messages, preferred_output, non_preferred_output."""

    top_keys = frozenset({"input", "preferred_output", "non_preferred_output"})
    input_keys = frozenset({"messages", "tools", "parallel_tool_calls"})
    min_examples = OPENAI_MIN_EXAMPLES
    provider = "OpenAI"

    def check(self, row: Row, issues: Issues, model: str | None) -> None:
        _check_keys(row, self.top_keys, "", "a preference example", issues)
        prompt = row.get("input")
        if "input" not in row:
            issues.missing("input", 'Add `input`: {"messages": [...]} with the prompt.')
        elif type(prompt) is not dict:
            issues.wrong_type("input", prompt, "an object", 'Make `input` {"messages": [...]}.')
        else:
            _check_keys(prompt, self.input_keys, "input.", "`input`", issues)
            _check_openai_tools(prompt, "input.", issues)
            messages = _required_list(prompt, "messages", "input.messages", "the prompt conversation", issues)
            if messages == []:
                hint = "Add the prompt, e.g. the user's message."
                issues.add("too_few_messages", "input.messages", "`input.messages` is empty.", hint)
            for index, message in enumerate(messages or ()):
                _check_openai_message(message, f"input.messages[{index}]", issues)
        for key in ("preferred_output", "non_preferred_output"):
            self._check_output(row, key, issues)

    def _check_output(self, row: Row, key: str, issues: Issues) -> None:
        output = _required_list(row, key, key, "a list holding one assistant message", issues)
        if output is None:
            return
        if len(output) != 1:
            issues.add(
                "wrong_output_count",
                key,
                f"`{key}` holds {len(output)} messages; it must hold exactly one assistant message.",
                f'Write `{key}` as [{{"role": "assistant", "content": ...}}].',
            )
            return
        _check_openai_message(output[0], f"{key}[0]", issues, roles=("assistant",))

    def count(self, row: Row, tokenizer: Tokenizer) -> int:
        conversation = [*row["input"]["messages"], *row["preferred_output"], *row["non_preferred_output"]]
        return tokenizer.count_messages(conversation)


_NOVA_RESERVED = re.compile("|".join(re.escape(term) for term in NOVA_RESERVED_TERMS))


class NovaRules(TargetRules):
    """Amazon Nova rows: bedrock-conversation-2024 records."""

    top_keys = frozenset({"schemaVersion", "system", "messages"})
    message_keys = frozenset({"role", "content"})
    media_keys = frozenset({"format", "source"})
    min_examples, max_examples = NOVA_MIN_EXAMPLES, NOVA_MAX_EXAMPLES
    provider = "Bedrock (Nova)"

    def check(self, row: Row, issues: Issues, model: str | None) -> None:
        _check_keys(row, self.top_keys, "", "a Nova record", issues)
        if "schemaVersion" not in row:
            issues.missing("schemaVersion", 'Add "schemaVersion": "bedrock-conversation-2024".')
        elif type(row["schemaVersion"]) is not str:
            issues.wrong_type("schemaVersion", row["schemaVersion"], "a string", 'Use "bedrock-conversation-2024".')
        if "system" in row:
            self._check_system(row["system"], issues)
        media = {"image": 0, "video": 0}
        _check_conversation(
            row, issues, "turn(s)", lambda m, field: self._check_message(m, field, issues, model, media)
        )
        if media["video"] > 1 or media["image"] > NOVA_MAX_IMAGES or (media["video"] and media["image"]):
            issues.add(
                "too_many_media",
                "messages",
                f"`messages` hold {media['image']} image(s) and {media['video']} video(s).",
                f"Use at most {NOVA_MAX_IMAGES} images or one video per record, not both.",
            )

    def _check_system(self, system: object, issues: Issues) -> None:
        if type(system) is not list:
            issues.wrong_type("system", system, "a list", 'Write `system` as [{"text": "..."}].')
            return
        for index, block in enumerate(system):
            field = f"system[{index}]"
            if type(block) is not dict:
                issues.wrong_type(field, block, "an object", 'Write system blocks as {"text": "..."}.')
                continue
            _check_keys(block, frozenset({"text"}), f"{field}.", "a system block", issues)
            if type(block.get("text")) is not str:
                issues.missing(f"{field}.text", 'Write system blocks as {"text": "..."}.')
            else:
                _check_reserved(block["text"], f"{field}.text", issues)

    def _check_message(
        self, message: object, field: str, issues: Issues, model: str | None, media: dict[str, int]
    ) -> str | None:
        if type(message) is not dict:
            issues.wrong_type(field, message, "an object", 'Write turns as {"role": ..., "content": [{"text": ...}]}.')
            return None
        _check_keys(message, self.message_keys, f"{field}.", "a Nova turn", issues)
        role = message.get("role")
        if "role" not in message:
            issues.missing(f"{field}.role", "Give the turn a role: user or assistant.")
        elif role not in ("user", "assistant"):
            issues.add(
                "invalid_role",
                f"{field}.role",
                f"`{field}.role` is {role!r}; Nova turns are user or assistant.",
                "Use user or assistant; put instructions in the top-level `system` list.",
            )
            role = None
        blocks = 'a list of blocks like {"text": "..."}'
        content = _required_list(message, "content", f"{field}.content", blocks, issues)
        if content is not None and role is not None:
            self._check_content(content, role, f"{field}.content", issues, model, media)
        return role

    def _check_content(
        self, content: list[Any], role: str, field: str, issues: Issues, model: str | None, media: dict[str, int]
    ) -> None:
        text_length, has_media = 0, False
        for index, block in enumerate(content):
            block_field = f"{field}[{index}]"
            if type(block) is not dict:
                issues.wrong_type(block_field, block, "an object", 'Write content blocks as {"text": "..."}.')
                continue
            kinds = [key for key in ("text", "image", "video") if key in block]
            if len(kinds) != 1:
                issues.add(
                    "invalid_content_block",
                    block_field,
                    f"`{block_field}` must hold exactly one of text, image or video; it holds {len(kinds)}.",
                    'Write each block as {"text": "..."} (or one image or video).',
                )
                continue
            _check_keys(block, frozenset(kinds), f"{block_field}.", "a content block", issues)
            if kinds[0] == "text":
                text = block["text"]
                if type(text) is not str:
                    issues.wrong_type(f"{block_field}.text", text, "a string")
                else:
                    text_length += len(text.strip())
                    _check_reserved(text, f"{block_field}.text", issues)
            else:
                has_media = True
                media[kinds[0]] += 1
                self._check_media(block[kinds[0]], kinds[0], role, f"{block_field}.{kinds[0]}", issues, model)
        if not has_media and text_length == 0:
            issues.add("empty_content", field, f"`{field}` has no text (or only white space).", "Give every turn text.")

    def _check_media(self, item: object, kind: str, role: str, field: str, issues: Issues, model: str | None) -> None:
        if role == "assistant" or (model and "micro" in model):
            where = "assistant turns" if role == "assistant" else "Nova Micro"
            issues.add(
                "media_not_allowed",
                field,
                f"`{field}`: {where} cannot hold images or video.",
                "Keep media in user turns, and use Nova Lite or Pro for images and video.",
            )
            return
        formats = NOVA_IMAGE_FORMATS if kind == "image" else NOVA_VIDEO_FORMATS
        if type(item) is not dict:
            shape = '{"format": ..., "source": {"s3Location": {"uri": "s3://..."}}}'
            issues.wrong_type(field, item, "an object", f"Write it as {shape}.")
            return
        _check_keys(item, self.media_keys, f"{field}.", f"an {kind} block", issues)
        if item.get("format") not in formats:
            issues.add(
                "invalid_media",
                f"{field}.format",
                f"`{field}.format` is {item.get('format')!r}.",
                f"Use one of {', '.join(formats)}.",
            )
        source = item.get("source")
        location = source.get("s3Location") if type(source) is dict else None
        uri = location.get("uri") if type(location) is dict else None
        if type(uri) is not str or not uri.startswith("s3://"):
            issues.add(
                "invalid_media",
                f"{field}.source.s3Location.uri",
                f"`{field}.source.s3Location.uri` must be an s3:// URI.",
                "Point at the file in the S3 bucket that holds the dataset.",
            )

    def count(self, row: Row, tokenizer: Tokenizer) -> int:
        conversation = []
        if row.get("system"):
            conversation.append({"role": "system", "content": "".join(b["text"] for b in row["system"])})
        for message in row["messages"]:
            text = "".join(block["text"] for block in message["content"] if "text" in block)
            conversation.append({"role": message["role"], "content": text})
        return tokenizer.count_messages(conversation)


def _check_reserved(text: str, field: str, issues: Issues) -> None:
    found = _NOVA_RESERVED.findall(text)
    if found:
        terms = ", ".join(f"`{term}`" for term in dict.fromkeys(found))
        issues.add(
            "reserved_keyword",
            field,
            f"`{field}` contains {terms}, reserved by Nova fine-tuning.",
            "Reword it (e.g. `Customer -` for `User:`); Bedrock fails the job on these terms anywhere in the text.",
        )


class ClaudeRules(TargetRules):
    """Claude 3 Haiku on Bedrock: {"system": str, "messages": [...]}."""

    top_keys = frozenset({"system", "messages"})
    message_keys = frozenset({"role", "content"})
    provider = "Bedrock (Claude)"

    def check(self, row: Row, issues: Issues, model: str | None) -> None:
        _check_keys(row, self.top_keys, "", "a Claude record", issues)
        if "system" in row and type(row["system"]) is not str:
            issues.wrong_type("system", row["system"], "a string", "Give the system prompt as one string.")
        _check_conversation(row, issues, "message(s)", lambda m, field: self._check_message(m, field, issues))

    def _check_message(self, message: object, field: str, issues: Issues) -> str | None:
        if type(message) is not dict:
            issues.wrong_type(field, message, "an object", 'Write messages as {"role": ..., "content": "..."}.')
            return None
        _check_keys(message, self.message_keys, f"{field}.", "a Claude message", issues)
        content = message.get("content")
        if "content" not in message:
            issues.missing(f"{field}.content", "Give the message its text as `content`.")
        elif type(content) is not str:
            issues.wrong_type(f"{field}.content", content, "a string")
        elif not content.strip():
            issues.add("empty_content", f"{field}.content", f"`{field}.content` is empty.", "Give every message text.")
        role = message.get("role")
        if "role" not in message:
            issues.missing(f"{field}.role", "Give the message a role: user or assistant.")
            return None
        if type(role) is not str or role not in ("user", "assistant"):
            issues.add(
                "invalid_role",
                f"{field}.role",
                f"`{field}.role` is {role!r}; Claude records take user or assistant.",
                "Use user or assistant; put instructions in the top-level `system` string.",
            )
            return None
        return role

    def count(self, row: Row, tokenizer: Tokenizer) -> int:
        system = [{"role": "system", "content": row["system"]}] if row.get("system") else []
        return tokenizer.count_messages(system + row["messages"])


class LlamaRules(TargetRules):
    """Llama on Bedrock: {"prompt": str, "completion": str}."""

    keys = frozenset({"prompt", "completion"})
    provider = "Bedrock (Llama)"

    def check(self, row: Row, issues: Issues, model: str | None) -> None:
        _check_keys(row, self.keys, "", "a Llama record", issues)
        for key in ("prompt", "completion"):
            value = row.get(key)
            if key not in row:
                issues.missing(key, f"Add `{key}` as a non-empty string.")
            elif type(value) is not str:
                issues.wrong_type(key, value, "a string")
            elif not value.strip():
                issues.add("empty_content", key, f"`{key}` is empty.", f"Give `{key}` text.")

    def count(self, row: Row, tokenizer: Tokenizer) -> int:
        return tokenizer.count_text(row["prompt"]) + tokenizer.count_text(row["completion"])

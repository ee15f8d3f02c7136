"""One feedback event's fields: read, checked and bounded into a storable row, or refused naming the field.

An event (JSONL line, CSV row, MCP batch item or Python dict):

    {"id"?, "agent", "intent"?, "messages": [{"role", "content"}...] | "prompt": str, "system"?,
     "output": str, "final"?: str, "rating"?: 1-5 | "up" | "down", "model"?, "template"?,
     "latency_ms"?, "cost_usd"?, "user"?, "created_at"?: ISO-8601 or epoch seconds, "tags"?: [str],
     "model_version"?: "name:vN", "arm"?: "stable" | "canary"}

Unknown fields are kept as metadata. A thumbs-up rating is stored as 5 and
thumbs-down as 1, so one `min_rating` filter serves both scales.

An outcome of a served draft also says which registry version produced it
(`model_version`, `support:v3`: the `version` a resolution answered; it need not
be registered yet, and is stored as given) and on which arm of its alias
(`arm`: stable or canary), so per-version and per-arm analysis is a query.
`model` stays the free-text model name.

Every value in the event, known field or not, must be plain JSON that any
reader can take back: text without unpaired surrogates, finite numbers,
integers within 64 bits, at most `MAX_DEPTH` levels of nesting, strings of at
most `MAX_TEXT_CHARS` characters (texts: messages, output, final, system,
metadata). Identifiers (id, agent, intent, user, template, model,
model_version, each tag) hold at most `MAX_ID_CHARS` characters, and an event at most `MAX_TAGS` tags.
Anything else raises `BadField`, naming the field (`messages[2].content`) and
the fix.

The identity of an event is the hash of its content as given (before
redaction), so ingesting the same events again changes nothing. The version
and arm count only when given, so events without them keep the hash they had
before those fields existed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, overload

from core.data.pii import Redactor, redact_into
from core.data.rules import json_type
from core.platform.text import lone_surrogate
from core.platform.timeutil import iso
from core.vocabulary import Arm, one_of, values

FIELDS = (
    "id", "agent", "intent", "messages", "prompt", "system", "output", "final", "rating", "model",
    "template", "latency_ms", "cost_usd", "user", "created_at", "tags", "model_version", "arm",
)  # fmt: skip
IDENTIFIERS = ("agent", "intent", "model", "template", "user")
VERSION_ID = re.compile(r"[^\s:]{1,240}:v[1-9][0-9]{0,8}")  # a registry version id, as the registry makes them
ROLES = ("user", "assistant", "system")
MAX_ID_CHARS = 256
MAX_TEXT_CHARS = 1_000_000
MAX_TAGS = 100
MAX_DEPTH = 32
MAX_INT_BITS = 64
_TIME_HINT = 'Use ISO-8601 ("2026-11-23T10:00:00Z") or epoch seconds.'


class BadField(Exception):
    """An event's field is wrong: which one (None for the event as a whole), what is wrong, and the fix."""

    def __init__(self, field: str | None, message: str, hint: str) -> None:
        super().__init__(message)
        self.field, self.message, self.hint = field, message, hint


# Every value: plain, bounded JSON ------------------------------------------------------------------


def check_json(event: dict[str, Any]) -> None:
    """Raise BadField for the first value in `event` that is not plain, bounded JSON (see the module doc)."""
    for key in event:
        _check_key(key, "")
    stack: list[tuple[str, Any, int]] = [(_key_path("", key), value, 1) for key, value in event.items()]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict):
            _check_depth(path, depth)
            for key in value:
                _check_key(key, path)
            stack.extend((_key_path(path, key), item, depth + 1) for key, item in value.items())
        elif isinstance(value, list):
            _check_depth(path, depth)
            stack.extend((f"{path}[{index}]", item, depth + 1) for index, item in enumerate(value))
        else:
            _check_scalar(path, value)


def _key_path(parent: str, key: str) -> str:
    name = key if len(key) <= 40 else key[:40] + "…"
    return f"{parent}.{name}" if parent else name


def _check_key(key: object, parent: str) -> None:
    """Keys are names: short, plain text (checked before any path is built from them)."""
    problem = None
    if not isinstance(key, str):
        problem = f"is of type {type(key).__name__}, not text"
    elif len(key) > MAX_ID_CHARS:
        problem = f"is {len(key):,} characters long (at most {MAX_ID_CHARS})"
    elif _has_surrogate(key):
        problem = "holds an unpaired surrogate, which is not text"
    if problem is not None:
        where = "has a key that" if parent else "a field name"
        raise BadField(parent or None, f"{where} {problem}.", "Name fields with short, plain strings.")


def _check_depth(path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BadField(
            path, f"nests objects and lists more than {MAX_DEPTH} levels deep.", "Flatten it, or give it as a string."
        )


def _check_scalar(path: str, value: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise BadField(
                path, f"is {len(value):,} characters long; at most {MAX_TEXT_CHARS:,} are stored.", "Shorten the text."
            )
        if _has_surrogate(value):
            raise BadField(
                path, "holds an unpaired surrogate (\\ud800-\\udfff), which is not text.",
                "Write the text as valid Unicode (UTF-8 in files); re-export it from its source.",
            )  # fmt: skip
    elif isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise BadField(
                path, f"is an integer of {value.bit_length()} bits; at most {MAX_INT_BITS} are kept exactly.",
                "Give very large numbers as strings.",
            )  # fmt: skip
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadField(path, f"is {value}, which is not a JSON number.", "Give a finite number, or leave it out.")
    else:
        raise BadField(
            path, f"is of type {type(value).__name__}, not a JSON value.", "Give text, a number, a list or an object."
        )


def _has_surrogate(text: str) -> bool:
    return lone_surrogate(text) is not None


# Known fields ----------------------------------------------------------------------------------------


@overload
def _text(event: dict[str, Any], name: str, *, required: Literal[True], keep_empty: bool = False) -> str: ...
@overload
def _text(event: dict[str, Any], name: str, *, required: bool = False, keep_empty: bool = False) -> str | None: ...
def _text(event: dict[str, Any], name: str, *, required: bool = False, keep_empty: bool = False) -> str | None:
    """The text field `name`; None when absent or blank (unless `keep_empty`); BadField when `required` and not given."""
    value = event.get(name)
    if value is None:
        if required:
            raise BadField(name, "is missing.", f"Every event needs `{name}`.")
        return None
    if not isinstance(value, str):
        raise BadField(name, f"must be a string, got {json_type(value)}.", f"Give `{name}` as text.")
    if not value.strip() and not keep_empty:
        if required:
            raise BadField(name, "is empty.", f"Give a non-empty `{name}`.")
        return None
    return value


def _bounded_id(name: str, value: str) -> str:
    if len(value) > MAX_ID_CHARS:
        raise BadField(
            name, f"is {len(value):,} characters long; identifiers hold at most {MAX_ID_CHARS}.",
            f"Give `{name}` as a short name or id; put long text in a field of its own.",
        )  # fmt: skip
    return value


def _identifier(event: dict[str, Any], name: str) -> str | None:
    value = _text(event, name)
    return None if value is None else _bounded_id(name, value)


def _event_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise BadField("id", f"{_shown(value)} is not an id.", "Give `id` as a non-empty string, or leave it out.")
    return _bounded_id("id", str(value))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _number(event: dict[str, Any], name: str) -> float | None:
    value = event.get(name)
    if value is None or value == "":
        return None
    number = None if isinstance(value, bool) else _to_float(value)
    if number is None or not math.isfinite(number):
        raise BadField(name, f"must be a number, got {_shown(value)}.", f"Give `{name}` as a number, e.g. 1250.")
    if number < 0:
        raise BadField(name, f"must not be negative, got {_shown(value)}.", f"Give `{name}` as zero or more.")
    return number


def _to_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _rating(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("up", "thumbs_up", "+1", "👍"):
            return 5.0
        if lowered in ("down", "thumbs_down", "-1", "👎"):
            return 1.0
    rating = None if isinstance(value, bool) else _to_float(value)
    if rating is None or not 1 <= rating <= 5:  # NaN fails the range too
        raise BadField("rating", f"{_shown(value)} is not a rating.", 'Use a number from 1 to 5, "up" or "down".')
    return rating


def _timestamp(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadField("created_at", f"{value!r} is not a time.", _TIME_HINT)
    if isinstance(value, (int, float)) or (isinstance(value, str) and _looks_like_epoch(value)):
        return _epoch(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))  # naive times are taken as UTC
        except (ValueError, OverflowError):
            pass
    raise BadField("created_at", f"{_shown(value)} is not a time.", _TIME_HINT)


def _looks_like_epoch(text: str) -> bool:
    digits = text.strip().replace(".", "", 1)
    return digits.isascii() and digits.isdigit()


def _epoch(value: int | float | str) -> str:
    seconds = _to_float(value)
    if seconds is not None and seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        if seconds is None:
            raise ValueError
        return iso(datetime.fromtimestamp(seconds, tz=UTC))
    except (OverflowError, OSError, ValueError):
        raise BadField("created_at", f"{_shown(value)} is not a valid epoch time.", _TIME_HINT) from None


def _messages(event: dict[str, Any]) -> list[dict[str, str]]:
    messages, prompt = event.get("messages"), event.get("prompt")
    if messages is None and prompt is None:
        raise BadField(
            "messages", "neither `messages` nor `prompt` is given.", "Give the conversation as `messages` or `prompt`."
        )
    if messages is not None and prompt is not None:
        raise BadField("prompt", "both `messages` and `prompt` are given.", "Give one of them.")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadField("prompt", "must be a non-empty string.", "Give the user's request as text.")
        return [{"role": "user", "content": prompt}]
    if not isinstance(messages, list) or not messages:
        raise BadField("messages", "must be a non-empty list.", 'Give e.g. [{"role": "user", "content": "..."}].')
    out = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadField(
                where, "must be an object with `role` and `content`.", 'e.g. {"role": "user", "content": "..."}.'
            )
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise BadField(f"{where}.role", f"{_shown(role)} is not a role.", f"Use one of: {', '.join(ROLES)}.")
        if not isinstance(content, str):
            raise BadField(f"{where}.content", "must be a string.", "Give the message text as a string.")
        out.append({"role": role, "content": content})
    return out


def _tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise BadField("tags", "must be a list of strings.", 'e.g. ["billing", "refund"].')
    tags = sorted({t for t in value if t})
    if len(tags) > MAX_TAGS:
        raise BadField(
            "tags", f"holds {len(tags)} tags; an event takes at most {MAX_TAGS}.", "Keep the tags you filter on."
        )
    for index, tag in enumerate(tags):
        _bounded_id(f"tags[{index}]", tag)
    return tags


def _model_version(event: dict[str, Any]) -> str | None:
    """The registry version that served the draft, `name:vN`, as given (it need not be registered yet)."""
    value = _identifier(event, "model_version")
    if value is not None and not VERSION_ID.fullmatch(value):
        raise BadField(
            "model_version", f"{_shown(value)} is not a model version id.",
            "Give the registry version that served the draft as name:vN (e.g. support:v3): the `version` "
            "its resolution answered.",
        )  # fmt: skip
    return value


def _arm(event: dict[str, Any], version: str | None) -> str | None:
    """Which arm of its alias served the draft: stable or canary; only with the version it names."""
    value = event.get("arm")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in values(Arm):
        raise BadField(
            "arm", f"{_shown(value)} is not an arm; an arm is {one_of(Arm)}.",
            "Give the `arm` the resolution answered (stable, or canary for callers in the canary's share).",
        )  # fmt: skip
    if version is None:
        raise BadField(
            "arm", "is given without `model_version`.", "Give the version that served the draft as `model_version`."
        )
    return value


# The row --------------------------------------------------------------------------------------------


IDENTITY = (
    "agent", "intent", "system_prompt", "messages", "ai_output", "final_output", "rating", "model", "template",
    "latency_ms", "cost_usd", "user", "created_at", "tags",
)  # fmt: skip
OUTCOME = ("model_version", "arm")  # identifying too, but only when given: older events keep their hashes


def content_hash(row: dict[str, Any]) -> str:
    """SHA-256 of an event's identifying fields, in a fixed order, before redaction."""
    digest = hashlib.sha256()
    given = [name for name in OUTCOME if row[name] is not None]
    for name in (*IDENTITY, *given):
        value = row[name]
        if isinstance(value, str):
            text = value
        elif isinstance(value, (list, dict)):
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            text = "\x00" if value is None else repr(value)  # None differs from "", 5.0 from "5.0"
        digest.update(name.encode() + b"\x1f" + text.encode() + b"\x1e")
    return digest.hexdigest()


def normalise(raw: Any, field_map: dict[str, str]) -> dict[str, Any]:
    """Validate one raw event (after mapping) into a storable row, before redaction. Raises BadField."""
    if not isinstance(raw, dict):
        raise BadField(None, f"an event must be a JSON object, got {json_type(raw)}.", "Write one object per line.")
    event = dict(raw)
    for ours, theirs in field_map.items():
        if theirs in event:
            event[ours] = event.pop(theirs)
    check_json(event)
    messages = _messages(event)
    system = _text(event, "system")
    if system is None and messages and messages[0]["role"] == "system":
        system = messages.pop(0)["content"]
    row: dict[str, Any] = {
        "agent": _bounded_id("agent", _text(event, "agent", required=True).strip()),
        "system_prompt": system,
        "messages": messages,
        "ai_output": _text(event, "output", required=True),
        "final_output": _text(event, "final", keep_empty=True),  # "" = the user deleted everything
        "rating": _rating(event.get("rating")),
        "latency_ms": _number(event, "latency_ms"),
        "cost_usd": _number(event, "cost_usd"),
        "created_at": _timestamp(event.get("created_at")),
        "tags": _tags(event.get("tags")),
        "metadata": {k: v for k, v in event.items() if k not in FIELDS},
        **{name: _identifier(event, name) for name in IDENTIFIERS if name != "agent"},
    }
    row["model_version"] = _model_version(event)
    row["arm"] = _arm(event, row["model_version"])
    event_id = _event_id(event.get("id"))
    row["content_hash"] = content_hash(row)
    row["id"] = event_id if event_id is not None else "fb_" + row["content_hash"][:20]
    return row


def redact_row(row: dict[str, Any], redactor: Redactor) -> dict[str, int]:
    """Redact every stored text of a row in place (texts, identifiers, tags, metadata); the counts by type."""
    counts: dict[str, int] = {}

    def clean(text: str | None) -> str | None:
        return redact_into(redactor, text, counts)

    for name in ("system_prompt", "ai_output", "final_output", "model_version", *IDENTIFIERS):
        row[name] = clean(row[name])
    row["messages"] = [{**m, "content": clean(m["content"])} for m in row["messages"]]
    row["tags"] = sorted({redact_into(redactor, tag, counts) for tag in row["tags"]})
    row["metadata"] = _redact_value(row["metadata"], clean)
    return counts


def _redact_value(value: Any, clean: Callable[[str], str | None]) -> Any:
    """Every string inside a JSON value, redacted (keys are names, and stay)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_redact_value(item, clean) for item in value]
    if isinstance(value, dict):
        return {key: _redact_value(item, clean) for key, item in value.items()}
    return value
